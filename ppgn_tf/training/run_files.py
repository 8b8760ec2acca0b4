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
KEPT_CHECKPOINTS = "kept"  # checkpoints/kept/: one checkpoint every --keep_checkpoint_every G steps, all kept.


def read_json(path: str) -> dict | None:
  """The JSON object in `path`, or None when there is no such file."""
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def check_workdir(workdir: str) -> None:
  """A workdir train.py wrote (it holds config.json); raises ValueError with one line."""
  files.required_file(workdir, CONFIG_FILE, "workdir")


def read_options(workdir: str) -> dict:
  """options.json of a workdir (its data set and data directory); raises ValueError with one line."""
  return read_json(files.required_file(workdir, OPTIONS_FILE, "workdir"))
