"""A trained run read back from its workdir: the PPGN at one of its checkpoints, the training codes (the code
prior), its sampler, and the samples and SavedModel made from it.

What sampling, evaluation and export need of a run, apart from the training loop (ppgn_tf/training/train_lib.py),
which writes the workdir; `run_end` calls `write_samples` and `export_sampler` at a run's end. The configuration's
JSON form is ppgn_tf/training/ppgn.py's, the checkpoint checks ppgn_tf/training/checkpoints.py's.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from absl import logging

from ppgn_tf import precision as precision_lib
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.sampling import sample_lib
from ppgn_tf.sampling import serving
from ppgn_tf.training import run_files
from ppgn_tf.training.checkpoints import check_checkpoints
# Read here by evaluation (checkpoints against time): one import for what it needs of a run.
from ppgn_tf.training.checkpoints import checkpoint_elapsed_seconds, kept_checkpoints  # noqa: F401
from ppgn_tf.training.ppgn import PPGN, config_from_json
from ppgn_tf.training.run_files import CONFIG_FILE


def load_trained(workdir: str, checkpoint: str | None = None) -> PPGN:
  """The PPGN of a workdir at its latest checkpoint (or at `checkpoint`), for sampling and export.

  Raises ValueError (one line) when the workdir holds no finished checkpoint.
  """
  run_files.check_workdir(workdir)
  config = config_from_json(run_files.read_json(os.path.join(workdir, CONFIG_FILE)))
  latest = checkpoint or check_checkpoints(os.path.join(workdir, run_files.CHECKPOINTS_DIR))
  if not latest:
    raise ValueError(f"{workdir}/checkpoints: no checkpoint (train first)")
  model = PPGN(encoder_lib.load_encoder(run_files.encoder_dir(workdir)), config)
  try:
    tf.train.Checkpoint(**model.checkpoint_items()).restore(latest).expect_partial().assert_existing_objects_matched()
  except (tf.errors.OpError, AssertionError, ValueError) as e:
    raise ValueError(f"{latest}: cannot restore ({type(e).__name__}: {str(e).splitlines()[0]})") from e
  return model


def compute_code_prior(model: PPGN, train_split: data_lib.Split):
  """The codes E(x) of (at most 10,000) training images and their classes (a mala_sampler.CodePrior)."""
  return mala_sampler.CodePrior.from_encoder(model.encoder, data_lib.normalize(train_split.images).numpy(),
                                             train_split.labels, model.config.code_layer, seed=model.config.seed)


def save_code_prior(model: PPGN, train_split: data_lib.Split, workdir: str, prior=None):
  """WORKDIR/code_prior.npz: the codes E(x) of (at most 10,000) training images, which the sampler's
  h_0 and percentile clipping read. E is frozen, so they are computed once (`prior`, when given)."""
  if prior is None:
    prior = compute_code_prior(model, train_split)
  prior.save(os.path.join(workdir, mala_sampler.CODE_PRIOR_FILE))
  return prior


def load_code_prior(workdir: str, model: PPGN):
  """The real codes of a workdir's training images, with their classes (computed and saved there if the
  run predates them, or predates the classes)."""
  path = os.path.join(workdir, mala_sampler.CODE_PRIOR_FILE)
  if os.path.isfile(path):
    prior = mala_sampler.CodePrior.load(path)
    if prior.labels is not None:
      return prior
  options = run_files.read_options(workdir)
  logging.info("%s: absent or without classes; encoding the training images of %s once", path,
               options["dataset"])
  train_split, _ = data_lib.load_arrays(options["dataset"], options.get("data_dir"))
  return save_code_prior(model, train_split, workdir)


def make_sampler(workdir: str, model: PPGN, config, precision: str = precision_lib.FP32):
  """The library sampler of a trained run: its averaged G when it keeps one, and its real codes when
  `config` reads them; G and E compute in `precision` (fp32 or bf16)."""
  prior = load_code_prior(workdir, model) if config.needs_code_prior else None
  return sample_lib.model_sampler(model, config, prior, precision)


def write_samples(model: PPGN, config, per_class: int, output_dir: str, prior=None,
                  precision: str = precision_lib.FP32) -> tuple[dict, np.ndarray]:
  """OUTPUT_DIR (a run's samples/): a class-conditional grid and chains GIF with the sampler settings `config`,
  `per_class` chains per class seeded from the run's seed.

  Returns what sample_lib.write_outputs returns, and the images (one class after another, in [0, 1])."""
  images, frames, outputs = sample_lib.sample_grid_from_model(model, config, per_class, seed=model.config.seed,
                                                              prior=prior, precision=precision)
  title = f"generator step {int(model.generator_steps.numpy())}, {config.steps} MALA steps"
  return sample_lib.write_outputs(images, frames, outputs, output_dir, per_class, title), images


def export_sampler(model: PPGN, config, export_dir: str, prior=None, precision: str = precision_lib.FP32,
                   embed_training_codes: bool = False, version: int | None = None, **archive_options) -> str:
  """Exports the sampler (serving_default with the settings `config`) to EXPORT_DIR/N, TensorFlow Serving's
  layout (N `version`, or one above the highest existing version); returns that path. `archive_options`:
  serving.build_archive's request limits and conditions (max_batch, max_steps, condition_model, unit_layer)."""
  archive = serving.build_archive(model.sampling_generator, model.encoder, config, model.config.code_layer, prior,
                                  precision=precision, embed_training_codes=embed_training_codes,
                                  **archive_options)
  path = serving.write(archive, export_dir, version)
  logging.info("Exported the sampler to %s", path)
  return path
