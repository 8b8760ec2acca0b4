"""Stopping a training run cleanly on SIGTERM or SIGINT, as schedulers stop jobs.

Cloud schedulers, Kubernetes and Slurm send SIGTERM and allow a grace period before SIGKILL. While
`SignalWatch` is active, SIGTERM or SIGINT lets the current step finish; `StopOnSignal` then stops
fit(), whose end-of-training checkpoint (PeriodicCheckpoint) and history.json follow, and train()
raises `Preempted`. If that has not happened within the grace period, the process exits at its end:
the last complete checkpoint stays in charge (CheckpointManager never names a half-written one).

Under MultiWorkerMirroredStrategy a signal reaches one worker or all of them. `StopOnSignal`
all-reduces every worker's signal after every step, so all workers stop after the same step and all
take part in the collective checkpoint save; a worker that cannot finish in time exits, and then no
worker's checkpoint completes. tf.distribute's PreemptionCheckpointHandler does that agreement too,
but it does nothing on GCP CPU machines, handles SIGTERM only, adds its own variable to the
checkpoint (older checkpoints would no longer match) and reads its grace period as time to keep
training, not a deadline; Keras 3's BackupAndRestore handles no signals.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import keras
import tensorflow as tf
from absl import logging

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_status(signum: int) -> int:
  """The status shells report for a process a signal ended: 128 + its number (143 SIGTERM, 130 SIGINT)."""
  return 128 + signum


class Preempted(Exception):
  """The run stopped on a signal after writing its checkpoint; rerunning the command resumes it."""

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_status(self) -> int:
    return exit_status(self.signum)


class SignalWatch:
  """Catches SIGTERM and SIGINT inside a `with` block; outside it they act as before.

  The main thread notices a Python signal handler only between TensorFlow calls, and one training
  step is one call. A thread reading Python's wakeup fd learns of the signal at once instead, so the
  grace period counts from the signal. A second signal ends the process at once.
  """

  def __init__(self, grace_seconds: float, last_checkpoint=lambda: None):
    self.grace_seconds = grace_seconds
    self.last_checkpoint = last_checkpoint  # For the message when the deadline passes.
    self.received: int | None = None  # The first signal's number.
    self.received_at: float | None = None  # time.monotonic() of the signal (or of the agreement to stop).
    self._lock = threading.Lock()
    self._deadline: threading.Timer | None = None
    self._active = False

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      logging.warning("Not in the main thread: SIGTERM and SIGINT keep their usual effect (no clean stop)")
      return self
    self._read_fd, self._write_fd = os.pipe()
    os.set_blocking(self._write_fd, False)  # Python requires a non-blocking wakeup fd.
    self._previous_handlers = {s: signal.signal(s, lambda signum, frame: None) for s in SIGNALS}
    self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
    threading.Thread(target=self._read_signals, name="SignalWatch", daemon=True).start()
    self._active = True
    return self

  def __exit__(self, *exc_info):
    self.cancel_deadline()
    if not self._active:
      return False
    signal.set_wakeup_fd(self._previous_wakeup_fd)
    for s, handler in self._previous_handlers.items():
      signal.signal(s, handler)
    os.close(self._write_fd)  # The reader sees end of file and ends.
    self._active = False
    return False

  def _read_signals(self):
    with os.fdopen(self._read_fd, "rb", buffering=0) as wakeup:
      while byte := wakeup.read(1):
        signum = byte[0]
        if signum not in SIGNALS:
          continue
        with self._lock:
          first = self.received is None
          if first:
            self.received = signum
        if first:
          self.start_deadline(signum)
        else:
          self._exit_now(signum, f"second {signal.Signals(signum).name}: exiting now")

  def start_deadline(self, signum: int) -> None:
    """Starts the grace period (once): at its end the process exits with the signal's status."""
    with self._lock:
      if self._deadline is not None:
        return
      self.received_at = time.monotonic()
      self._deadline = threading.Timer(
          self.grace_seconds, self._exit_now,
          args=(signum, f"{signal.Signals(signum).name}: the current step and its checkpoint did not finish "
                        f"within --preemption_grace_s={self.grace_seconds:g}; exiting"))
      self._deadline.daemon = True
      self._deadline.start()

  def cancel_deadline(self) -> None:
    with self._lock:
      if self._deadline is not None:
        self._deadline.cancel()

  def _exit_now(self, signum: int, reason: str) -> None:
    last = self.last_checkpoint()
    logging.error("%s; %s", reason, f"the last complete checkpoint {last} stays in charge" if last else
                  "no checkpoint was written yet")
    sys.stderr.flush()
    os._exit(exit_status(signum))  # Not sys.exit: the main thread may be inside a TensorFlow call.


class StopOnSignal(keras.callbacks.Callback):
  """Stops fit() after the step during which SIGTERM or SIGINT arrived, on every worker alike."""

  def __init__(self, watch: SignalWatch, strategy: tf.distribute.Strategy):
    super().__init__()
    self.watch = watch
    self.stopped_by: int | None = None
    self._sum_over_workers = None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
      # A collective after every step: every worker calls it, in the same order as its training steps.
      # (The same cross-replica reduce as PPGN's loss means.)
      self._sum_over_workers = tf.function(lambda values: strategy.reduce(
          tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(values,)), axis=None))

  def _agreed_signal(self) -> int | None:
    own = self.watch.received
    if self._sum_over_workers is None:
      return own
    counts = self._sum_over_workers(tf.constant([int(own == s) for s in SIGNALS], tf.int32)).numpy()
    if own:
      return own
    return next((s for s, count in zip(SIGNALS, counts) if count > 0), None)  # A peer's signal.

  def on_train_batch_end(self, batch, logs=None):
    signum = self._agreed_signal()
    if signum:
      self.watch.start_deadline(signum)  # A worker stopped by a peer's signal keeps the same deadline.
      self.stopped_by = signum
      self.model.stop_training = True
