"""PPGN replaces two of Keras' trainer hooks; these tests pin what that relies on, so a Keras upgrade that
changes it fails here instead of training silently differently. And compile() refuses what the step ignores."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

from conftest import tiny_config
from ppgn_tf.data import datasets as data
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.training import ppgn


def _model(**compile_args):
  keras.utils.set_random_seed(0)
  model = ppgn.PPGN(encoder_lib.build_tiny_encoder(), tiny_config())
  model.compile(**compile_args)
  return model


def _dataset(model):
  rng = np.random.default_rng(0)
  split = data.Split(rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 32))
  return data.make_pipeline(split, model.config.batch_size, seed=0, repeat=True)


def test_keras_trainer_still_has_the_hooks_ppgn_replaces():
  assert keras.backend.backend() == "tensorflow"
  assert issubclass(keras.Model, TensorFlowTrainer)
  for name, params in (("_maybe_symbolic_build", ["self", "iterator", "data_batch"]),
                       ("make_train_function", ["self", "force"])):
    keras_hook, ours = getattr(TensorFlowTrainer, name), getattr(ppgn.PPGN, name)
    assert list(inspect.signature(keras_hook).parameters) == params, f"Keras changed {name}'s signature"
    assert list(inspect.signature(ours).parameters) == params
  fit = inspect.getsource(TensorFlowTrainer.fit)
  # fit() builds through the hook (which PPGN makes a no-op), then makes and calls train_function per step.
  for call in ("self._maybe_symbolic_build(iterator=", "self.make_train_function()", "self.train_function(iterator)"):
    assert call in fit, f"TensorFlowTrainer.fit no longer calls {call}"


def test_fit_goes_through_both_replacements(monkeypatch):
  model = _model()
  calls = []
  for name in ("_maybe_symbolic_build", "make_train_function"):
    original = getattr(model, name)
    monkeypatch.setattr(model, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
  history = model.fit(_dataset(model), epochs=1, steps_per_epoch=3, verbose=0)
  assert calls == ["_maybe_symbolic_build", "make_train_function"]
  assert int(model.critic_steps.numpy()) == 3  # Our train_function: one critic iteration per step.
  assert int(model.generator_steps.numpy()) == 1  # First round: 3 critic iterations, then a G step.
  assert set(model.log_names()) <= set(history.history)


@pytest.mark.parametrize("args,message", [
    ({"steps_per_execution": 2}, "steps_per_execution must be 1"),
    ({"jit_compile": True}, "jit_compile must be False"),
    ({"loss": "mse"}, "loss not supported"),
    ({"metrics": ["accuracy"]}, "metrics not supported"),
    ({"optimizer": "adam"}, "optimizer not supported"),
])
def test_compile_refuses_what_the_step_does_not_carry_out(args, message):
  with pytest.raises(ValueError, match=message):
    _model(**args)


def test_compile_accepts_what_the_step_carries_out():
  model = _model(jit_compile="auto", steps_per_execution=1)
  assert model.jit_compile is False and model.steps_per_execution == 1
  eager = _model(run_eagerly=True)
  eager.fit(_dataset(eager), epochs=1, steps_per_epoch=1, verbose=0)
  assert int(eager.critic_steps.numpy()) == 1
