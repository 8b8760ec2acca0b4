"""--generator_ema: the moving average of G's weights, its closed form, kills, and old workdirs.

Two replicas against one device: tests/mirrored_equivalence.py (test_training.py). A run killed and resumed
to the same average: test_reliability.py (its deterministic interrupted run keeps one). Bad values:
test_bad_input.py.
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf.data import datasets as data
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.sampling import trained_run
from ppgn_tf.sampling.run_end import RunEnd
from ppgn_tf.training import ppgn
from ppgn_tf.training import run_files
from ppgn_tf.training import train_lib

from conftest import tiny_config

DECAY = 0.9  # Low, so that a few G steps move the average measurably.


def _weights(network) -> list[np.ndarray]:
  return [w.numpy().astype(np.float64) for w in network.weights]


def _closed_form_ema(g_weights: list[list[np.ndarray]], decay: float) -> list[np.ndarray]:
  """ema_k = d^k w_0 + (1 - d) sum_{i=1..k} d^(k-i) w_i, from G's weights w_0 (initial), w_1, ..., w_k."""
  k = len(g_weights) - 1
  return [decay ** k * g_weights[0][j] + (1 - decay) * sum(decay ** (k - i) * g_weights[i][j] for i in range(1, k + 1))
          for j in range(len(g_weights[0]))]


def test_ema_is_the_closed_form_average_after_every_generator_step(small_idx_dir, encoder_dir):
  encoder = encoder_lib.load_encoder(encoder_dir)
  keras.utils.set_random_seed(0)
  plain = ppgn.PPGN(encoder, tiny_config())
  keras.utils.set_random_seed(0)
  model = ppgn.compile_as_configured(ppgn.PPGN(encoder, tiny_config(generator_ema=DECAY, learning_rate=1e-3)))
  # The EMA starts as G, and keeping it changes no network's initialisation.
  for a, b in zip(_weights(model.generator) + _weights(model.critics["image"]) + _weights(model.critics["fc1"]),
                  _weights(plain.generator) + _weights(plain.critics["image"]) + _weights(plain.critics["fc1"])):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(_weights(model.generator_ema), _weights(model.generator)):
    np.testing.assert_array_equal(a, b)
  assert not model.generator_ema.trainable_weights
  assert plain.generator_ema is None and plain.sampling_generator is plain.generator
  assert "generator_ema" not in plain.checkpoint_items()
  assert model.sampling_generator is model.generator_ema
  assert model.checkpoint_items()["generator_ema"] is model.generator_ema

  train, _ = data.load_arrays(f"idx:{small_idx_dir}")
  batches = iter(data.make_pipeline(train, 8, seed=0, repeat=True))
  step = tf.function(model.train_step)
  g_weights = [_weights(model.generator)]  # w_0, then G after each G step.
  while len(g_weights) <= 5:
    before = int(model.generator_steps.numpy())
    step(next(batches))
    if int(model.generator_steps.numpy()) != before:
      g_weights.append(_weights(model.generator))
    else:  # Critic iterations leave the average alone.
      np.testing.assert_allclose(_weights(model.generator_ema)[0], _closed_form_ema(g_weights, DECAY)[0], rtol=1e-5)
  assert int(model.critic_steps.numpy()) == 3 + 4 * 2

  ema = _weights(model.generator_ema)
  for j, (actual, expected) in enumerate(zip(ema, _closed_form_ema(g_weights, DECAY))):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-8, err_msg=model.generator_ema.weights[j].path)
  # A check that could fail: the average is neither G's first nor its latest weights.
  distance = lambda xs, ys: max(float(np.max(np.abs(x - y))) for x, y in zip(xs, ys))
  assert distance(ema, g_weights[0]) > 1e-4 and distance(ema, g_weights[-1]) > 1e-4

  # reconstruct (the ReconstructionGrid's pictures) draws with the average.
  images = next(batches)[0]
  codes = model.encoder(images)["fc1"]
  np.testing.assert_allclose(model.reconstruct(images).numpy(), model.generator_ema(codes).numpy(), rtol=1e-6)


def test_a_workdir_from_before_the_flag_loads_and_resumes(tmp_path, trained_workdir, small_idx_dir, encoder_dir):
  workdir = str(tmp_path / "old")
  shutil.copytree(trained_workdir, workdir)
  config_path = os.path.join(workdir, run_files.CONFIG_FILE)
  with open(config_path) as f:
    saved = json.load(f)
  del saved["generator_ema"]  # As config.json was written before the flag existed.
  with open(config_path, "w") as f:
    json.dump(saved, f)

  model = trained_run.load_trained(workdir)
  assert model.config.generator_ema == 0.0 and model.sampling_generator is model.generator
  # The old run had no average: starting one now is refused, by name.
  with pytest.raises(ValueError, match=r"generator_ema=0\.0, not 0\.9"):
    train_lib.check_config_matches(workdir, tiny_config(generator_ema=0.9))
  options = train_lib.RunOptions(workdir=workdir, dataset=f"idx:{small_idx_dir}", encoder_dir=encoder_dir,
                                 max_generator_steps=3, verbose=0, checkpoint_every=0)
  summary = train_lib.train(tiny_config(), options, RunEnd(sample_per_class=0))
  assert summary["generator_steps"] == 3 and summary["critic_steps"] == 5 + 2  # Continued, not restarted.
