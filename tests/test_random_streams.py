"""ppgn_tf.random_streams: every draw comes from one root seed through named streams, and no two share a key."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf import random_streams as rs
from ppgn_tf.training.critic_schedule import select_critics
from ppgn_tf.training.ppgn import gradient_penalty_mix

SEEDS = range(5)
STEPS = 300  # Critic steps, MALA steps: more than the earliest collisions of hand-built keys needed.
EPOCHS = 12
CHAINS = 6
RESTARTS = 4


def _keys_of_steps(key_of_step, count: int) -> np.ndarray:
  return tf.function(lambda: tf.map_fn(key_of_step, tf.range(count, dtype=tf.int64),
                                       fn_output_signature=tf.TensorSpec([2], tf.int64)))().numpy()


def _every_key(seed: int) -> dict[str, np.ndarray]:
  """Every key seed `seed` draws from, by where it is used: [K, 2] per use."""
  keys = {"root": rs.root_key(seed).numpy()[None]}
  for name in rs.STREAMS:
    keys[f"stream {name}"] = rs.stream_key(seed, name).numpy()[None]
  keys["data order per epoch"] = _keys_of_steps(lambda e: rs.draw_key(seed, rs.DATA_ORDER, e), EPOCHS)
  keys["encoder data order per epoch"] = _keys_of_steps(lambda e: rs.draw_key(seed, rs.ENCODER_DATA_ORDER, e),
                                                        EPOCHS)
  keys["critic choice per step"] = _keys_of_steps(lambda t: rs.draw_key(seed, rs.CRITIC_CHOICE, t), STEPS)
  for critic in rs.CRITIC_IDS:
    keys[f"penalty mix of {critic} per step"] = _keys_of_steps(
        lambda t, c=critic: rs.gradient_penalty_key(seed, c, t), STEPS)
  chains = tf.constant(rs.chain_seeds(seed, CHAINS))
  keys["chain roots"] = tf.map_fn(rs.root_key, chains, fn_output_signature=tf.TensorSpec([2], tf.int64)).numpy()
  for stream, count in ((rs.MALA_NOISE, STEPS), (rs.MALA_H0, RESTARTS), (rs.MALA_PRIOR_PICK, RESTARTS)):
    per_step = tf.function(lambda t, s=stream: rs.row_draw_keys(chains, s, t))
    keys[f"{stream} per chain and step"] = np.concatenate([per_step(tf.constant(t, tf.int64)).numpy()
                                                           for t in range(count)])
  return keys


def test_no_two_draws_share_a_key():
  """Every stream's keys over 5 seeds, hundreds of steps, every critic and several chains: all distinct.

  (The hand-built keys this replaced collided: critic 0's penalty draw at critic step n was keyed [0, n] with
  --seed=0, and so were the critic choice at step n and the data order of epoch n.)"""
  owners, all_keys = [], []
  for seed in SEEDS:
    for use, keys in _every_key(seed).items():
      owners += [f"seed {seed}: {use}"] * len(keys)
      all_keys.append(keys)
  all_keys = np.concatenate(all_keys)
  assert len(all_keys) > len(SEEDS) * STEPS * (1 + len(rs.CRITIC_IDS) + CHAINS)
  unique, first, counts = np.unique(all_keys, axis=0, return_index=True, return_counts=True)
  shared = [owners[i] for i, n in zip(first, counts) if n > 1]
  assert not shared, f"{len(all_keys) - len(unique)} shared keys, first among: {shared[:5]}"


def test_stream_table_is_one_to_one():
  assert len(set(rs.STREAMS.values())) == len(rs.STREAMS)
  assert len(set(rs.CRITIC_IDS.values())) == len(rs.CRITIC_IDS)
  from ppgn_tf.model import encoder
  from ppgn_tf.model.critics import IMAGE
  assert set(rs.CRITIC_IDS) == {IMAGE, *encoder.LAYER_NAMES}  # Every critic train.py can build has one.


def test_unknown_names_are_refused():
  with pytest.raises(ValueError, match="unknown random stream 'dropout'"):
    rs.stream_key(0, "dropout")
  with pytest.raises(ValueError, match="critic 'pool2'"):
    rs.gradient_penalty_key(0, "pool2", 0)


def _correlation(a, b) -> float:
  return float(np.corrcoef(np.asarray(a, np.float64), np.asarray(b, np.float64))[0, 1])


def test_randomized_critic_choice_is_uncorrelated_with_the_penalty_draws():
  """3f: which critic trains at step t says nothing about the penalty's mixes at t (they were the same number)."""
  steps, batch = 4000, 8
  bound = 4 / np.sqrt(steps)  # Four standard errors of a correlation between independent draws.
  for seed in (0, 3):
    @tf.function
    def draws():
      t = tf.range(steps, dtype=tf.int64)
      chosen = tf.map_fn(lambda s: select_critics("random", 2, False, s, seed), t, fn_output_signature=tf.float32)
      mixes = {c: tf.map_fn(lambda s, c=c: gradient_penalty_mix(seed, c, s, batch), t,
                            fn_output_signature=tf.TensorSpec([batch], tf.float32)) for c in ("image", "fc1")}
      return chosen, mixes

    chosen, mixes = draws()
    image_chosen = chosen.numpy()[:, 0]
    assert 0.45 < image_chosen.mean() < 0.55
    for critic, mix in mixes.items():
      mix = mix.numpy()
      assert 0.0 <= mix.min() and mix.max() < 1.0 and abs(mix.mean() - 0.5) < 0.01
      for column in range(batch):
        assert abs(_correlation(image_chosen, mix[:, column])) < bound, (seed, critic, column)
      # Nor does the choice shift the mixes of the critic it picks.
      assert abs(mix[image_chosen == 1].mean() - mix[image_chosen == 0].mean()) < 0.02, (seed, critic)
    # The two critics' mixes at one step are independent of each other too.
    assert abs(_correlation(mixes["image"].numpy()[:, 0], mixes["fc1"].numpy()[:, 0])) < bound


def test_a_critic_draws_the_same_mixes_whatever_critics_train_beside_it():
  """Sub-streams by critic name: D_fc1's penalty in 3c (alone) and 3e (beside D) draws alike per seed."""
  alone = gradient_penalty_mix(1, "fc1", 17, 8).numpy()
  np.testing.assert_array_equal(alone, gradient_penalty_mix(1, "fc1", tf.constant(17, tf.int64), 8).numpy())
  assert not np.array_equal(alone, gradient_penalty_mix(1, "image", 17, 8).numpy())
  assert not np.array_equal(alone, gradient_penalty_mix(2, "fc1", 17, 8).numpy())
  assert not np.array_equal(alone, gradient_penalty_mix(1, "fc1", 18, 8).numpy())


def test_chain_seeds_are_distinct_and_do_not_depend_on_the_count():
  many = rs.chain_seeds(0, 200)
  assert many.dtype == np.int64 and len(set(many.tolist())) == 200
  np.testing.assert_array_equal(rs.chain_seeds(0, 7), many[:7])  # A larger grid starts with a smaller one's chains.
  assert not set(rs.chain_seeds(1, 200).tolist()) & set(many.tolist())


def test_integer_seeds_and_numpy_generators_differ_by_stream_and_seed():
  ints = {(seed, name): rs.integer_seed(seed, name) for seed in (0, 1) for name in rs.STREAMS}
  assert len(set(ints.values())) == len(ints) and all(0 <= v < 2**31 for v in ints.values())
  assert rs.integer_seed(0, rs.DATA_ORDER) == ints[(0, rs.DATA_ORDER)]  # A function of (seed, stream).
  first = rs.numpy_generator(0, rs.EVALUATION_FLOOR_SPLIT).permutation(50)
  np.testing.assert_array_equal(first, rs.numpy_generator(0, rs.EVALUATION_FLOOR_SPLIT).permutation(50))
  assert not np.array_equal(first, rs.numpy_generator(1, rs.EVALUATION_FLOOR_SPLIT).permutation(50))
  assert not np.array_equal(first, rs.numpy_generator(0, rs.CODE_PRIOR_SUBSET).permutation(50))
