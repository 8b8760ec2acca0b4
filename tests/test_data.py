"""Tests for ppgn_tf.data: sources, normalisation and the seeded pipelines. No downloads."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf.data import datasets as data
from ppgn_tf.data import idx_format


def _labels_of(ds, limit=None):
  """Label lists of the batches of `ds` (at most `limit` batches)."""
  out = []
  for i, (_, y) in enumerate(ds):
    if limit is not None and i >= limit:
      break
    out.append(y.numpy().tolist())
  return out


def _small_split(n=20):
  """Image i is filled with pixel value i and has label i, so order is visible."""
  images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 28, 28, 1)).copy()
  return data.Split(images, np.arange(n, dtype=np.int64))


# --- Offline digits --------------------------------------------------------


@pytest.fixture(scope="module")
def offline():
  return data.load_arrays(data.OFFLINE)


def test_offline_split_sizes_and_types(offline):
  train, test = offline
  assert len(train) == 4500 and len(test) == 500
  for split in (train, test):
    assert split.images.dtype == np.uint8
    assert split.images.shape[1:] == (28, 28, 1)
    assert split.labels.dtype == np.int64
  assert train.images.shape[0] == 4500 and test.images.shape[0] == 500
  np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), [450] * 10)
  np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), [50] * 10)
  assert train.images.max() > 200  # Real pixel data, not an empty array.


def test_offline_train_and_test_share_no_image(offline):
  train, test = offline
  train_bytes = {x.tobytes() for x in train.images}
  test_bytes = {x.tobytes() for x in test.images}
  assert len(test_bytes) == 500
  assert not train_bytes & test_bytes


def test_offline_split_is_the_same_on_a_second_call(offline):
  train2, test2 = data.load_arrays(data.OFFLINE)
  np.testing.assert_array_equal(offline[0].images, train2.images)
  np.testing.assert_array_equal(offline[0].labels, train2.labels)
  np.testing.assert_array_equal(offline[1].images, test2.images)
  np.testing.assert_array_equal(offline[1].labels, test2.labels)


# --- Normalisation ---------------------------------------------------------


def test_normalize_uint8():
  got = data.normalize(np.array([0, 255], np.uint8)).numpy()
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, [-0.1307 / 0.3081, (1.0 - 0.1307) / 0.3081], rtol=1e-6)


def test_normalize_float_and_denormalize_round_trip():
  x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32)
  x[0, 0, 0, 0], x[0, 0, 1, 0] = 0.0, 1.0
  z = data.normalize(x)
  np.testing.assert_allclose(z.numpy(), (x - 0.1307) / 0.3081, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(data.denormalize(z).numpy(), x, atol=1e-6)
  # uint8 input is scaled to [0, 1] first.
  u = np.array([[0, 51, 255]], np.uint8)
  np.testing.assert_allclose(data.denormalize(data.normalize(u)).numpy(), u / 255.0, atol=1e-6)


def test_denormalize_clips_to_unit_interval():
  np.testing.assert_array_equal(data.denormalize([-10.0, 10.0]).numpy(), [0.0, 1.0])


# --- Pipelines -------------------------------------------------------------


def test_pipeline_batches():
  split = _small_split(20)
  batches = list(data.make_pipeline(split, 6, seed=0))
  assert len(batches) == 3 == data.num_batches(20, 6)
  for x, y in batches:
    assert x.dtype == tf.float32 and y.dtype == tf.int32
    assert tuple(x.shape) == (6, 28, 28, 1) and tuple(y.shape) == (6,)
    # Images are normalised and still match their labels.
    np.testing.assert_allclose(x.numpy()[:, 0, 0, 0], (y.numpy() / 255.0 - 0.1307) / 0.3081,
                               rtol=1e-5)
  seen = np.concatenate([y.numpy() for _, y in batches])
  assert len(set(seen.tolist())) == 18  # Distinct examples; 2 dropped.


def test_pipeline_keeps_remainder_and_order_without_shuffle():
  ds = data.make_pipeline(_small_split(20), 6, seed=0, shuffle=False, drop_remainder=False)
  assert _labels_of(ds) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17],
                            [18, 19]]
  assert data.num_batches(20, 6, drop_remainder=False) == 4


def test_pipeline_same_seed_same_order_different_seed_different_order():
  split = _small_split(20)
  a = _labels_of(data.make_pipeline(split, 5, seed=3))
  b = _labels_of(data.make_pipeline(split, 5, seed=3))
  c = _labels_of(data.make_pipeline(split, 5, seed=4))
  assert a == b
  assert a != c
  assert sorted(sum(a, [])) == sorted(sum(c, [])) == list(range(20))
  assert sum(a, []) != list(range(20))  # Actually shuffled.


def test_pipeline_reshuffles_each_epoch():
  ds = data.make_pipeline(_small_split(20), 5, seed=3)
  first, second = _labels_of(ds), _labels_of(ds)
  assert first != second
  assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(20))
  # The sequence of epochs is itself reproducible.
  ds2 = data.make_pipeline(_small_split(20), 5, seed=3)
  assert [_labels_of(ds2), _labels_of(ds2)] == [first, second]


def test_repeated_pipeline_epochs_are_permutations():
  ds = data.make_pipeline(_small_split(20), 5, seed=1, repeat=True)
  batches = _labels_of(ds, limit=12)  # Three epochs of 4 batches.
  epochs = [sum(batches[i:i + 4], []) for i in (0, 4, 8)]
  for e in epochs:
    assert sorted(e) == list(range(20))
  assert epochs[0] != epochs[1] != epochs[2]


@pytest.mark.parametrize("start", [1, 2, 3, 4, 5, 9])
def test_repeated_pipeline_resumes_at_start_batch(start):
  split = _small_split(20)  # 3 full batches of 6 per epoch.
  full = _labels_of(data.make_pipeline(split, 6, seed=7, repeat=True), limit=start + 5)
  resumed = _labels_of(data.make_pipeline(split, 6, seed=7, repeat=True, start_batch=start),
                       limit=5)
  assert resumed == full[start:start + 5]
  # The compared window crosses at least one epoch boundary.
  assert (start // 3) != ((start + 4) // 3)


def test_repeated_pipeline_resume_matches_images_too():
  split = _small_split(20)
  full = list(data.make_pipeline(split, 6, seed=2, repeat=True).take(6))
  resumed = list(data.make_pipeline(split, 6, seed=2, repeat=True, start_batch=2).take(4))
  for (xf, yf), (xr, yr) in zip(full[2:], resumed):
    np.testing.assert_array_equal(xf.numpy(), xr.numpy())
    np.testing.assert_array_equal(yf.numpy(), yr.numpy())


# --- IDX directories -------------------------------------------------------


def _write_mnist_dir(directory, num_train=64, num_test=16):
  rng = np.random.default_rng(0)
  arrays = {
      "train_images": rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
      "train_labels": rng.integers(0, 10, num_train, dtype=np.uint8),
      "test_images": rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8),
      "test_labels": rng.integers(0, 10, num_test, dtype=np.uint8),
  }
  for key, stem in idx_format.MNIST_FILES.items():
    idx_format.write_idx(os.path.join(str(directory), stem), arrays[key])
  return arrays


def test_load_arrays_from_idx_directory(tmp_path):
  arrays = _write_mnist_dir(tmp_path)
  train, test = data.load_arrays(f"idx:{tmp_path}")
  assert train.images.shape == (64, 28, 28, 1) and test.images.shape == (16, 28, 28, 1)
  assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
  np.testing.assert_array_equal(train.images[..., 0], arrays["train_images"])
  np.testing.assert_array_equal(test.labels, arrays["test_labels"])


def test_load_dataset_from_idx_directory(tmp_path):
  arrays = _write_mnist_dir(tmp_path)
  data.check_source(f"idx:{tmp_path}")  # No error.
  train_ds, test_ds = data.load_dataset(f"idx:{tmp_path}", 10, seed=0, test_batch_size=10)
  train = list(train_ds)
  assert [int(y.shape[0]) for _, y in train] == [10] * 6  # 64 -> 6 full batches.
  assert all(tuple(x.shape) == (10, 28, 28, 1) for x, _ in train)
  test = list(test_ds)
  assert [int(y.shape[0]) for _, y in test] == [10, 6]  # Last partial batch kept.
  # Test batches keep the stored order.
  np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in test]),
                                arrays["test_labels"])
  images = np.concatenate([x.numpy() for x, _ in test])
  np.testing.assert_allclose(images[..., 0], (arrays["test_images"] / 255.0 - 0.1307) / 0.3081,
                             rtol=1e-5, atol=1e-6)


def test_load_dataset_batch_size_defaults_for_test(tmp_path):
  _write_mnist_dir(tmp_path)
  train_ds, test_ds = data.load_dataset(f"idx:{tmp_path}", 32)
  assert [int(y.shape[0]) for _, y in train_ds] == [32, 32]
  assert [int(y.shape[0]) for _, y in test_ds] == [16]


# --- Source validation -----------------------------------------------------


def test_data_source_error_is_value_error():
  assert issubclass(data.DataSourceError, ValueError)


def test_known_sources_pass_check():
  for name in ("mnist", "fashion_mnist", "mnist_offline"):
    data.check_source(name)


def test_unknown_source():
  with pytest.raises(data.DataSourceError) as info:
    data.check_source("foo")
  assert "--dataset=foo" in str(info.value)
  assert "unknown" in str(info.value)
  with pytest.raises(ValueError, match="unknown"):
    data.load_arrays("foo")


def test_idx_source_with_missing_directory(tmp_path):
  missing = os.path.join(str(tmp_path), "no_such_dir")
  with pytest.raises(data.DataSourceError) as info:
    data.check_source(f"idx:{missing}")
  assert missing in str(info.value)
  assert "\n" not in str(info.value)
  with pytest.raises(data.DataSourceError, match="no_such_dir"):
    data.load_arrays(f"idx:{missing}")


def test_idx_source_without_directory():
  with pytest.raises(data.DataSourceError, match="directory"):
    data.check_source("idx:")


def test_idx_source_with_incomplete_directory(tmp_path):
  _write_mnist_dir(tmp_path)
  os.remove(os.path.join(str(tmp_path), idx_format.MNIST_FILES["test_labels"]))
  with pytest.raises(data.DataSourceError, match="t10k-labels-idx1-ubyte"):
    data.check_source(f"idx:{tmp_path}")


# --- tfds (mocked) ---------------------------------------------------------


def _write_mock_metadata(data_dir, num_examples):
  """Minimal mnist/3.0.1/dataset_info.json giving tfds the split sizes.

  The tensorflow-datasets wheel does not ship testing/metadata/mnist, and
  without split sizes `tfds.load(..., batch_size=-1)` batches by sys.maxsize,
  which aborts the whole process (std::length_error in vector::reserve).
  """
  directory = os.path.join(str(data_dir), "mnist", "3.0.1")
  os.makedirs(directory)
  info = {
      "name": "mnist",
      "version": "3.0.1",
      "fileFormat": "tfrecord",
      "splits": [
          {"name": "train", "shardLengths": [str(num_examples)], "numBytes": "0"},
          {"name": "test", "shardLengths": [str(num_examples)], "numBytes": "0"},
      ],
      "supervisedKeys": {"tuple": {"items": [{"featureKey": "image"}, {"featureKey": "label"}]}},
  }
  with open(os.path.join(directory, "dataset_info.json"), "w") as f:
    json.dump(info, f)


def test_tfds_source_with_mock_data(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  _write_mock_metadata(tmp_path, 12)
  with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path),
                              policy=tfds.testing.MockPolicy.USE_FILES):
    train, test = data.load_arrays("mnist")
  for split in (train, test):
    assert split.images.shape == (12, 28, 28, 1)
    assert split.images.dtype == np.uint8
    assert split.labels.shape == (12,) and split.labels.dtype == np.int64
    assert split.labels.min() >= 0 and split.labels.max() <= 9
  assert train.images.max() > 0  # Random mock pixels, not zeros.
  # Nothing was downloaded or prepared next to the metadata.
  assert sorted(os.listdir(os.path.join(str(tmp_path), "mnist", "3.0.1"))) == ["dataset_info.json"]
