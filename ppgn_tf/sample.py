r"""Class-conditional samples as pictures: a grid with one row per class and a GIF of the chains.

  python -m ppgn_tf.sample --workdir=runs/quickstart
  python -m ppgn_tf.sample --saved_model=runs/quickstart/export --output_dir=/tmp/samples

From a workdir the library sampler runs (every setting is a flag); from an
exported SavedModel (a version directory, or a base path: its newest version)
the `sample` signature runs, so only TensorFlow is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
from absl import app
from absl import flags
from absl import logging

from ppgn_tf import plots

NUM_CLASSES = 10


def sample_grid_from_model(model, config, per_class: int, seed: int = 0, gif_frames: int = 10):
  """Runs the library sampler for every class; returns (images [10*k,28,28,1] in [0,1], frames, probs)."""
  import tensorflow as tf
  from ppgn_tf import data as data_lib
  from ppgn_tf import mala_sampler
  keep_every = max(config.steps // gif_frames, 1) if gif_frames and config.steps else 0
  sampler = mala_sampler.MalaSampler(model.generator, model.encoder,
                                     dataclasses.replace(config, keep_every=keep_every),
                                     code_layer=model.config.code_layer)
  classes = np.repeat(np.arange(NUM_CLASSES), per_class).astype(np.int32)
  seeds = seed * 100_000 + np.arange(len(classes), dtype=np.int64)
  out = sampler.sample(classes, seeds)
  images = out["images"].numpy()
  frames = []
  if keep_every:
    for codes in out["trajectory_codes"].numpy():
      frames.append(data_lib.denormalize(model.generator(tf.constant(codes), training=False)).numpy())
  probs = out["class_probs"].numpy()
  return images, frames, probs


def sample_grid_from_saved_model(path: str, steps: int, epsilons, per_class: int, seed: int = 0,
                                 gif_frames: int = 10):
  """The same through an exported SavedModel's `sample` signature (frames by re-running shorter chains)."""
  import tensorflow as tf
  signature = tf.saved_model.load(path).signatures["sample"]
  classes = tf.constant(np.repeat(np.arange(NUM_CLASSES), per_class), tf.int32)
  seeds = tf.constant(seed * 100_000 + np.arange(NUM_CLASSES * per_class), tf.int64)

  def run(n):
    return signature(class_id=classes, seed=seeds, steps=tf.constant(n, tf.int32),
                     epsilon1=tf.constant(epsilons[0], tf.float32),
                     epsilon2=tf.constant(epsilons[1], tf.float32),
                     epsilon3=tf.constant(epsilons[2], tf.float32))

  out = run(steps)
  frames = []
  if gif_frames and steps:
    for n in np.linspace(0, steps, gif_frames + 1).astype(int)[:-1]:
      frames.append(run(int(n))["images"].numpy())
    frames.append(out["images"].numpy())
  return out["images"].numpy(), frames, out["class_probs"].numpy()


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
  np.savez_compressed(os.path.join(output_dir, "samples.npz"), images=images.astype(np.float32),
                      classes=np.repeat(np.arange(NUM_CLASSES), per_class))
  plots.save_image_grid(images, os.path.join(output_dir, "samples.png"), nrow=per_class,
                        row_labels=[str(c) for c in range(NUM_CLASSES)], title=title)
  if frames:
    plots.save_animation(frames, os.path.join(output_dir, "chains.gif"), nrow=per_class, duration_ms=150)
  requested = np.repeat(np.arange(NUM_CLASSES), per_class)
  stats = {
      "per_class": per_class,
      "encoder_accuracy": float(np.mean(probs.argmax(1) == requested)),
      "mean_requested_probability": float(np.mean(probs[np.arange(len(requested)), requested])),
  }
  with open(os.path.join(output_dir, "samples.json"), "w") as f:
    json.dump(stats, f, indent=2)
  return stats


FLAGS = flags.FLAGS


def define_sampler_flags(steps_help: str, clip_note: str = "") -> None:
  """Eq. 8's settings as flags, shared by this program and export.py."""
  flags.DEFINE_integer("steps", 200, steps_help)
  flags.DEFINE_float("epsilon1", 1e-2, "Weight of the prior term R_h(h) - h.")
  flags.DEFINE_float("epsilon2", 1.0, "Weight of the class-conditioning gradient.")
  flags.DEFINE_float("epsilon3", 1e-15, "Standard deviation of the noise.")
  flags.DEFINE_float("clip_min", None, f"Clip codes to at least this value after each step{clip_note} "
                     "(default: no clip).")
  flags.DEFINE_float("clip_max", None, f"Clip codes to at most this value after each step{clip_note} "
                     "(default: no clip).")


def sampler_config_from_flags():
  """A validated SamplerConfig from the flags of `define_sampler_flags` (raises ValueError)."""
  from ppgn_tf import mala_sampler
  config = mala_sampler.SamplerConfig(steps=FLAGS.steps, epsilon1=FLAGS.epsilon1, epsilon2=FLAGS.epsilon2,
                                      epsilon3=FLAGS.epsilon3, clip_min=FLAGS.clip_min, clip_max=FLAGS.clip_max)
  config.validate()
  return config


def define_flags() -> None:
  """The command line's flags; defined only when run as a program, so importing this
  module from train.py adds no flags there."""
  flags.DEFINE_string("workdir", None, "A training run's workdir (uses its latest checkpoint).")
  flags.DEFINE_string("saved_model", None, "An exported SavedModel: version directory or model base path.")
  flags.DEFINE_string("output_dir", None, "Where to write samples.png, chains.gif, samples.json "
                      "(default: WORKDIR/samples, or SAVED_MODEL/../samples).")
  flags.DEFINE_integer("per_class", 10, "Chains per class (columns of the grid).")
  flags.DEFINE_integer("seed", 0, "Seed of the chains (h_0 and noise).")
  define_sampler_flags("MALA steps.", clip_note=" (workdir only)")
  flags.DEFINE_integer("gif_frames", 10, "Frames of chains.gif (0: no GIF).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    if (FLAGS.workdir is None) == (FLAGS.saved_model is None):
      raise ValueError("give exactly one of --workdir and --saved_model")
    if FLAGS.per_class < 1:
      raise ValueError(f"--per_class must be >= 1, got {FLAGS.per_class}")
    if FLAGS.gif_frames < 0:
      raise ValueError(f"--gif_frames must be >= 0, got {FLAGS.gif_frames}")
    config = sampler_config_from_flags()
    if FLAGS.workdir:
      from ppgn_tf import train_lib
      model = train_lib.load_trained(FLAGS.workdir)
      output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, "samples")
      images, frames, probs = sample_grid_from_model(model, config, FLAGS.per_class, FLAGS.seed, FLAGS.gif_frames)
      title = f"{FLAGS.workdir}: generator step {int(model.generator_steps.numpy())}, {config.steps} MALA steps"
    else:
      path = newest_version(FLAGS.saved_model)
      output_dir = FLAGS.output_dir or os.path.join(os.path.dirname(os.path.abspath(path)), "samples")
      images, frames, probs = sample_grid_from_saved_model(
          path, config.steps, (config.epsilon1, config.epsilon2, config.epsilon3), FLAGS.per_class,
          FLAGS.seed, FLAGS.gif_frames)
      title = f"{path}: {config.steps} MALA steps"
  except ValueError as e:
    print(f"sample: error: {e}", file=sys.stderr)
    return 1
  stats = write_outputs(images, frames, probs, output_dir, FLAGS.per_class, title)
  logging.info("Wrote %s/samples.png%s; encoder's own accuracy on the samples %.3f",
               output_dir, " and chains.gif" if frames else "", stats["encoder_accuracy"])
  print(os.path.join(output_dir, "samples.png"))
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
