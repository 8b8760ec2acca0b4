"""Tests for ppgn_tf.critic_schedule: the asymmetric schedule and critic choice."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf.training.critic_schedule import CriticSchedule, select_critics

EXPECTED_FIRST_30 = [100] * 25 + [5] * 5


# --- CriticSchedule --------------------------------------------------------


def test_defaults():
  s = CriticSchedule()
  assert (s.iterations, s.long_iterations, s.warmup_generator_steps, s.long_every) == (5, 100, 25, 500)


def test_iterations_before_with_python_ints():
  s = CriticSchedule()
  got = [s.iterations_before(g) for g in range(30)]
  assert got == EXPECTED_FIRST_30
  assert all(type(n) is int for n in got)
  assert [s.is_long_round(g) for g in (0, 24, 25, 29)] == [True, True, False, False]


@pytest.mark.parametrize("dtype", [tf.int64, tf.int32])
def test_iterations_before_with_tensors_matches_ints(dtype):
  s = CriticSchedule()
  got = [s.iterations_before(tf.constant(g, dtype)) for g in range(30)]
  assert all(t.dtype == tf.int64 for t in got)
  assert [int(t) for t in got] == EXPECTED_FIRST_30


def test_iterations_before_with_variable_in_tf_function():
  s = CriticSchedule()
  step = tf.Variable(0, dtype=tf.int64)
  fn = tf.function(lambda: s.iterations_before(step))
  got = []
  for g in list(range(30)) + [500, 501, 1000]:
    step.assign(g)
    got.append(int(fn()))
  assert got == EXPECTED_FIRST_30 + [100, 5, 100]


@pytest.mark.parametrize("g, expected", [(499, 5), (500, 100), (501, 5), (999, 5), (1000, 100),
                                         (1001, 5)])
def test_long_round_every_long_every_steps(g, expected):
  s = CriticSchedule()
  assert s.iterations_before(g) == expected
  assert int(s.iterations_before(tf.constant(g, tf.int64))) == expected
  assert bool(s.is_long_round(tf.constant(g, tf.int64))) == (expected == 100)


def test_critic_iterations_for():
  s = CriticSchedule()
  assert s.critic_iterations_for(0) == 0
  assert s.critic_iterations_for(1) == 100
  assert s.critic_iterations_for(30) == 25 * 100 + 5 * 5
  # 501 G steps: 25 warm-up rounds, the long round before step 501, 475 short ones.
  assert s.critic_iterations_for(501) == 26 * 100 + 475 * 5


def test_custom_schedule():
  s = CriticSchedule(iterations=2, long_iterations=7, warmup_generator_steps=3, long_every=10)
  assert [s.iterations_before(g) for g in range(12)] == [7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 7, 2]
  assert [int(s.iterations_before(tf.constant(g, tf.int64))) for g in range(12)] == \
      [7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 7, 2]


@pytest.mark.parametrize("field", ["iterations", "long_iterations", "warmup_generator_steps",
                                   "long_every"])
@pytest.mark.parametrize("value", [0, -1])
def test_invalid_values_raise(field, value):
  with pytest.raises(ValueError, match=field):
    CriticSchedule(**{field: value})


# --- select_critics --------------------------------------------------------


def _random_masks(num_critics, steps, seed, first_probability=0.5, long_round=False):
  """Masks for critic steps 0..steps-1 as a numpy array [steps, num_critics]."""
  @tf.function
  def masks():
    return tf.map_fn(
        lambda step: select_critics("random", num_critics, long_round, step, seed, first_probability),
        tf.range(steps, dtype=tf.int64), fn_output_signature=tf.float32)

  return masks().numpy()


@pytest.fixture(scope="module")
def two_critic_masks():
  return _random_masks(2, 4000, seed=0)


def test_all_gives_all_ones():
  for long_round in (False, True):
    mask = select_critics("all", 3, long_round, 17, seed=0)
    np.testing.assert_array_equal(mask.numpy(), [1.0, 1.0, 1.0])


def test_single_critic_is_always_trained():
  np.testing.assert_array_equal(select_critics("random", 1, False, 5, seed=0).numpy(), [1.0])


def test_unknown_selection_raises():
  with pytest.raises(ValueError, match="sometimes"):
    select_critics("sometimes", 2, False, 0, seed=0)


def test_random_picks_exactly_one_critic_each_step(two_critic_masks):
  masks = two_critic_masks
  assert masks.shape == (4000, 2)
  assert set(np.unique(masks)) == {0.0, 1.0}
  np.testing.assert_array_equal(masks.sum(axis=1), np.ones(4000))
  freq = masks.mean(axis=0)
  assert abs(freq[0] - 0.5) < 0.03 and abs(freq[1] - 0.5) < 0.03
  # Not a fixed alternation either: both critics follow themselves sometimes.
  switches = np.mean(masks[1:, 0] != masks[:-1, 0])
  assert 0.4 < switches < 0.6


def test_random_first_probability():
  freq = _random_masks(2, 4000, seed=0, first_probability=0.8).mean(axis=0)
  assert abs(freq[0] - 0.8) < 0.03
  assert abs(freq[1] - 0.2) < 0.03


@pytest.mark.parametrize("num_critics, first_probability, expected", [
    (3, 0.5, [0.5, 0.25, 0.25]),
    (3, 0.2, [0.2, 0.4, 0.4]),
    (4, 0.4, [0.4, 0.2, 0.2, 0.2]),
])
def test_random_other_critics_share_the_rest(num_critics, first_probability, expected):
  masks = _random_masks(num_critics, 4000, seed=0, first_probability=first_probability)
  np.testing.assert_array_equal(masks.sum(axis=1), np.ones(4000))
  np.testing.assert_allclose(masks.mean(axis=0), expected, atol=0.03)


def test_random_long_round_trains_all():
  for step in range(5):
    np.testing.assert_array_equal(select_critics("random", 2, True, step, seed=0).numpy(), [1, 1])
  np.testing.assert_array_equal(
      select_critics("random", 3, tf.constant(True), tf.constant(9, tf.int64), seed=3).numpy(),
      [1, 1, 1])


def test_random_is_deterministic_in_seed_and_step(two_critic_masks):
  for step in (0, 1, 7, 123, 3999):
    first = select_critics("random", 2, False, step, seed=0).numpy()
    again = select_critics("random", 2, tf.constant(False), tf.constant(step, tf.int64), seed=0)
    np.testing.assert_array_equal(first, again.numpy())
    # Eager and tf.function draws agree.
    np.testing.assert_array_equal(first, two_critic_masks[step])


def test_random_different_seed_gives_different_sequence(two_critic_masks):
  other = _random_masks(2, 200, seed=1)
  assert not np.array_equal(other, two_critic_masks[:200])
  # Still a valid selection with the same statistics.
  np.testing.assert_array_equal(other.sum(axis=1), np.ones(200))
  assert np.mean(other[:, 0] != two_critic_masks[:200, 0]) > 0.3
