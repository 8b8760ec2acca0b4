"""Class-conditional samples as pictures (a grid with one row per class, a GIF of the chains) and in-painting
grids, from the library sampler or an exported SavedModel's signatures; the `sample` program's library."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from ppgn_tf import files
from ppgn_tf import plots
from ppgn_tf import precision as precision_lib
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import inpaint_inputs
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.training import run_files


def model_sampler(model, config, prior=None, precision: str = precision_lib.FP32) -> mala_sampler.MalaSampler:
  """The library sampler of a trained PPGN: its averaged G when it keeps one, `prior` (the real codes) when the
  settings read them; G and E compute in `precision` (fp32 or bf16), the chain state h stays float32."""
  return mala_sampler.MalaSampler(precision_lib.in_precision(model.sampling_generator, precision),
                                  precision_lib.in_precision(model.encoder, precision), config,
                                  code_layer=model.config.code_layer, prior=prior)


def sample_grid_from_model(model, config, per_class: int, seed: int = 0, gif_frames: int = 10, prior=None,
                           precision: str = precision_lib.FP32):
  """Runs the library sampler (`model_sampler`) for every class; returns (images [10*k,28,28,1] in [0,1],
  frames, probs)."""
  keep_every = max(config.steps // gif_frames, 1) if gif_frames and config.steps else 0
  sampler = model_sampler(model, dataclasses.replace(config, keep_every=keep_every), prior, precision)
  classes = np.repeat(np.arange(NUM_CLASSES), per_class).astype(np.int32)
  seeds = random_streams.chain_seeds(seed, len(classes))
  out = sampler.sample(classes, seeds)
  images = out["images"].numpy()
  frames = []
  if keep_every:
    for codes in out["trajectory_codes"].numpy():
      frames.append(data_lib.denormalize(sampler.generator(tf.constant(codes), training=False)).numpy())
  probs = out["class_probs"].numpy()
  return images, frames, probs


def call_in_requests(signature, max_batch: int | None, **inputs) -> dict:
  """`signature(**inputs)` as numpy arrays, its rows sent in requests of at most `max_batch` (an export's limit,
  `export_layout.read_max_batch`; None: one request). Scalars go with every request."""
  inputs = {k: tf.convert_to_tensor(v) for k, v in inputs.items()}
  rows = next(int(v.shape[0]) for v in inputs.values() if v.shape.rank)
  size = rows if not max_batch or rows <= max_batch else max_batch
  parts = [{k: v.numpy() for k, v in signature(**{k: (v[lo:lo + size] if v.shape.rank else v)
                                                   for k, v in inputs.items()}).items()}
           for lo in range(0, max(rows, 1), size or 1)]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def sample_grid_from_saved_model(path: str, config, per_class: int, seed: int = 0, gif_frames: int = 10):
  """The same through an exported SavedModel: its `serving_default` when `config` is None (the settings
  chosen at export), else its `sample` signature with config's steps and epsilons (frames by re-running
  shorter chains)."""
  signatures = tf.saved_model.load(path).signatures
  max_batch = export_layout.read_max_batch(path)
  classes = tf.constant(np.repeat(np.arange(NUM_CLASSES), per_class), tf.int32)
  seeds = tf.constant(random_streams.chain_seeds(seed, NUM_CLASSES * per_class), tf.int64)
  exported = export_layout.read_export_settings(path)
  settings = config or exported

  def run(n):
    if n == settings.steps and config is None:
      return call_in_requests(signatures["serving_default"], max_batch, class_id=classes, seed=seeds)
    return call_in_requests(signatures["sample"], max_batch, class_id=classes, seed=seeds,
                            steps=tf.constant(n, tf.int32), epsilon1=tf.constant(settings.epsilon1, tf.float32),
                            epsilon2=tf.constant(settings.epsilon2, tf.float32),
                            epsilon3=tf.constant(settings.epsilon3, tf.float32))

  out = run(settings.steps)
  frames = []
  if gif_frames and settings.steps:
    for n in np.linspace(0, settings.steps, gif_frames + 1).astype(int)[:-1]:
      frames.append(run(int(n))["images"])
    frames.append(out["images"])
  return out["images"], frames, out["class_probs"]


def write_outputs(images, frames, probs, output_dir: str, per_class: int, title: str) -> dict:
  """samples.png (one row per class), chains.gif, samples.npz (pixels, classes) and samples.json."""
  os.makedirs(output_dir, exist_ok=True)
  files.atomic_write(os.path.join(output_dir, "samples.npz"), lambda out: np.savez_compressed(
      out, images=images.astype(np.float32), classes=np.repeat(np.arange(NUM_CLASSES), per_class)))
  plots.save_image_grid(images, os.path.join(output_dir, run_files.SAMPLES_GRID), nrow=per_class,
                        row_labels=[str(c) for c in range(NUM_CLASSES)], title=title)
  if frames:
    plots.save_animation(frames, os.path.join(output_dir, "chains.gif"), nrow=per_class, duration_ms=150)
  return _write_encoder_stats(probs, per_class, os.path.join(output_dir, "samples.json"))


def _write_encoder_stats(probs, per_class: int, path: str) -> dict:
  """E's own verdict on a class-conditional grid (rows 0-9, per_class each), written to `path` as JSON."""
  requested = np.repeat(np.arange(NUM_CLASSES), per_class)
  stats = {
      "per_class": per_class,
      "encoder_accuracy": float(np.mean(probs.argmax(1) == requested)),
      "mean_requested_probability": float(np.mean(probs[np.arange(len(requested)), requested])),
  }
  files.write_json(path, stats)
  return stats


def inpaint_image(inputs: inpaint_inputs.InpaintInputs) -> np.ndarray:
  """The image to in-paint, [28, 28, 1] in [0, 1]: the file's, or test image N of the data set (loaded now)."""
  if inputs.image is not None:
    return inputs.image
  _, test = data_lib.load_arrays(inputs.dataset, inputs.data_dir)
  if not 0 <= inputs.test_index < len(test):
    raise ValueError(f"--inpaint_image={inputs.source}: the test set has {len(test)} images")
  return test.images[inputs.test_index].astype(np.float32) / 255.0


def inpaint_from_model(model, config, inputs: inpaint_inputs.InpaintInputs, per_class: int, seed: int = 0,
                       prior=None, precision: str = precision_lib.FP32):
  """In-painting with the library sampler of a trained PPGN (its averaged G when it keeps one), once per class
  and chain: inpaint_grid's (grid, class probabilities). `prior` and `precision` as `model_sampler`."""
  sampler = model_sampler(model, config, prior, precision)
  run = lambda x, m, c, s: {k: v.numpy() for k, v in sampler.inpaint(x, m, c, s).items()}
  return inpaint_grid(run, inpaint_image(inputs), inputs.mask, per_class, seed)


def inpaint_from_saved_model(path: str, inputs: inpaint_inputs.InpaintInputs, per_class: int, seed: int = 0):
  """The same through an exported SavedModel's `inpaint` signature (the settings it was exported with)."""
  signature = tf.saved_model.load(path).signatures["inpaint"]
  max_batch = export_layout.read_max_batch(path)
  run = lambda x, m, c, s: call_in_requests(
      signature, max_batch, images=tf.constant(x, tf.float32), mask=tf.constant(m, tf.float32),
      class_id=tf.constant(c, tf.int32), seed=tf.constant(s, tf.int64))
  return inpaint_grid(run, inpaint_image(inputs), inputs.mask, per_class, seed)


def inpaint_grid(run, image, mask, per_class: int, seed: int = 0):
  """`run(images, mask, classes, seeds) -> dict` once for every class: (grid images with the masked input first
  in each row, the completed images' class probabilities)."""
  classes = np.repeat(np.arange(NUM_CLASSES), per_class).astype(np.int32)
  seeds = random_streams.chain_seeds(seed, len(classes))
  images = np.repeat(image[None], len(classes), axis=0)
  masks = np.repeat(mask[None], len(classes), axis=0)
  out = run(images, masks, classes, seeds)
  completed = np.asarray(out["images"]).reshape(NUM_CLASSES, per_class, *IMAGE_SHAPE)
  masked_input = np.where(mask > 0, image, 0.5)  # Unknown pixels grey.
  rows = np.concatenate([np.repeat(masked_input[None, None], NUM_CLASSES, axis=0), completed], axis=1)
  return rows.reshape(-1, *IMAGE_SHAPE), np.asarray(out["class_probs"])


def write_inpaint_outputs(grid, probs, output_dir: str, per_class: int, title: str) -> dict:
  """inpaint.png (one row per class, masked input first) and inpaint.json."""
  plots.save_image_grid(grid, os.path.join(output_dir, "inpaint.png"), nrow=per_class + 1,
                        row_labels=[str(c) for c in range(NUM_CLASSES)], title=title)
  return _write_encoder_stats(probs, per_class, os.path.join(output_dir, "inpaint.json"))
