"""Shared fixtures: a small IDX data set cut from the offline digits and a quickly trained encoder.

Trainer tests need a working encoder, not a good one: it has every layer and
shape of E but few channels, pre-trained for 4 epochs on 512 digits (test
accuracy about 0.7), so the suite stays fast: E at the spec's widths costs 221
MFLOP an image, this one under 4, and every critic step and chain step of
every test runs it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tests run on CPU; keep TensorFlow's start-up chatter out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# TensorFlow as the programs run it: their oneDNN default (ppgn_tf/cli/__init__.py), before any test module imports it.
import ppgn_tf.cli  # noqa: E402,F401

# The slowest modules first (a full --durations=0 run under `-n 2` on 2026-12-08, idle 2-core Intel Xeon with AMX,
# summed: training 121 s, serving 115, evaluate_report 104, condition 100, reliability 95, docs 68, bench 51,
# encoder_and_cli 33, bad_input 19, precision 17, storage_errors 16, imports 15; the rest 13 s or less).
# pyproject.toml runs the suite with --dist=loadscope --no-loadscope-reorder: each module runs whole on one
# worker, so its module-scoped fixtures (a SavedModel, an evaluated run, two trained seeds) are built once, not once
# per worker and per chunk; and the long modules start first, so the short ones even out the two workers' ends.
# Modules not listed follow in alphabetical order.
SLOWEST_MODULES_FIRST = ("test_training", "test_serving", "test_evaluate_report", "test_condition",
                         "test_reliability", "test_docs", "test_bench", "test_encoder_and_cli", "test_bad_input",
                         "test_precision", "test_storage_errors", "test_imports", "test_atomic_writes",
                         "test_mala_sampler", "test_installed_commands")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(SLOWEST_MODULES_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # Stable: a module's own order is kept.


@pytest.fixture(scope="session")
def small_idx_dir(tmp_path_factory) -> str:
  """512 train / 128 test real digits (class-balanced) as an IDX directory."""
  from ppgn_tf.data import datasets as data
  from ppgn_tf.data import idx_format
  train, test = data.load_arrays("mnist_offline")
  directory = tmp_path_factory.mktemp("small_idx")

  def take(split, per_class):
    idx = np.concatenate([np.flatnonzero(split.labels == c)[:per_class] for c in range(10)])
    idx = np.random.default_rng(0).permutation(idx)
    return split.images[idx, :, :, 0], split.labels[idx].astype(np.uint8)

  for prefix, split, per_class in (("train", train, 52), ("t10k", test, 13)):
    images, labels = take(split, per_class)
    idx_format.write_idx(str(directory / f"{prefix}-images-idx3-ubyte"), images[: 512 if prefix == "train" else 128])
    idx_format.write_idx(str(directory / f"{prefix}-labels-idx1-ubyte.gz"), labels[: 512 if prefix == "train" else 128])
  return str(directory)


NARROW_CONV_WIDTHS = (8, 16, 32)


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory, small_idx_dir) -> str:
  """A narrow encoder (NARROW_CONV_WIDTHS) pre-trained on the small IDX set, saved as train.py saves it."""
  from ppgn_tf.data import datasets as data
  from ppgn_tf.model import encoder
  train, test = data.load_arrays(f"idx:{small_idx_dir}")
  enc, metrics = encoder.pretrain_encoder(
      data.make_pipeline(train, 64, seed=0),
      data.make_pipeline(test, 128, seed=0, shuffle=False, drop_remainder=False),
      epochs=4, recipe=encoder.RECIPES["small_data"], verbose=0, conv_widths=NARROW_CONV_WIDTHS)
  directory = str(tmp_path_factory.mktemp("encoder") / "encoder")
  encoder.save_encoder(enc, metrics, directory)
  return directory


def tiny_config(**overrides):
  """A PPGNConfig at tiny widths: D and D_fc1, a first round of 3 critic iterations, then 2 per G step."""
  from ppgn_tf.training import critic_schedule
  from ppgn_tf.training import ppgn
  return ppgn.PPGNConfig(**{"dim": 2, "batch_size": 8, "latent_critics": ("fc1",),
                            "schedule": critic_schedule.CriticSchedule(2, 3, 1, 1000), **overrides})


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory, small_idx_dir, encoder_dir) -> str:
  """A finished tiny run (D and D_fc1, 2 G steps) with checkpoints, as train.py leaves it."""
  from ppgn_tf.sampling.run_end import RunEnd
  from ppgn_tf.training import train_lib
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  config = tiny_config()
  options = train_lib.RunOptions(workdir=workdir, dataset=f"idx:{small_idx_dir}", encoder_dir=encoder_dir,
                                 max_generator_steps=2, verbose=0, checkpoint_every=0)
  train_lib.train(config, options, RunEnd(sample_per_class=0))
  return workdir
