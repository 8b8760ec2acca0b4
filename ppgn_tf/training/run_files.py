"""The files of a training run's workdir by name, and the cheap checks and reads of them. No TensorFlow here, so
the programs check a workdir before TensorFlow starts."""

from __future__ import annotations

import json
import os

from ppgn_tf import files

CONFIG_FILE = "config.json"  # The PPGNConfig.
OPTIONS_FILE = "options.json"  # The latest invocation's RunOptions (where its encoder lives, its data set).
HISTORY_FILE = "history.json"  # Every logged value, by generator step.
SUMMARY_FILE = "summary.json"  # Written when a run finishes.
WASSERSTEIN_PNG = "wasserstein.png"  # The critics' Wasserstein estimates against G steps (the thesis' Fig. 4).
LOSSES_PNG = "losses.png"  # The terms of L_G against G steps.
ENCODER_DIR = "encoder"  # E (encoder.keras) and its metrics.json, unless --encoder_dir names another.
CHECKPOINTS_DIR = "checkpoints"  # tf.train.CheckpointManager's checkpoints: where a rerun resumes.
KEPT_CHECKPOINTS = "kept"  # checkpoints/kept/: one checkpoint every --keep_checkpoint_every G steps, all kept.
WORKER_CHECKPOINTS_DIR = ".worker_tmp"  # .worker_tmp/N/: the checkpoints of worker N but the chief (collective saves).
TENSORBOARD_DIR = "tensorboard"  # TensorBoard's scalars and images.
RECONSTRUCTIONS_DIR = "reconstructions"  # x beside G(E(x)) at each epoch's end, and final.png.
SAMPLES_DIR = "samples"  # The end-of-run (and ppgn_tf.sample's) class-conditional samples.
SAMPLES_GRID = "samples.png"  # Their grid, one row per class (in SAMPLES_DIR, or ppgn_tf.sample's --output_dir).
EXPORT_DIR = "export"  # The exported sampler, TensorFlow Serving's layout (export/N/).


def read_json(path: str) -> dict | None:
  """The JSON object in `path`, or None when there is no such file."""
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def encoder_dir(workdir: str) -> str:
  """Where a run's encoder lives: its --encoder_dir (from options.json), else WORKDIR/encoder."""
  options = read_json(os.path.join(workdir, OPTIONS_FILE)) or {}
  return options.get("encoder_dir") or os.path.join(workdir, ENCODER_DIR)


def check_workdir(workdir: str) -> None:
  """A workdir train.py wrote (it holds config.json); raises ValueError with one line."""
  files.required_file(workdir, CONFIG_FILE, "workdir")


def read_options(workdir: str) -> dict:
  """options.json of a workdir (its data set and data directory); raises ValueError with one line."""
  return read_json(files.required_file(workdir, OPTIONS_FILE, "workdir"))
