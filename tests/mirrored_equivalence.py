"""Trains the same tiny PPGN on 1 device and on 2 logical CPU devices (MirroredStrategy)
with the same global batch; prints JSON comparing the two, G's moving average (--generator_ema)
included. Used by test_training.py.

Usage: python tests/mirrored_equivalence.py ENCODER_DIR IDX_DIR
"""

import json
import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from ppgn_tf.data import datasets as data
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.training import ppgn
from ppgn_tf.training import train_lib  # noqa: E402
from ppgn_tf.training.critic_schedule import CriticSchedule  # noqa: E402


def run(strategy, encoder_dir, train):
  with strategy.scope():
    keras.utils.set_random_seed(3)
    config = ppgn.PPGNConfig(dim=2, batch_size=8, latent_critics=("fc1",), critic_selection="random",
                             learning_rate=1e-3, schedule=CriticSchedule(2, 3, 1, 1000), generator_ema=0.9)
    model = ppgn.compile_as_configured(ppgn.PPGN(encoder_lib.load_encoder(encoder_dir), config))
  initial = [w.numpy().copy() for w in model.generator.weights + model.critics["fc1"].weights]
  features = train_lib.encode_split(model.encoder, train, model.cacheable_layers())
  model.fit(data.make_pipeline(train, 8, seed=0, repeat=True, features=features), steps_per_epoch=9,
            epochs=1, verbose=0)
  return model, initial


def main(encoder_dir, idx_dir):
  train, _ = data.load_arrays(f"idx:{idx_dir}")
  single, init_a = run(tf.distribute.get_strategy(), encoder_dir, train)
  mirrored, init_b = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), encoder_dir, train)
  assert all(np.array_equal(a, b) for a, b in zip(init_a, init_b)), "initial weights differ"

  def norms(model_a, model_b, init, weights):
    a = np.concatenate([w.numpy().ravel() for w in weights(model_a)])
    b = np.concatenate([w.numpy().ravel() for w in weights(model_b)])
    return float(np.linalg.norm(a - init)), float(np.linalg.norm(a - b))

  n_g = len(single.generator.weights)
  init = np.concatenate([w.ravel() for w in init_a])
  g_change, g_mismatch = norms(single, mirrored, init[:sum(w.size for w in init_a[:n_g])],
                               lambda m: m.generator.weights)
  c_change, c_mismatch = norms(single, mirrored, init[sum(w.size for w in init_a[:n_g]):],
                               lambda m: m.critics["fc1"].weights)
  ema_change, ema_mismatch = norms(single, mirrored, init[:sum(w.size for w in init_a[:n_g])],
                                   lambda m: m.generator_ema.weights)
  flat = lambda weights: np.concatenate([w.numpy().ravel() for w in weights])
  ema_lag = float(np.linalg.norm(flat(single.generator_ema.weights) - flat(single.generator.weights)))
  # Updated in cross-replica context: every device's copy of the average must hold the same value.
  ema_copies = [[c.numpy() for c in w.value.values] for w in mirrored.generator_ema.weights]
  ema_copy_mismatch = max(float(np.max(np.abs(c - copies[0]))) for copies in ema_copies for c in copies)
  print(json.dumps({
      "replicas": [single.distribute_strategy.num_replicas_in_sync,
                   mirrored.distribute_strategy.num_replicas_in_sync],
      "generator_steps": [int(single.generator_steps.numpy()), int(mirrored.generator_steps.numpy())],
      "logs": {k: [float(single.latest[k].numpy()), float(mirrored.latest[k].numpy())] for k in single.latest},
      "generator_change": g_change, "generator_mismatch": g_mismatch,
      "critic_change": c_change, "critic_mismatch": c_mismatch,
      "ema_change": ema_change, "ema_mismatch": ema_mismatch, "ema_lag": ema_lag,
      "ema_copy_mismatch": ema_copy_mismatch,
  }))


if __name__ == "__main__":
  main(*sys.argv[1:3])
