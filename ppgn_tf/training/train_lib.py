"""One training run: validate, pre-train or load E, train PPGN with fit(), write results.

Everything a run makes lives under its workdir:
  encoder/            E (encoder.keras) and metrics.json (unless --encoder_dir)
  config.json         the PPGN configuration (a rerun must match it)
  checkpoints/        tf.train.CheckpointManager checkpoints (resume point); kept/ with --keep_checkpoint_every
  tensorboard/        TensorBoard scalars, one point per G step; images (reconstructions, samples)
  reconstructions/    x next to G(E(x)) at each epoch end
  history.json        every logged quantity per G step
  wasserstein.png     Wasserstein estimates vs G steps (the thesis' Fig. 4)
  losses.png          the terms of L_G vs G steps
  summary.json        counters, wall time and the final value of every loss term

Reading a run back (the PPGN at one of its checkpoints, the code prior, its sampler): ppgn_tf/sampling/trained_run.py,
which sampling and evaluation use without this module. The code prior, samples and export a run's end writes, and
TensorBoard's sample grids: ppgn_tf/sampling/run_end.py, which the train program hands to `train`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from ppgn_tf import checks
from ppgn_tf import files
from ppgn_tf import plots
from ppgn_tf import hardware
from ppgn_tf import precision as precision_lib
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data import sources
from ppgn_tf.files import write_json
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.training import callbacks as callbacks_lib
from ppgn_tf.training import checkpoints as checkpoints_lib
from ppgn_tf.training import distribute
from ppgn_tf.training import preemption
from ppgn_tf.training import run_files
from ppgn_tf.training.run_files import CONFIG_FILE, KEPT_CHECKPOINTS, OPTIONS_FILE, SUMMARY_FILE
from ppgn_tf.training import ppgn
from ppgn_tf.training.ppgn import PPGN, PPGNConfig

ENCODER_BATCH_SIZE = 64
VERBOSITIES = (0, 1, 2)  # --verbose: silent, Keras' progress bar, plain lines (callbacks.ProgressLog).


def progress_display(verbose: int | None, stdout=None) -> int:
  """--verbose as a run shows its progress: `verbose` when given, else Keras' progress bar on a terminal and plain
  lines elsewhere (callbacks.ProgressLog; a log file would keep every redraw of the bar)."""
  if verbose is not None:
    return verbose
  stdout = stdout or sys.stdout
  return 1 if hasattr(stdout, "isatty") and stdout.isatty() else 2


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How and how long to run, as opposed to what is trained (PPGNConfig) and what is drawn from G beside the
  training (ppgn_tf.sampling.run_end.RunEnd)."""
  workdir: str
  dataset: str = "mnist"
  data_dir: str | None = None
  encoder_dir: str | None = None
  encoder_epochs: int = 5
  encoder_recipe: str = "auto"
  encoder_only: bool = False
  epochs: int = 15
  max_generator_steps: int | None = None
  strategy: str = "auto"
  precision: str = precision_lib.AUTO  # auto, fp32 or bf16 (ppgn_tf.precision); options.json holds the resolved one.
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  keep_checkpoint_every: int = 0  # Also keep one checkpoint every N G steps in checkpoints/kept/ (0: none).
  verbose: int | None = None  # 0 silent, 1 Keras' progress bar, 2 plain lines; None: `progress_display`.
  deterministic: bool = False
  command: str | None = None  # The command line, recorded in options.json for reports.
  image_every: int = 100  # TensorBoard images every N G steps (0: only at the end).
  preemption_grace_s: float = 25.0  # After SIGTERM/SIGINT: the deadline to finish the step and checkpoint.

  @property
  def encoder_path(self) -> str:
    return self.encoder_dir or os.path.join(self.workdir, run_files.ENCODER_DIR)

  def __post_init__(self):
    self.validate()  # The one check, before any heavy work: RunOptions that exist are usable.

  def validate(self) -> None:
    """Raises ValueError (one line naming the flag)."""
    if not self.workdir:
      raise ValueError("--workdir is required")
    if os.path.exists(self.workdir) and not os.path.isdir(self.workdir):
      raise ValueError(f"--workdir={self.workdir}: exists and is not a directory")
    for name, minimum in (("encoder_epochs", 1), ("epochs", 1), ("max_generator_steps", 1), ("checkpoint_every", 0),
                          ("keep_checkpoints", 1), ("keep_checkpoint_every", 0),
                          ("image_every", 0), ("preemption_grace_s", 0)):
      if getattr(self, name) is not None:  # max_generator_steps may be left unset.
        checks.at_least(name, getattr(self, name), minimum)
    if self.verbose is not None:
      checks.one_of("verbose", self.verbose, VERBOSITIES)
    if self.encoder_recipe != "auto" and self.encoder_recipe not in encoder_lib.RECIPES:
      raise ValueError(f"--encoder_recipe={self.encoder_recipe}: choose auto, {', '.join(encoder_lib.RECIPES)}")
    precision_lib.check_choice(self.precision)
    distribute.check_strategy(self.strategy)
    sources.check_source(self.dataset)
    if self.encoder_dir is not None:
      encoder_lib.check_encoder_dir(self.encoder_dir)


def check_config_matches(workdir: str, config: PPGNConfig) -> None:
  """A workdir holds one experiment: refuse to resume it with another configuration."""
  saved = run_files.read_json(os.path.join(workdir, CONFIG_FILE))
  if saved is None:
    return
  saved = ppgn.with_config_defaults(saved)
  current = ppgn.config_to_json(config)
  for key in sorted(set(saved) | set(current)):
    if saved.get(key) != current.get(key):
      raise ValueError(f"--workdir={workdir} holds a run with {key}={saved.get(key)}, "
                       f"not {current.get(key)}: use a new --workdir or the same flags")


def encode_split(encoder, split: data_lib.Split, layers) -> dict:
  """E^j(x) of every image of `split` for `layers` (E is frozen: computed once per run)."""
  if not layers:
    return {}
  start = time.time()
  encode = tf.function(lambda x: {l: encoder(x, training=False)[l] for l in layers})
  parts = [encode(x) for x, _ in data_lib.make_pipeline(split, 256, seed=0, shuffle=False, drop_remainder=False)]
  features = {l: np.concatenate([p[l].numpy() for p in parts]) for l in layers}
  logging.info("Encoded %d training images once (layers %s) in %.1f s", len(split), ",".join(layers),
               time.time() - start)
  return features


def _class_balanced(labels: np.ndarray, n: int) -> np.ndarray:
  """Indices of n examples cycling through the classes 0, 1, ..., 9, 0, 1, ... in stored order."""
  by_class = [list(np.flatnonzero(labels == c)) for c in np.unique(labels)]
  picked = []
  while len(picked) < n and any(by_class):
    for members in by_class:
      if members and len(picked) < n:
        picked.append(members.pop(0))
  return np.array(picked)


def _encoder_datasets(train, test, seed):
  return (data_lib.make_pipeline(train, ENCODER_BATCH_SIZE, seed=seed,
                                 stream=random_streams.ENCODER_DATA_ORDER),
          data_lib.make_pipeline(test, 256, seed=seed, shuffle=False, drop_remainder=False))


def train(config: PPGNConfig, options: RunOptions, run_end=None) -> dict:
  """Runs (or resumes) a training run; returns the summary written to summary.json.

  `run_end` draws from G beside the training (ppgn_tf.sampling.run_end.RunEnd; None: nothing): its
  `sampling(model, train_split)` gives TensorBoard's sample grids (`sample_images(classes, seeds)`) and, on the
  chief after the loop, the end-of-run files (`finish(workdir, precision)`: entries of the summary, and the
  samples' images or None). The program (train.py) passes it, so training imports nothing of sampling.
  """
  start = time.time()
  check_config_matches(options.workdir, config)
  # Variables are float32 under either precision, so a checkpoint resumes in the other one.
  options = dataclasses.replace(options, precision=precision_lib.resolve(options.precision, "train"))
  if options.deterministic:
    random_streams.seed_keras(config.seed, random_streams.NETWORK_INITIALISATION)
    tf.config.experimental.enable_op_determinism()
  strategy = distribute.make_strategy(options.strategy)
  chief = distribute.is_chief(strategy)
  # Damaged inputs fail here, before data loading or encoder pre-training.
  restore_from = checkpoints_lib.check_checkpoints(os.path.join(options.workdir, run_files.CHECKPOINTS_DIR))
  if os.path.isfile(os.path.join(options.encoder_path, encoder_lib.ENCODER_FILE)):
    encoder_lib.load_encoder(options.encoder_path)
  files.make_directory(options.workdir, f"--workdir={options.workdir}")

  train_split, test_split = data_lib.load_arrays(options.dataset, options.data_dir)
  logging.info("Data %s: %d train, %d test images", options.dataset, len(train_split), len(test_split))
  encoder = encoder_lib.ensure_encoder(
      options.encoder_path, lambda: _encoder_datasets(train_split, test_split, config.seed),
      epochs=options.encoder_epochs, recipe=encoder_lib.choose_recipe(options.encoder_recipe, len(train_split)),
      seed=config.seed)
  if options.encoder_only:
    metrics = encoder_lib.read_metrics(options.encoder_path)
    logging.info("--encoder_only: stopping after the encoder (test accuracy %.4f)", metrics["test_accuracy"])
    return {"encoder": metrics}

  random_streams.seed_keras(config.seed, random_streams.NETWORK_INITIALISATION)
  with strategy.scope(), precision_lib.policy_scope(options.precision):
    model = ppgn.compile_as_configured(PPGN(encoder, config))
  saving = _Saving(model, options, strategy, chief)
  saving.restore(restore_from)
  if chief:
    write_json(os.path.join(options.workdir, CONFIG_FILE), ppgn.config_to_json(config))
    write_json(os.path.join(options.workdir, OPTIONS_FILE), {
        **dataclasses.asdict(options), **(dataclasses.asdict(run_end) if run_end is not None else {}),
        "encoder_dir": os.path.abspath(options.encoder_dir) if options.encoder_dir else None})

  steps_per_epoch = data_lib.num_batches(len(train_split), config.batch_size)
  if steps_per_epoch < 1:
    raise ValueError(f"--batch_size={config.batch_size} is larger than the {len(train_split)} training images")
  sampling = run_end.sampling(model, train_split) if run_end is not None else None
  run = _callbacks(model, options, strategy, steps_per_epoch, saving, test_split, sampling,
                   restored=bool(restore_from))
  saving.start_clock()
  _fit(model, options, strategy, train_split, steps_per_epoch, saving, run)
  saving.before_save()
  summary = _summary(model, options, strategy, saving, start)
  if chief:
    write_run_pictures(model, run.step_log.history, options.workdir, run.recon_grid)
    end_samples = None
    if sampling is not None:
      entries, end_samples = sampling.finish(options.workdir, options.precision)
      summary.update(entries)
    run.tensorboard_images.write(model, end_samples)  # The end's grid: those samples (no grid without them).
    write_json(os.path.join(options.workdir, SUMMARY_FILE), summary)
    logging.info("Summary: %s", json.dumps({k: summary[k] for k in ("generator_steps", "critic_steps", "wall_seconds")}))
  return summary


class _Saving:
  """The run's checkpoints: the rotating ones (where a rerun resumes), those kept for good every
  --keep_checkpoint_every G steps, and the training time they record (`before_save` brings it, and history.json
  once `step_log` is set, up to date)."""

  def __init__(self, model: PPGN, options: RunOptions, strategy, chief: bool):
    self.model = model
    self.workdir = options.workdir
    self.chief = chief
    self.elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed_seconds")
    self.checkpoint = tf.train.Checkpoint(elapsed_seconds=self.elapsed, **model.checkpoint_items())
    directory = os.path.join(options.workdir, run_files.CHECKPOINTS_DIR)
    if not chief:  # Every worker saves (collectives), only the chief into the workdir.
      directory = os.path.join(options.workdir, run_files.WORKER_CHECKPOINTS_DIR,
                               str(strategy.cluster_resolver.task_id))
    self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=options.keep_checkpoints)
    # Every one kept (max_to_keep=None), one every --keep_checkpoint_every G steps: the workdir grows by one per N.
    self.kept = tf.train.CheckpointManager(self.checkpoint, os.path.join(directory, KEPT_CHECKPOINTS),
                                           max_to_keep=None)
    self.step_log = None  # The chief's GeneratorStepLog: its history.json is saved with each checkpoint.
    self._run_start = time.time()
    self._base_elapsed = 0.0

  def restore(self, restore_from: str | None) -> None:
    if restore_from:
      try:
        self.checkpoint.restore(restore_from).assert_existing_objects_matched()
      except (tf.errors.OpError, AssertionError, ValueError) as e:
        raise ValueError(f"{restore_from}: cannot restore this checkpoint "
                         f"({type(e).__name__}: {str(e).splitlines()[0]})") from e
      logging.info("Resumed from %s at generator step %d, critic step %d", restore_from,
                   int(self.model.generator_steps.numpy()), int(self.model.critic_steps.numpy()))

  def start_clock(self) -> None:
    """Training time counts from here, on top of what the restored checkpoint recorded."""
    self._run_start, self._base_elapsed = time.time(), float(self.elapsed.numpy())

  def before_save(self) -> None:
    self.elapsed.assign(self._base_elapsed + time.time() - self._run_start)
    if self.step_log is not None:  # The history up to the checkpoint survives a kill.
      self.step_log.save(self.workdir)


@dataclasses.dataclass
class _Callbacks:
  """fit()'s callbacks, and those of them the run reads after the loop."""
  all: list
  step_log: callbacks_lib.GeneratorStepLog
  bounds: callbacks_lib.StopAtBounds
  signal_watch: preemption.SignalWatch
  stop_on_signal: preemption.StopOnSignal
  recon_grid: callbacks_lib.ReconstructionGrid
  tensorboard_images: callbacks_lib.TensorBoardImages | None


def _callbacks(model: PPGN, options: RunOptions, strategy, steps_per_epoch: int, saving: _Saving, test_split,
               sampling, restored: bool) -> _Callbacks:
  """fit()'s callbacks in their order: the per-G-step log (continuing a restored run's history.json), the bounds,
  the signal stop, the checkpoints, the progress lines, and on the chief TensorBoard and the pictures."""
  config, chief = model.config, saving.chief
  bounds = callbacks_lib.StopAtBounds(options.epochs * steps_per_epoch, options.max_generator_steps)
  history = {}
  if restored:  # history.json may run ahead of the checkpoint (a kill after its last save).
    restored_step = int(model.generator_steps.numpy())
    history = {k: [p for p in v if p[0] <= restored_step]
               for k, v in callbacks_lib.GeneratorStepLog.load_history(options.workdir).items()}
  step_log = callbacks_lib.GeneratorStepLog(
      os.path.join(options.workdir, run_files.TENSORBOARD_DIR, "generator_steps") if chief else None,
      config.batch_size, history)
  if chief:
    saving.step_log = step_log
  fixed_test_images = data_lib.normalize(test_split.images[_class_balanced(test_split.labels, 32)]).numpy()
  recon_grid = callbacks_lib.ReconstructionGrid(fixed_test_images,
                                                os.path.join(options.workdir, run_files.RECONSTRUCTIONS_DIR))
  tensorboard_images = None
  if chief:
    tensorboard_images = callbacks_lib.TensorBoardImages(
        os.path.join(options.workdir, run_files.TENSORBOARD_DIR, "images"), fixed_test_images, options.image_every,
        sampling.sample_images if sampling is not None else None, seed=config.seed)
  # What the index on disk names: a save cut short may have updated the manager but not yet the index.
  signal_watch = preemption.SignalWatch(options.preemption_grace_s,
                                        lambda: tf.train.latest_checkpoint(saving.manager.directory))
  stop_on_signal = preemption.StopOnSignal(signal_watch, strategy)
  callbacks = [
      step_log,
      bounds,
      stop_on_signal,  # Before the checkpoint callback, whose end-of-training save then follows the stop.
      callbacks_lib.PeriodicCheckpoint(saving.manager, options.checkpoint_every, saving.before_save, saving.kept,
                                       options.keep_checkpoint_every),
  ]
  if progress_display(options.verbose) == 2:
    callbacks.append(callbacks_lib.ProgressLog(options.epochs, config.batch_size))
  if chief:
    callbacks += [keras.callbacks.TensorBoard(os.path.join(options.workdir, run_files.TENSORBOARD_DIR),
                                              write_graph=False), recon_grid, tensorboard_images]
  return _Callbacks(callbacks, step_log, bounds, signal_watch, stop_on_signal, recon_grid, tensorboard_images)


def _fit(model: PPGN, options: RunOptions, strategy, train_split, steps_per_epoch: int, saving: _Saving,
         run: _Callbacks) -> None:
  """fit() up to the run's bounds; raises preemption.Preempted when a signal stopped it."""
  if run.bounds.reached(model):
    logging.info("Nothing to train: the run already reached its bounds")
    return
  config, chief = model.config, saving.chief
  critic_steps = int(model.critic_steps.numpy())
  train_ds = data_lib.make_pipeline(train_split, config.batch_size, seed=config.seed, repeat=True,
                                    start_batch=critic_steps,
                                    features=encode_split(model.encoder, train_split, model.cacheable_layers()))
  logging.info("Training %s for up to %d critic iterations (%d per epoch)%s on %d replica(s)",
               "+".join(model.critic_names), run.bounds.max_critic_steps, steps_per_epoch,
               f", {options.max_generator_steps} G steps" if options.max_generator_steps else "",
               strategy.num_replicas_in_sync)
  with run.signal_watch:
    try:
      model.fit(train_ds, epochs=options.epochs, steps_per_epoch=steps_per_epoch,
                initial_epoch=critic_steps // steps_per_epoch, callbacks=run.all,
                verbose=int(progress_display(options.verbose) == 1),
                shuffle=False)  # The pipeline shuffles (seeded, resumable).
    except BaseException:
      if chief:  # The history up to the failure, without hiding the failure behind a second one.
        try:
          run.step_log.save(options.workdir)
        except files.StorageError as e:
          logging.warning("%s", e)
      raise
    if chief:
      run.step_log.save(options.workdir)
    signum = run.stop_on_signal.stopped_by or run.signal_watch.received
    if signum:  # fit()'s end-of-training checkpoint is written; the end-of-run work is left to the rerun.
      raise _preempted(signum, run.signal_watch, saving.manager, model, chief)


def _summary(model: PPGN, options: RunOptions, strategy, saving: _Saving, start: float) -> dict:
  """summary.json's counters, times, hardware and final losses (the end-of-run files add theirs)."""
  return {
      "generator_steps": int(model.generator_steps.numpy()),
      "critic_steps": int(model.critic_steps.numpy()),
      "wall_seconds": float(saving.elapsed.numpy()),
      "this_invocation_seconds": time.time() - start,
      "critics": list(model.critic_names),
      "replicas": strategy.num_replicas_in_sync,
      "precision": options.precision,
      # Seconds per step compare only between runs on one CPU model and the same GPUs (none on a CPU run).
      "cpu": hardware.cpu_model(),
      "gpus": hardware.gpu_models(),
      "final": {k: float(v.numpy()) for k, v in model.latest.items()},
      "encoder_test_accuracy": encoder_lib.read_metrics(options.encoder_path).get("test_accuracy"),
  }


def _preempted(signum, signal_watch, manager, model, chief) -> preemption.Preempted:
  """Logs the one line saying where the stopped run stands; the exception train.py exits with."""
  seconds = time.monotonic() - signal_watch.received_at if signal_watch.received_at else 0.0
  message = (f"{signal.Signals(signum).name}: stopped after critic step {int(model.critic_steps.numpy())} "
             f"(generator step {int(model.generator_steps.numpy())}), wrote {manager.latest_checkpoint}"
             f"{' and history.json' if chief else ''} {seconds:.1f} s after the signal; rerun the same command "
             "to resume")
  logging.warning("%s", message)
  return preemption.Preempted(signum, message)


def write_run_pictures(model: PPGN, history: dict, workdir: str, recon_grid) -> None:
  """Wasserstein curves (Fig. 4), loss curves and a final reconstruction grid."""
  def curves(keys):
    return {k: (np.array(history[k])[:, 0], np.array(history[k])[:, 1]) for k in keys if history.get(k)}

  w = curves([f"w_{n}" for n in model.critic_names])
  if w:
    plots.save_curves(w, os.path.join(workdir, run_files.WASSERSTEIN_PNG),
                      title="Wasserstein estimate  mean D(real) - mean D(fake)", ylabel="estimate")
  l = curves(["g_loss", "l_x", "l_h", "l_gan"])
  if l:
    plots.save_curves(l, os.path.join(workdir, run_files.LOSSES_PNG), title="Generator loss terms", ylabel="loss")
  recon_grid.set_model(model)
  recon_grid.write(os.path.join(workdir, run_files.RECONSTRUCTIONS_DIR, "final.png"),
                   f"final, generator step {int(model.generator_steps.numpy())}")
