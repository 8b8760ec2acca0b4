"""Class-conditional samples as pictures (a grid with one row per class, a GIF of the chains) and in-painting
grids, from the library sampler or an exported SavedModel's signatures; the `sample` program's library.

The classes are E's, or those of a classifier plugged in as the condition (one row per class of its K), or a
grid conditions on one unit of E (one row); a `condition_model.Condition`, or an export's record of it.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from ppgn_tf import batching
from ppgn_tf import files
from ppgn_tf import plots
from ppgn_tf import precision as precision_lib
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES
from ppgn_tf.sampling import condition_model
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import inpaint_inputs
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.sampling import sampler_config
from ppgn_tf.training import run_files


def model_sampler(model, config, prior=None, precision: str = precision_lib.FP32,
                  condition: condition_model.Condition | None = None) -> mala_sampler.MalaSampler:
  """The library sampler of a trained PPGN: its averaged G when it keeps one, `prior` (the real codes) when the
  settings read them, conditioned on `condition` (default: E's classes); G and E compute in `precision` (fp32 or
  bf16), the chain state h stays float32 (and a plugged-in classifier computes as it was saved)."""
  return mala_sampler.MalaSampler(precision_lib.in_precision(model.sampling_generator, precision),
                                  precision_lib.in_precision(model.encoder, precision), config,
                                  code_layer=model.config.code_layer, prior=prior,
                                  **(condition or condition_model.Condition()).sampler_arguments())


def sample_grid_from_model(model, config, per_class: int, seed: int = 0, gif_frames: int = sampler_config.GIF_FRAMES,
                           prior=None, precision: str = precision_lib.FP32,
                           condition: condition_model.Condition | None = None):
  """Runs the library sampler (`model_sampler`) for every class of the condition (or its unit); returns (images
  [rows*k,28,28,1] in [0,1], frames, outputs: the chains' class_probs (E's), objective and, conditioned on a
  classifier, its condition_probs, as numpy arrays)."""
  condition = condition or condition_model.Condition()
  keep_every = max(config.steps // gif_frames, 1) if gif_frames and config.steps else 0
  sampler = model_sampler(model, dataclasses.replace(config, keep_every=keep_every), prior, precision, condition)
  targets, _ = condition_spec.grid_targets(condition.record(), per_class)
  seeds = random_streams.chain_seeds(seed, len(targets))
  out = sampler.sample(targets, seeds)
  images = out["images"].numpy()
  frames = []
  if keep_every:
    for codes in out["trajectory_codes"].numpy():
      frames.append(data_lib.denormalize(sampler.generator(tf.constant(codes), training=False)).numpy())
  outputs = {k: v.numpy() for k, v in out.items() if k not in ("images", "codes", "trajectory_codes")}
  return images, frames, outputs


def call_in_requests(signature, max_batch: int | None, **inputs) -> dict:
  """`signature(**inputs)` as numpy arrays, its rows sent in requests of at most `max_batch` (an export's limit,
  `export_layout.read_max_batch`; None: one request). Scalars go with every request."""
  inputs = {k: tf.convert_to_tensor(v) for k, v in inputs.items()}
  rows = next(int(v.shape[0]) for v in inputs.values() if v.shape.rank)
  parts = [{k: v.numpy() for k, v in signature(**{k: (v[part] if v.shape.rank else v)
                                                   for k, v in inputs.items()}).items()}
           for part in batching.row_slices(rows, max_batch)]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def saved_model_condition(path: str, unit: int | None = None) -> dict:
  """The condition record of an export's class signatures, or with `unit` that of its sample_unit signature on
  that unit; raises ValueError (one line) when the export has no such signature or the unit is outside it."""
  if unit is None:
    return export_layout.read_condition(path)
  record = export_layout.read_unit_condition(path)
  if record is None:
    raise ValueError(f"--unit: {path} has no sample_unit signature (export with --condition_layer)")
  if not 0 <= unit < record["units"]:
    raise ValueError(f"--unit={unit}: layer {record['layer']} has {record['units']} units (choose from 0 to "
                     f"{record['units'] - 1})")
  return {"kind": condition_spec.UNIT, "layer": record["layer"], "unit": unit, "units": record["units"]}


def sample_grid_from_saved_model(path: str, config, per_class: int, seed: int = 0,
                                 gif_frames: int = sampler_config.GIF_FRAMES, unit: int | None = None):
  """The same through an exported SavedModel: its `serving_default` when `config` is None (the settings
  chosen at export), else its `sample` signature with config's steps and epsilons (frames by re-running
  shorter chains); one row per class of the export's condition (E's or its baked-in classifier's). With `unit`,
  its `sample_unit` signature on that unit (the export's settings; no frames)."""
  signatures = tf.saved_model.load(path).signatures
  max_batch = export_layout.read_max_batch(path)
  targets, _ = condition_spec.grid_targets(saved_model_condition(path, unit), per_class)
  seeds = tf.constant(random_streams.chain_seeds(seed, len(targets)), tf.int64)
  if unit is not None:
    out = call_in_requests(signatures["sample_unit"], max_batch, unit=tf.constant(targets), seed=seeds)
    out["objective"] = out.pop("activation")
    return out.pop("images"), [], out
  classes = tf.constant(targets, tf.int32)
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
  return out.pop("images"), frames, out


def write_outputs(images, frames, outputs, output_dir: str, per_class: int, title: str,
                  condition: dict | None = None) -> dict:
  """samples.png (one row per class of `condition`, a condition record; default E's), chains.gif, samples.npz
  (pixels, and the classes or the unit each chain was conditioned on) and samples.json (`grid_stats`)."""
  condition = condition or condition_model.Condition().record()
  targets, row_labels = condition_spec.grid_targets(condition, per_class)
  os.makedirs(output_dir, exist_ok=True)
  requested = {"units" if condition["kind"] == condition_spec.UNIT else "classes": targets}
  files.atomic_write(os.path.join(output_dir, "samples.npz"), lambda out: np.savez_compressed(
      out, images=images.astype(np.float32), **requested))
  plots.save_image_grid(images, os.path.join(output_dir, run_files.SAMPLES_GRID), nrow=per_class,
                        row_labels=row_labels, title=title)
  if frames:
    plots.save_animation(frames, os.path.join(output_dir, "chains.gif"), nrow=per_class, duration_ms=150)
  stats = grid_stats(outputs, per_class, condition)
  files.write_json(os.path.join(output_dir, "samples.json"), stats)
  return stats


def grid_stats(outputs: dict, per_class: int, condition: dict | None = None) -> dict:
  """The condition's own verdict on a grid (per_class chains per row): E's accuracy and mean probability of the
  requested class; a plugged-in classifier's, beside E's mean top probability (how sure E is the images are
  some digit); or the unit's mean activation."""
  condition = condition or condition_model.Condition().record()
  targets, _ = condition_spec.grid_targets(condition, per_class)
  rows = np.arange(len(targets))
  encoder_probs = np.asarray(outputs["class_probs"])
  if condition["kind"] == condition_spec.ENCODER_CLASSES:
    return {"per_class": per_class, "encoder_accuracy": float(np.mean(encoder_probs.argmax(1) == targets)),
            "mean_requested_probability": float(np.mean(encoder_probs[rows, targets]))}
  stats = {"per_class": per_class, "condition": condition}
  if condition["kind"] == condition_spec.CLASSIFIER:
    probs = np.asarray(outputs["condition_probs"])
    stats.update(accuracy=float(np.mean(probs.argmax(1) == targets)),
                 mean_requested_probability=float(np.mean(probs[rows, targets])))
  else:
    stats["mean_activation"] = float(np.mean(outputs["objective"]))
  stats["encoder_mean_top_probability"] = float(np.mean(encoder_probs.max(1)))
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


def inpaint_from_saved_model(path: str, inputs: inpaint_inputs.InpaintInputs, per_class: int, seed: int = 0,
                             signature_name: str = "inpaint"):
  """The same through an exported SavedModel's in-painting signature (`inpaint` or `inpaint_varied`: the settings
  it was exported with)."""
  signature = tf.saved_model.load(path).signatures[signature_name]
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
  """inpaint.png (one row per class, masked input first, then `per_class` completions) and inpaint.json (E's
  verdict, `grid_stats`)."""
  plots.save_image_grid(grid, os.path.join(output_dir, "inpaint.png"), nrow=per_class + 1,
                        row_labels=[str(c) for c in range(NUM_CLASSES)], title=title)
  stats = grid_stats({"class_probs": probs}, per_class)
  files.write_json(os.path.join(output_dir, "inpaint.json"), stats)
  return stats
