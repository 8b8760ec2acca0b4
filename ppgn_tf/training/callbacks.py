"""Keras callbacks that turn a PPGN fit() into a run: checkpoints, per-G-step logs, pictures.

Keras counts batches, and a batch is one critic iteration; the thesis plots
against generator steps, so these callbacks log whenever the G step count moves.
"""

from __future__ import annotations

import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from ppgn_tf import plots
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import NUM_CLASSES
from ppgn_tf.files import StorageError, cause, write_json
from ppgn_tf.training.run_files import HISTORY_FILE, read_json


class DivergenceError(RuntimeError):
  """A loss term became NaN or Inf."""


class GeneratorStepLog(keras.callbacks.Callback):
  """Records every logged quantity once per G step: TensorBoard scalars and history.json.

  Also stops the run with DivergenceError when a loss term is not finite,
  before the next checkpoint could save the broken state.
  """

  def __init__(self, summary_dir: str | None, batch_size: int, history: dict | None = None):
    super().__init__()
    self.batch_size = batch_size
    # name -> [[g_step, value], ...]; continued across resumed runs.
    self.history: dict[str, list] = history or {}
    self.writer = tf.summary.create_file_writer(summary_dir) if summary_dir else None
    self._last_g = None
    self._last_time = None
    self._last_critic_steps = None

  @staticmethod
  def load_history(workdir: str) -> dict:
    return read_json(os.path.join(workdir, HISTORY_FILE)) or {}

  def on_train_begin(self, logs=None):
    self._last_g = int(self.model.generator_steps.numpy())
    self._last_critic_steps = int(self.model.critic_steps.numpy())
    self._last_time = time.time()

  def on_train_batch_end(self, batch, logs=None):
    # Checked every critic iteration, before any later callback can checkpoint a broken state.
    values = {k: float(v) for k, v in logs.items() if k != "g_steps"}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    g = int(logs["g_steps"])
    if bad:
      raise DivergenceError(f"loss term {bad[0]} is {values[bad[0]]} at generator step {g} "
                            f"(critic step {int(self.model.critic_steps.numpy())}); the last checkpoint "
                            "holds the last good state")
    if g == self._last_g:
      return
    now = time.time()
    critic_steps = int(self.model.critic_steps.numpy())
    images_per_second = (critic_steps - self._last_critic_steps) * self.batch_size / max(now - self._last_time, 1e-9)
    values["images_per_second"] = images_per_second
    values["critic_steps"] = float(critic_steps)
    for k, v in values.items():
      self.history.setdefault(k, []).append([g, v])
    if self.writer is not None:
      with self.writer.as_default(step=g):
        for k, v in values.items():
          tf.summary.scalar(_summary_name(k), v)
    self._last_g, self._last_time, self._last_critic_steps = g, now, critic_steps

  def on_train_end(self, logs=None):
    if self.writer is not None:
      self.writer.flush()

  def save(self, workdir: str) -> None:
    write_json(os.path.join(workdir, HISTORY_FILE), self.history)


def _summary_name(key: str) -> str:
  """Groups TensorBoard scalars: losses/..., wasserstein/..., critics/..., speed/..."""
  if key.startswith("w_"):
    return f"wasserstein/{key[2:]}"
  if key.startswith(("d_loss_", "gp_")):
    return f"critics/{key}"
  if key in ("images_per_second",):
    return f"speed/{key}"
  if key in ("critic_steps",):
    return f"counters/{key}"
  return f"losses/{key}"


PROGRESS_SECONDS = 60.0  # Without a terminal, a progress line at least this often...
PROGRESS_GENERATOR_STEPS = 100  # ...or every this many G steps, whichever comes first.


class ProgressLog(keras.callbacks.Callback):
  """Plain progress lines on stdout, for a log that is not a terminal (a scheduler's, or `> log`): one line per
  epoch (`epoch E/N: ...`), and within an epoch a line (`progress: ...`) whenever `seconds` passed or
  `generator_steps` G steps were taken since the last line, whichever comes first, so a log says how the run goes
  however long its epochs are. Each line holds the G and critic steps, the seconds and images per second since
  the line before (the epoch's, for an epoch line) and the latest value of every logged quantity.

  Keras' progress bar redraws its line with carriage returns and escape codes, which a log file keeps: one line
  of tens of kilobytes per epoch. A stopped run (its bounds, a signal) gets the line of its last, partial epoch.
  """

  def __init__(self, epochs: int, batch_size: int, seconds: float = PROGRESS_SECONDS,
               generator_steps: int = PROGRESS_GENERATOR_STEPS, stream=None, clock=time.monotonic):
    super().__init__()
    self.epochs = epochs
    self.batch_size = batch_size
    self.seconds = seconds
    self.generator_steps = generator_steps
    self.stream = stream  # None: sys.stdout at the time of writing (as print's default).
    self.clock = clock
    self._epoch_start = None  # (time, critic steps) at the epoch's start...
    self._last_line = None  # ...and at the last line, with its G step.
    self._epoch = 0

  def on_epoch_begin(self, epoch, logs=None):
    now, critic_steps, generator_steps = self.clock(), *self._counters()
    self._epoch_start = (now, critic_steps)
    self._last_line = (now, critic_steps, generator_steps)
    self._epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    now, generator_steps = self.clock(), int(logs["g_steps"])
    since, _, last_generator_steps = self._last_line
    if now - since >= self.seconds or generator_steps - last_generator_steps >= self.generator_steps:
      self._write(f"progress (epoch {self._epoch + 1}/{self.epochs})", self._last_line[:2], now)

  def on_epoch_end(self, epoch, logs=None):
    self._write(f"epoch {epoch + 1}/{self.epochs}", self._epoch_start, self.clock())

  def _counters(self) -> tuple[int, int]:
    return int(self.model.critic_steps.numpy()), int(self.model.generator_steps.numpy())

  def _write(self, prefix: str, start: tuple[float, int], now: float) -> None:
    critic_steps, generator_steps = self._counters()
    seconds = now - start[0]
    images_per_second = (critic_steps - start[1]) * self.batch_size / max(seconds, 1e-9)
    values = " ".join(f"{k} {float(v.numpy()):.4g}" for k, v in self.model.latest.items())
    print(f"{prefix}: generator step {generator_steps}, critic step {critic_steps}, {seconds:.1f} s, "
          f"{images_per_second:.0f} images/s; {values}", file=self.stream, flush=True)
    self._last_line = (now, critic_steps, generator_steps)


class PeriodicCheckpoint(keras.callbacks.Callback):
  """Saves a tf.train.CheckpointManager every `every` critic iterations and at the end.

  CheckpointManager writes each checkpoint under a temporary name and then
  updates its index, so a crash never leaves a half-written checkpoint behind.
  """

  def __init__(self, manager: tf.train.CheckpointManager, every: int, before_save=None,
               kept: tf.train.CheckpointManager | None = None, keep_every_generator_steps: int = 0):
    super().__init__()
    self.manager = manager
    self.every = every
    self.before_save = before_save
    # Beside the rotating checkpoints, one kept for good every N G steps (quality against time), in `kept`.
    self.kept = kept
    self.keep_every = keep_every_generator_steps
    self._saved_number = None  # The critic step of this process' last save.
    self._kept_step = None  # The G step of this process' last kept checkpoint.

  def _save(self):
    # Logged losses come from the forward pass before an update, so a step can
    # log finite values yet leave non-finite weights: check what would be saved.
    broken = [v.path for v in self.model.generator.weights + [w for c in self.model.critics.values()
                                                               for w in c.weights]
              if not np.all(np.isfinite(v.numpy()))]
    if broken:
      raise DivergenceError(f"weights {broken[0]} became NaN or Inf at generator step "
                            f"{int(self.model.generator_steps.numpy())} (critic step "
                            f"{int(self.model.critic_steps.numpy())}); not checkpointed, the last "
                            "checkpoint holds the last good state")
    number = int(self.model.critic_steps.numpy())
    if number == self._saved_number:
      # Saved at this step already (periodically, then at the end): rewriting could only damage it. Every
      # worker saved at the same steps, so all skip alike (a save is collective).
      return
    try:
      if self.before_save is not None:
        self.before_save()
      self.manager.save(checkpoint_number=number)
      self._saved_number = number
    except (OSError, tf.errors.OpError) as e:  # A full or failing disk; TensorFlow reports ENOSPC as an OpError.
      self._remove_partial(number)
      detail = cause(e) if isinstance(e, StorageError) else f"{self.manager.directory}: {cause(e)}"
      raise StorageError(f"checkpoint ckpt-{number} not written ({detail}); the last complete checkpoint "
                         f"{self.manager.latest_checkpoint or '(none yet)'} stays in charge") from e

  def _remove_partial(self, number: int) -> None:
    """Frees what a failed save left (its temporary files); the index never named them."""
    for path in tf.io.gfile.glob(os.path.join(self.manager.directory, f"ckpt-{number}[._]*")):
      try:
        if tf.io.gfile.isdir(path):
          tf.io.gfile.rmtree(path)
        else:
          tf.io.gfile.remove(path)
      except tf.errors.OpError:
        pass

  def _keep(self, generator_step: int):
    if self.before_save is not None:
      self.before_save()
    try:
      self.kept.save(checkpoint_number=generator_step)
    except (OSError, tf.errors.OpError) as e:
      raise StorageError(f"kept checkpoint of generator step {generator_step} not written "
                         f"({self.kept.directory}: {cause(e)})") from e
    self._kept_step = generator_step

  def on_train_batch_end(self, batch, logs=None):
    if self.every and int(self.model.critic_steps.numpy()) % self.every == 0:
      self._save()
    if self.kept is not None and self.keep_every:
      generator_step = int(self.model.generator_steps.numpy())
      if generator_step and generator_step % self.keep_every == 0 and generator_step != self._kept_step:
        self._keep(generator_step)

  def on_train_end(self, logs=None):
    self._save()


class StopAtBounds(keras.callbacks.Callback):
  """Stops fit() when the run reaches its total critic iterations or G steps."""

  def __init__(self, max_critic_steps: int | None, max_generator_steps: int | None):
    super().__init__()
    self.max_critic_steps = max_critic_steps
    self.max_generator_steps = max_generator_steps

  def reached(self, model) -> bool:
    return ((self.max_critic_steps is not None and int(model.critic_steps.numpy()) >= self.max_critic_steps)
            or (self.max_generator_steps is not None
                and int(model.generator_steps.numpy()) >= self.max_generator_steps))

  def on_train_batch_end(self, batch, logs=None):
    if self.reached(self.model):
      self.model.stop_training = True


class ReconstructionGrid(keras.callbacks.Callback):
  """At each epoch end: a PNG of fixed test images next to G(E(x))."""

  def __init__(self, images: np.ndarray, directory: str):
    super().__init__()
    self.images = images  # Normalised, float32.
    self.directory = directory

  def write(self, path: str, title: str) -> None:
    recon = self.model.reconstruct(tf.constant(self.images))
    plots.save_reconstruction_grid(data_lib.denormalize(self.images).numpy(),
                                   data_lib.denormalize(recon).numpy(), path, title=title)

  def on_epoch_end(self, epoch, logs=None):
    g = int(self.model.generator_steps.numpy())
    self.write(os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png"),
               f"epoch {epoch + 1}, generator step {g}")


class TensorBoardImages(keras.callbacks.Callback):
  """TensorBoard images every `every` G steps (0: none during training) and from `write` at the end.

  `images/reconstructions`: fixed test images x next to G(E(x)), pairs side by side. `images/samples`:
  the class-conditional sample grid, one row per class, of `chains_per_class` chains drawn by `sample_images`
  (classes, seeds -> images in [0, 1]: the run's sampler, ppgn_tf.sampling.run_end; None: no sample grid
  during training); at the end, the first chains of the run's end-of-run samples instead (no extra sampling).
  A fixed, small image set and few chains bound the cost. Chief only.
  """

  def __init__(self, summary_dir: str, images: np.ndarray, every: int, sample_images=None,
               chains_per_class: int = 2, seed: int = 0):
    super().__init__()
    self.writer = tf.summary.create_file_writer(summary_dir)
    self.images = images  # Normalised, float32.
    self.every = every
    self.sample_images = sample_images
    self.chains_per_class = chains_per_class
    self.seed = seed
    self._written_step = None

  def _sample_grid(self) -> np.ndarray:
    classes = np.repeat(np.arange(NUM_CLASSES), self.chains_per_class).astype(np.int32)
    # The same chains at every write: the run seed's chain seeds, as ppgn_tf.sample draws them.
    seeds = random_streams.chain_seeds(self.seed, len(classes))
    return plots.image_grid(self.sample_images(classes, seeds), nrow=self.chains_per_class)

  def _reconstruction_grid(self, model) -> np.ndarray:
    recon = data_lib.denormalize(model.reconstruct(tf.constant(self.images))).numpy()
    pairs = np.stack([data_lib.denormalize(self.images).numpy(), recon], axis=1).reshape(-1, *recon.shape[1:])
    return plots.image_grid(pairs, nrow=8)  # Four (x, G(E(x))) pairs per row.

  def write(self, model, end_samples: np.ndarray | None = None) -> None:
    """The end-of-run pictures at the model's G step: the reconstructions, and the sample grid cut from
    `end_samples` (the run's end-of-run samples: images in [0, 1], one class after another) when given."""
    self._write(model, end_samples, during_training=False)

  def _write(self, model, end_samples, during_training: bool) -> None:
    step = int(model.generator_steps.numpy())
    if step == self._written_step:
      return
    grids = {"images/reconstructions": self._reconstruction_grid(model)}
    if during_training and self.sample_images is not None:
      grids["images/samples"] = self._sample_grid()
    elif end_samples is not None:
      per_class = len(end_samples) // NUM_CLASSES
      chains = end_samples.reshape(NUM_CLASSES, per_class, *end_samples.shape[1:])[:, :self.chains_per_class]
      grids["images/samples"] = plots.image_grid(chains.reshape(-1, *end_samples.shape[1:]),
                                                 nrow=chains.shape[1])
    with self.writer.as_default(step=step):
      for name, grid in grids.items():
        tf.summary.image(name, grid[np.newaxis, :, :, np.newaxis], max_outputs=1)
    self.writer.flush()
    self._written_step = step

  def on_train_batch_end(self, batch, logs=None):
    step = int(logs["g_steps"])
    if self.every and step % self.every == 0 and step > 0:
      self._write(self.model, None, during_training=True)
