"""The asymmetric WGAN-GP schedule and the choice of critics per critic iteration.

Both are pure functions of the step counters (and a seed), so every replica and
every worker takes the same decision without communicating, and a run resumed
from a checkpoint takes the same decisions as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ppgn_tf import checks
from ppgn_tf import random_streams

ALL = "all"
RANDOM = "random"
SELECTIONS = (ALL, RANDOM)
# train.py's flag for each field of CriticSchedule, so a bad value's error names what the user typed.
FLAG_OF = {"iterations": "critic_iters", "long_iterations": "critic_iters_long",
           "warmup_generator_steps": "long_rounds_until", "long_every": "long_round_every"}


@dataclasses.dataclass(frozen=True)
class CriticSchedule:
  """Critic iterations before each G step (Sec. 4; caogang/wgan-gp's schedule).

  `long_iterations` while fewer than `warmup_generator_steps` G steps were
  taken and whenever the G step count is a multiple of `long_every`;
  `iterations` otherwise.
  """
  iterations: int = 5
  long_iterations: int = 100
  warmup_generator_steps: int = 25
  long_every: int = 500

  def __post_init__(self):
    """The one check of the schedule's values (train.py's flags are given straight to this class)."""
    for field in dataclasses.fields(self):
      checks.at_least(FLAG_OF[field.name], getattr(self, field.name), 1, f"critic schedule: {field.name}")

  def is_long_round(self, generator_steps):
    """True (a bool tensor for tensor input) when the round before this G step is long."""
    if isinstance(generator_steps, int):
      return generator_steps < self.warmup_generator_steps or generator_steps % self.long_every == 0
    g = tf.cast(generator_steps, tf.int64)
    return tf.logical_or(g < self.warmup_generator_steps, tf.equal(g % self.long_every, 0))

  def iterations_before(self, generator_steps):
    """Number of critic iterations in the round that precedes G step `generator_steps` + 1."""
    if isinstance(generator_steps, int):
      return self.long_iterations if self.is_long_round(generator_steps) else self.iterations
    return tf.where(self.is_long_round(generator_steps),
                    tf.constant(self.long_iterations, tf.int64),
                    tf.constant(self.iterations, tf.int64))

  def critic_iterations_for(self, generator_steps: int) -> int:
    """Critic iterations needed to reach `generator_steps` G steps from scratch."""
    return sum(self.iterations_before(g) for g in range(generator_steps))


def select_critics(selection: str,
                   num_critics: int,
                   long_round,
                   critic_step,
                   seed: int,
                   first_probability: float = 0.5) -> tf.Tensor:
  """A float mask [num_critics]: 1 for each critic trained in this critic iteration.

  'all' trains every critic. 'random' draws one critic (the first with
  probability `first_probability`, the others sharing the rest equally) from
  the seed's critic-choice stream at `critic_step` (`random_streams`), except in long rounds,
  where every critic is trained, as in the thesis' code.
  """
  if selection == ALL or num_critics == 1:
    return tf.ones([num_critics])
  if selection != RANDOM:
    raise ValueError(f"unknown critic selection '{selection}' (choose from {', '.join(SELECTIONS)})")
  u = tf.random.stateless_uniform([], seed=random_streams.draw_key(seed, random_streams.CRITIC_CHOICE,
                                                                   critic_step))
  rest = (1.0 - first_probability) / (num_critics - 1)
  # Upper edges of each critic's interval in [0, 1).
  edges = tf.constant([first_probability + rest * k for k in range(num_critics)], tf.float32)
  chosen = tf.minimum(tf.reduce_sum(tf.cast(u >= edges, tf.int32)), num_critics - 1)
  one = tf.one_hot(chosen, num_critics)
  return tf.where(tf.cast(long_round, tf.bool), tf.ones([num_critics]), one)
