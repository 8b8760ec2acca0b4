"""Where the trainer works around Keras 3's fit() under MultiWorkerMirroredStrategy, and why: the one place it
reaches past Keras' public API, and the one place it shapes its output for Keras' internals.
tests/test_keras_hooks.py pins the first; tests/test_reliability.py's two-worker runs both, so a Keras release that
changes either fails there instead of training differently."""

from __future__ import annotations

import tensorflow as tf

from ppgn_tf.training import distribute


class BuiltBeforeFit:
  """A keras.Model mixin for models whose networks and optimizers are all built before fit() (PPGN builds them in
  __init__ and compile): fit() skips its build step, which has nothing to do for them."""

  # Keras 3's fit() (TensorFlow backend) first pulls one batch and all-reduces it eagerly with
  # strategy.reduce() to build the model; under MultiWorkerMirroredStrategy that reduce fails on a batch that is
  # a tuple or dict ("Attempt to convert a value (PerReplica...) to a Tensor"), and no public hook avoids it.
  # No Keras issue for it is cited: none could be confirmed. tests/test_reliability.py runs two workers without
  # this override and expects that failure; the day it no longer comes, delete this class.
  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Nothing to build (see above)."""


def logs_for_fit(logs: dict, strategy: tf.distribute.Strategy) -> dict:
  """train_step's logs (scalars, the same on every replica) as fit() can take them from each replica.

  Across several workers Keras 3 reduces every output of the step with strategy.reduce(MEAN, value, axis=0),
  which fails on a scalar; a [1] vector reduces to the same scalar. Elsewhere the scalars pass as they are.
  """
  if not distribute.is_multi_worker(strategy):
    return logs
  return {k: tf.reshape(v, [1]) for k, v in logs.items()}
