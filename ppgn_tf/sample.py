r"""Class-conditional samples as pictures: a grid with one row per class and a GIF of the chains.

  python -m ppgn_tf.sample --workdir=runs/quickstart
  python -m ppgn_tf.sample --saved_model=runs/quickstart/export --output_dir=/tmp/samples
  python -m ppgn_tf.sample --workdir=runs/quickstart --inpaint_image=test:7 --inpaint_mask=right

In-painting (--inpaint_image, --inpaint_mask) keeps the known pixels of one image
and fills in the rest once per class and chain: inpaint.png has one row per class,
the masked input first.

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


def sample_grid_from_model(model, config, per_class: int, seed: int = 0, gif_frames: int = 10, prior=None,
                           precision: str = "fp32"):
  """Runs the library sampler for every class; returns (images [10*k,28,28,1] in [0,1], frames, probs).

  Uses the averaged G when the run keeps one; `prior` (the real codes) when the settings read them.
  `precision` (fp32 or bf16) is what G and E compute in; the chain state h stays float32.
  """
  import tensorflow as tf
  from ppgn_tf import data as data_lib
  from ppgn_tf import mala_sampler
  from ppgn_tf import precision as precision_lib
  from ppgn_tf import random_streams
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
  import tensorflow as tf
  from ppgn_tf import random_streams
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
  from ppgn_tf import mala_sampler, serving
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
  np.savez_compressed(os.path.join(output_dir, "samples.npz"), images=images.astype(np.float32),
                      classes=np.repeat(np.arange(NUM_CLASSES), per_class))
  plots.save_image_grid(images, os.path.join(output_dir, "samples.png"), nrow=per_class,
                        row_labels=[str(c) for c in range(NUM_CLASSES)], title=title)
  if frames:
    plots.save_animation(frames, os.path.join(output_dir, "chains.gif"), nrow=per_class, duration_ms=150)
  return _write_encoder_stats(probs, per_class, os.path.join(output_dir, "samples.json"))


def _write_encoder_stats(probs, per_class: int, path: str) -> dict:
  """E's own verdict on a class-conditional grid (rows 0-9, per_class each), written to `path` as JSON."""
  from ppgn_tf import files
  requested = np.repeat(np.arange(NUM_CLASSES), per_class)
  stats = {
      "per_class": per_class,
      "encoder_accuracy": float(np.mean(probs.argmax(1) == requested)),
      "mean_requested_probability": float(np.mean(probs[np.arange(len(requested)), requested])),
  }
  files.write_json(path, stats)
  return stats


FLAGS = flags.FLAGS


# The sampler's settings as flags: name -> (kind, help). Each defaults to the chosen --sampler_preset's value.
SAMPLER_FLAGS = {
    "steps": ("integer", "Steps of each chain."),
    "epsilon1": ("float", "Weight of the prior term R_h(h) - h."),
    "epsilon2": ("float", "Weight of the class-conditioning gradient."),
    "epsilon3": ("float", "Standard deviation of the noise (the thesis: 1e-15; larger values let chains mix)."),
    "epsilon4": ("float", "In-painting: weight of the gradient pulling G(h) towards the known pixels."),
    "h0": ("string", "Where chains start: normal (N(0, 1), the thesis), codes (the code E(x) of a random "
                     "training image of any class), class_codes (of a random training image of the requested "
                     "class) or marginals (each unit drawn from that unit's values over the training codes)."),
    "clip_min": ("float", "Clip codes to at least this value after each step."),
    "clip_max": ("float", "Clip codes to at most this value after each step."),
    "clip_percentile": ("float", "Clip each unit to the [p, 100-p] percentile range of the training codes."),
    "normalize_step": ("bool", "Divide each step by its mean absolute value (the original PPGN sampler)."),
    "step_size": ("float", "Step size lr multiplying every step (1: Eq. 8 as written)."),
    "step_size_end": ("float", "Step size at the last step, linear from --step_size (default: constant)."),
    "reset_every": ("integer", "Restart each chain from a fresh h_0 every N steps (0: never)."),
    "stop_probability": ("float", "A chain stops moving once E gives the requested class this probability "
                                  "(default: never)."),
}
# The settings the exported `sample` signature takes as inputs; the others are fixed at export.
SIGNATURE_SETTINGS = ("steps", "epsilon1", "epsilon2", "epsilon3")


def define_sampler_flags(steps_help: str | None = None) -> None:
  """The sampler's settings as flags, shared by this program, export.py, evaluate and report."""
  flags.DEFINE_string("sampler_preset", "default",
                      "Named sampler settings: default (chosen by python -m ppgn_tf.sweep, see docs/sampler.md) or "
                      "thesis (Eq. 8 with the thesis' values). The flags below override single settings.")
  for name, (kind, help_text) in SAMPLER_FLAGS.items():
    help_text = f"{steps_help or help_text} (default: the preset's)" if name == "steps" else \
        f"{help_text} (default: the preset's)"
    # Values are checked by SamplerConfig.validate, so every bad value gives one error line.
    getattr(flags, f"DEFINE_{kind}")(name, None, help_text)


def define_precision_flag(help_text: str) -> None:
  flags.DEFINE_enum("precision", "auto", ["auto", "fp32", "bf16"], f"fp32, bf16, or auto (bf16 where the CPU "
                    f"or GPU computes bfloat16 natively, else fp32). {help_text}")


def sampler_overrides_from_flags() -> dict:
  """The sampler settings given on the command line (not left to the preset)."""
  return {name: FLAGS[name].value for name in SAMPLER_FLAGS if FLAGS[name].present}


def sampler_config_from_flags(base=None):
  """A validated SamplerConfig: --sampler_preset's settings (or `base`, unless the preset was given
  explicitly) with the given flags over them. Raises ValueError."""
  from ppgn_tf import sampler_config
  if base is None or FLAGS["sampler_preset"].present:
    base = sampler_config.preset(FLAGS.sampler_preset)
  config = dataclasses.replace(base, **sampler_overrides_from_flags())
  config.validate()
  return config


def saved_model_sampler_config(path: str):
  """For a SavedModel source: None (run its serving_default) when no setting was given; else the export's
  settings with the given ones over them. Only the `sample` signature's inputs can change."""
  overrides = sampler_overrides_from_flags()
  if FLAGS["sampler_preset"].present:
    raise ValueError("--sampler_preset applies to --workdir only (a SavedModel has the settings it was "
                     "exported with; --steps and --epsilon1..3 can change)")
  fixed = sorted(set(overrides) - set(SIGNATURE_SETTINGS))
  if fixed:
    raise ValueError(f"--{fixed[0]} applies to --workdir only (a SavedModel has the settings it was exported "
                     f"with; only {', '.join('--' + n for n in SIGNATURE_SETTINGS)} can change)")
  if not overrides:
    return None
  return sampler_config_from_flags(read_export_settings(path))


def define_flags() -> None:
  """The command line's flags; defined only when run as a program, so importing this
  module from train.py adds no flags there."""
  flags.DEFINE_string("workdir", None, "A training run's workdir (uses its latest checkpoint).")
  flags.DEFINE_string("saved_model", None, "An exported SavedModel: version directory or model base path.")
  flags.DEFINE_string("output_dir", None, "Where to write samples.png, chains.gif, samples.json "
                      "(default: WORKDIR/samples, or SAVED_MODEL/../samples).")
  flags.DEFINE_integer("per_class", 10, "Chains per class (columns of the grid).")
  flags.DEFINE_integer("seed", 0, "Seed of the chains (h_0 and noise).")
  define_sampler_flags()
  define_precision_flag("With --workdir: what G and E compute in (the chain state h stays float32). A SavedModel "
                        "computes in the precision it was exported with.")
  flags.DEFINE_integer("gif_frames", 10, "Frames of chains.gif (0: no GIF).")
  flags.DEFINE_string("inpaint_image", None, "In-paint this image instead of sampling: a 28x28 grayscale .png, a "
                      ".npy of pixels in [0, 1], or test:N (test image N of the run's data set).")
  flags.DEFINE_string("inpaint_mask", "right", "Known pixels for --inpaint_image: a named mask (left, right, top, "
                      "bottom: that half is known; centre: the border is known) or a .png/.npy of 0 (fill in) "
                      "and 1 (known).")


def _read_picture(path: str, what: str) -> np.ndarray:
  """A 28x28 picture from a .png (pixels / 255) or .npy file, as float32 [28, 28, 1]."""
  if not os.path.isfile(path):
    raise ValueError(f"{what}={path}: no such file")
  if path.endswith(".npy"):
    values = np.load(path).astype(np.float32)
  else:
    from PIL import Image
    try:
      values = np.asarray(Image.open(path).convert("L"), np.float32) / 255.0
    except OSError as e:
      raise ValueError(f"{what}={path}: not an image ({e})") from None
  if values.size != 28 * 28:
    raise ValueError(f"{what}={path}: expected 28x28 pixels, got shape {list(values.shape)}")
  return values.reshape(28, 28, 1)


def inpaint_inputs(image_arg: str, mask_arg: str, dataset: str | None, data_dir: str | None):
  """(image [28, 28, 1] in [0, 1], mask [28, 28, 1] of 0/1) from the flags' values; raises ValueError."""
  from ppgn_tf import sampler_config
  if image_arg.startswith("test:"):
    if not dataset:
      raise ValueError(f"--inpaint_image={image_arg}: the data set is unknown here; give a file")
    try:
      index = int(image_arg[5:])
    except ValueError:
      raise ValueError(f"--inpaint_image={image_arg}: expected test:N with a whole number N") from None
    from ppgn_tf import data as data_lib
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
  from ppgn_tf import mala_sampler
  image, mask = mala_sampler.check_inpaint_inputs(image[None], mask, 1)
  return image[0], mask[0]


def inpaint_grid(run, image, mask, per_class: int, seed: int = 0):
  """`run(images, mask, classes, seeds) -> dict` once for every class: (grid images with the masked input first
  in each row, the completed images' class probabilities)."""
  from ppgn_tf import random_streams
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
    if FLAGS.inpaint_image:
      return _inpaint_main()
    if FLAGS.workdir:
      from ppgn_tf import train_lib
      config = sampler_config_from_flags()
      from ppgn_tf import precision as precision_lib
      model = train_lib.load_trained(FLAGS.workdir)
      prior = train_lib.load_code_prior(FLAGS.workdir, model) if config.needs_code_prior else None
      output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, "samples")
      images, frames, probs = sample_grid_from_model(model, config, FLAGS.per_class, FLAGS.seed, FLAGS.gif_frames,
                                                     prior, precision_lib.resolve(FLAGS.precision, "sample"))
      title = f"{FLAGS.workdir}: generator step {int(model.generator_steps.numpy())}, {config.steps} MALA steps"
    else:
      if FLAGS["precision"].present and FLAGS.precision != "auto":
        raise ValueError("--precision applies to --workdir only (a SavedModel computes in the precision it was "
                         "exported with: export.py --precision)")
      path = newest_version(FLAGS.saved_model)
      config = saved_model_sampler_config(path)
      output_dir = FLAGS.output_dir or os.path.join(os.path.dirname(os.path.abspath(path)), "samples")
      images, frames, probs = sample_grid_from_saved_model(path, config, FLAGS.per_class, FLAGS.seed,
                                                           FLAGS.gif_frames)
      title = f"{path}: {(config or read_export_settings(path)).steps} MALA steps"
  except ValueError as e:
    print(f"sample: error: {e}", file=sys.stderr)
    return 1
  stats = write_outputs(images, frames, probs, output_dir, FLAGS.per_class, title)
  logging.info("Wrote %s/samples.png%s; encoder's own accuracy on the samples %.3f",
               output_dir, " and chains.gif" if frames else "", stats["encoder_accuracy"])
  print(os.path.join(output_dir, "samples.png"))
  return 0


def _inpaint_main():
  """In-painting from a workdir (library sampler) or a SavedModel (its `inpaint` signature)."""
  if FLAGS.workdir:
    from ppgn_tf import train_lib
    config = sampler_config_from_flags()
    with open(os.path.join(FLAGS.workdir, train_lib.OPTIONS_FILE)) as f:
      options = json.load(f)
    image, mask = inpaint_inputs(FLAGS.inpaint_image, FLAGS.inpaint_mask, options.get("dataset"),
                                 options.get("data_dir"))
    from ppgn_tf import precision as precision_lib
    sampler = train_lib.make_sampler(FLAGS.workdir, train_lib.load_trained(FLAGS.workdir), config,
                                     precision_lib.resolve(FLAGS.precision, "sample"))
    run = lambda x, m, c, s: {k: v.numpy() for k, v in sampler.inpaint(x, m, c, s).items()}
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, "samples")
    title = f"{FLAGS.workdir}: in-painting, {config.steps} MALA steps"
  else:
    import tensorflow as tf
    path = newest_version(FLAGS.saved_model)
    if sampler_overrides_from_flags() or FLAGS["sampler_preset"].present:
      raise ValueError("with --saved_model, in-painting runs the settings it was exported with")
    options = find_workdir_options(path)
    image, mask = inpaint_inputs(FLAGS.inpaint_image, FLAGS.inpaint_mask, options.get("dataset"),
                                 options.get("data_dir"))
    signature = tf.saved_model.load(path).signatures["inpaint"]
    run = lambda x, m, c, s: {k: v.numpy() for k, v in signature(
        images=tf.constant(x, tf.float32), mask=tf.constant(m, tf.float32), class_id=tf.constant(c, tf.int32),
        seed=tf.constant(s, tf.int64)).items()}
    output_dir = FLAGS.output_dir or os.path.join(os.path.dirname(os.path.abspath(path)), "samples")
    title = f"{path}: in-painting"
  grid, probs = inpaint_grid(run, image, mask, FLAGS.per_class, FLAGS.seed)
  stats = write_inpaint_outputs(grid, probs, output_dir, FLAGS.per_class, title)
  logging.info("Wrote %s/inpaint.png; encoder's own accuracy on the completions %.3f", output_dir,
               stats["encoder_accuracy"])
  print(os.path.join(output_dir, "inpaint.png"))
  return 0


def find_workdir_options(saved_model: str) -> dict:
  """options.json of the workdir an export lives in (WORKDIR/export/N), if there is one."""
  path = os.path.abspath(saved_model)
  for _ in range(3):
    path = os.path.dirname(path)
    if os.path.isfile(os.path.join(path, "options.json")):
      with open(os.path.join(path, "options.json")) as f:
        return json.load(f)
  return {}


if __name__ == "__main__":
  define_flags()
  app.run(main)
