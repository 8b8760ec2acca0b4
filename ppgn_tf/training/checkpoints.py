"""A run's checkpoints read back: the checked latest one (where a rerun resumes, what loading restores), the ones
kept for good (--keep_checkpoint_every) and the training time each was written at."""

from __future__ import annotations

import os
import re

import tensorflow as tf
from absl import logging

from ppgn_tf.training import run_files


def check_checkpoints(directory: str) -> str | None:
  """The latest checkpoint in `directory`, after reading every tensor of it; None for a new run.

  Runs before any heavy work. A run never starts over on top of checkpoints it
  cannot use: that would overwrite them. Raises ValueError (one line).
  """
  if not os.path.isdir(directory):
    return None
  try:
    state = tf.train.get_checkpoint_state(directory)
  except Exception as e:  # A damaged text index raises protobuf or OS errors.
    raise ValueError(f"{directory}/checkpoint: unreadable index ({type(e).__name__})") from e
  if state is not None and state.model_checkpoint_path:
    prefix = state.model_checkpoint_path  # Already joined to `directory` when the index holds a relative path.
  else:
    # No index: a kill between a first checkpoint's last file and the index, or a deleted index. A
    # checkpoint whose .index exists is complete (TensorFlow writes it last); take the newest.
    steps = [int(m.group(1)) for m in (re.fullmatch(r"ckpt-(\d+)\.index", n) for n in os.listdir(directory)) if m]
    if not steps:
      return None  # At most a half-written first save (ckpt-N_temp): start afresh.
    prefix = os.path.join(directory, f"ckpt-{max(steps)}")
    logging.warning("%s: no 'checkpoint' index; resuming from the newest complete checkpoint %s", directory, prefix)
  if not tf.io.gfile.exists(prefix + ".index"):
    raise ValueError(f"{prefix}: named by {directory}/checkpoint but its files are missing")
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)  # Reads the data and checks its checksum.
  except (tf.errors.OpError, ValueError) as e:
    raise ValueError(f"{prefix}: corrupt checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from e
  return prefix


def kept_checkpoints(workdir: str) -> list[tuple[int, str]]:
  """(G step, checkpoint path) of each checkpoint kept by --keep_checkpoint_every, in order of G steps."""
  directory = os.path.join(workdir, run_files.CHECKPOINTS_DIR, run_files.KEPT_CHECKPOINTS)
  state = tf.train.get_checkpoint_state(directory) if os.path.isdir(directory) else None
  paths = list(state.all_model_checkpoint_paths) if state else []
  return sorted((int(path.rsplit("-", 1)[1]), path) for path in paths)


def checkpoint_elapsed_seconds(path: str) -> float | None:
  """The training seconds (G and critics, all invocations) a checkpoint was written at; None if it has none."""
  reader = tf.train.load_checkpoint(path)
  key = "elapsed_seconds/.ATTRIBUTES/VARIABLE_VALUE"
  return float(reader.get_tensor(key)) if reader.has_tensor(key) else None
