"""Class-conditional samples as pictures (a grid with one row per class, a GIF of the chains) and in-painting
grids, from the library sampler or an exported SavedModel's signatures; the `sample` program's library."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from ppgn_tf import files
from ppgn_tf import plots
from ppgn_tf import precision as precision_lib
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import NUM_CLASSES
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.sampling import sampler_config
from ppgn_tf.sampling import serving


def sample_grid_from_model(model, config, per_class: int, seed: int = 0, gif_frames: int = 10, prior=None,
                           precision: str = "fp32"):
  """Runs the library sampler for every class; returns (images [10*k,28,28,1] in [0,1], frames, probs).

  Uses the averaged G when the run keeps one; `prior` (the real codes) when the settings read them.
  `precision` (fp32 or bf16) is what G and E compute in; the chain state h stays float32.
  """
  keep_every = max(config.steps // gif_frames, 1) if gif_frames and config.steps else 0
  generator = precision_lib.in_precision(model.sampling_generator, precision)
  encoder = precision_lib.in_precision(model.encoder, precision)
  sampler = mala_sampler.MalaSampler(generator, encoder, dataclasses.replace(config, keep_every=keep_every),
                                     code_layer=model.config.code_layer, prior=prior)
  classes = np.repeat(np.arange(NUM_CLASSES), per_class).astype(np.int32)
  seeds = random_streams.chain_seeds(seed, len(classes))
  out = sampler.sample(classes, seeds)
  images = out["images"].numpy()
  frames = []
  if keep_every:
    for codes in out["trajectory_codes"].numpy():
      frames.append(data_lib.denormalize(generator(tf.constant(codes), training=False)).numpy())
  probs = out["class_probs"].numpy()
  return images, frames, probs


def sample_grid_from_saved_model(path: str, config, per_class: int, seed: int = 0, gif_frames: int = 10):
  """The same through an exported SavedModel: its `serving_default` when `config` is None (the settings
  chosen at export), else its `sample` signature with config's steps and epsilons (frames by re-running
  shorter chains)."""
  signatures = tf.saved_model.load(path).signatures
  classes = tf.constant(np.repeat(np.arange(NUM_CLASSES), per_class), tf.int32)
  seeds = tf.constant(random_streams.chain_seeds(seed, NUM_CLASSES * per_class), tf.int64)
  exported = read_export_settings(path)
  settings = config or exported

  def run(n):
    if n == settings.steps and config is None:
      return signatures["serving_default"](class_id=classes, seed=seeds)
    return signatures["sample"](class_id=classes, seed=seeds, steps=tf.constant(n, tf.int32),
                                epsilon1=tf.constant(settings.epsilon1, tf.float32),
                                epsilon2=tf.constant(settings.epsilon2, tf.float32),
                                epsilon3=tf.constant(settings.epsilon3, tf.float32))

  out = run(settings.steps)
  frames = []
  if gif_frames and settings.steps:
    for n in np.linspace(0, settings.steps, gif_frames + 1).astype(int)[:-1]:
      frames.append(run(int(n))["images"].numpy())
    frames.append(out["images"].numpy())
  return out["images"].numpy(), frames, out["class_probs"].numpy()


def read_export_settings(path: str):
  """The sampler settings an export was written with (its assets.extra), or the thesis' for older exports."""
  return serving.read_sampler_settings(path) or mala_sampler.preset("thesis")


def newest_version(path: str) -> str:
  """A SavedModel directory, or the highest numbered version inside a base path."""
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return path
  versions = sorted(int(n) for n in os.listdir(path) if n.isdigit()) if os.path.isdir(path) else []
  for v in reversed(versions):
    candidate = os.path.join(path, str(v))
    if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
      return candidate
  raise ValueError(f"{path}: no SavedModel here (no saved_model.pb, no numbered version holding one)")


def write_outputs(images, frames, probs, output_dir: str, per_class: int, title: str) -> dict:
  """samples.png (one row per class), chains.gif, samples.npz (pixels, classes) and samples.json."""
  os.makedirs(output_dir, exist_ok=True)
  files.atomic_write(os.path.join(output_dir, "samples.npz"), lambda out: np.savez_compressed(
      out, images=images.astype(np.float32), classes=np.repeat(np.arange(NUM_CLASSES), per_class)))
  plots.save_image_grid(images, os.path.join(output_dir, "samples.png"), nrow=per_class,
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


def _read_picture(path: str, what: str) -> np.ndarray:
  """A 28x28 picture from a .png (pixels / 255) or .npy file, as float32 [28, 28, 1]."""
  if not os.path.isfile(path):
    raise ValueError(f"{what}={path}: no such file")
  if path.endswith(".npy"):
    values = np.load(path).astype(np.float32)
  else:
    try:
      values = np.asarray(Image.open(path).convert("L"), np.float32) / 255.0
    except OSError as e:
      raise ValueError(f"{what}={path}: not an image ({e})") from None
  if values.size != 28 * 28:
    raise ValueError(f"{what}={path}: expected 28x28 pixels, got shape {list(values.shape)}")
  return values.reshape(28, 28, 1)


def inpaint_inputs(image_arg: str, mask_arg: str, dataset: str | None, data_dir: str | None):
  """(image [28, 28, 1] in [0, 1], mask [28, 28, 1] of 0/1) from the flags' values; raises ValueError."""
  if image_arg.startswith("test:"):
    if not dataset:
      raise ValueError(f"--inpaint_image={image_arg}: the data set is unknown here; give a file")
    try:
      index = int(image_arg[5:])
    except ValueError:
      raise ValueError(f"--inpaint_image={image_arg}: expected test:N with a whole number N") from None
    _, test = data_lib.load_arrays(dataset, data_dir)
    if not 0 <= index < len(test):
      raise ValueError(f"--inpaint_image={image_arg}: the test set has {len(test)} images")
    image = test.images[index].astype(np.float32) / 255.0
  else:
    image = _read_picture(image_arg, "--inpaint_image")
  if not mask_arg.endswith((".png", ".npy")):
    mask = sampler_config.named_mask(mask_arg)  # Raises for an unknown name.
  else:
    mask = _read_picture(mask_arg, "--inpaint_mask")
  image, mask = mala_sampler.check_inpaint_inputs(image[None], mask, 1)
  return image[0], mask[0]


def inpaint_grid(run, image, mask, per_class: int, seed: int = 0):
  """`run(images, mask, classes, seeds) -> dict` once for every class: (grid images with the masked input first
  in each row, the completed images' class probabilities)."""
  classes = np.repeat(np.arange(NUM_CLASSES), per_class).astype(np.int32)
  seeds = random_streams.chain_seeds(seed, len(classes))
  images = np.repeat(image[None], len(classes), axis=0)
  masks = np.repeat(mask[None], len(classes), axis=0)
  out = run(images, masks, classes, seeds)
  completed = np.asarray(out["images"]).reshape(NUM_CLASSES, per_class, 28, 28, 1)
  masked_input = np.where(mask > 0, image, 0.5)  # Unknown pixels grey.
  rows = np.concatenate([np.repeat(masked_input[None, None], NUM_CLASSES, axis=0), completed], axis=1)
  return rows.reshape(-1, 28, 28, 1), np.asarray(out["class_probs"])


def write_inpaint_outputs(grid, probs, output_dir: str, per_class: int, title: str) -> dict:
  """inpaint.png (one row per class, masked input first) and inpaint.json."""
  plots.save_image_grid(grid, os.path.join(output_dir, "inpaint.png"), nrow=per_class + 1,
                        row_labels=[str(c) for c in range(NUM_CLASSES)], title=title)
  return _write_encoder_stats(probs, per_class, os.path.join(output_dir, "inpaint.json"))


def find_workdir_options(saved_model: str) -> dict:
  """options.json of the workdir an export lives in (WORKDIR/export/N), if there is one."""
  path = os.path.abspath(saved_model)
  for _ in range(3):
    path = os.path.dirname(path)
    if os.path.isfile(os.path.join(path, "options.json")):
      with open(os.path.join(path, "options.json")) as f:
        return json.load(f)
  return {}
