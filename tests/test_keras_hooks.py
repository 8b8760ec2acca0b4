"""PPGN on Keras' public API: compile() takes the optimizers and the loss form (keras.io's WGAN-GP pattern),
fit() runs train_step through Keras' own train function, and of Keras' trainer only the build step that
ppgn_tf.training.keras_workaround names is replaced; these tests pin what that relies on."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

from conftest import tiny_config
from ppgn_tf.data import datasets as data
from ppgn_tf.model import losses
from ppgn_tf.training import keras_workaround
from ppgn_tf.training import ppgn
from tiny_networks import tiny_encoder


def _model(**config):
  keras.utils.set_random_seed(0)
  return ppgn.PPGN(tiny_encoder(), tiny_config(**config))


def _compiled(**compile_args):
  return ppgn.compile_as_configured(_model(), **compile_args)


def _dataset(model):
  rng = np.random.default_rng(0)
  split = data.Split(rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 32))
  return data.make_pipeline(split, model.config.batch_size, seed=0, repeat=True)


def _private_keras_methods() -> set[str]:
  return {name for cls in keras.Model.__mro__ for name in vars(cls) if name.startswith("_")
          and not name.startswith("__")}


def test_ppgn_replaces_no_private_keras_method_but_the_listed_one():
  """Only public hooks (compile, train_step, call, ...) are PPGN's own, and the workaround's: a private Keras
  method redefined elsewhere would depend on Keras internals that change between releases."""
  own = {name for cls in ppgn.PPGN.__mro__[:ppgn.PPGN.__mro__.index(keras.Model)] for name in vars(cls)
         if not name.startswith("__")}
  assert own & _private_keras_methods() == {"_maybe_symbolic_build"}
  assert "_maybe_symbolic_build" in vars(keras_workaround.BuiltBeforeFit)


def test_keras_still_has_the_build_step_the_workaround_replaces(monkeypatch):
  """The day Keras renames it, changes its arguments or stops calling it from fit(), the workaround is dead
  code (or breaks): this fails, and keras_workaround.py says what to check."""
  keras_method = keras.Model._maybe_symbolic_build
  assert list(inspect.signature(keras_method).parameters) == ["self", "iterator", "data_batch"]
  assert list(inspect.signature(keras_workaround.BuiltBeforeFit._maybe_symbolic_build).parameters) == \
      ["self", "iterator", "data_batch"]
  model = _compiled()
  calls = []
  original = model._maybe_symbolic_build
  monkeypatch.setattr(model, "_maybe_symbolic_build", lambda *a, **k: calls.append(k) or original(*a, **k))
  model.fit(_dataset(model), epochs=1, steps_per_epoch=1, verbose=0)
  assert len(calls) == 1 and set(calls[0]) == {"iterator"}  # fit() builds through it, before the first step.


def test_fit_runs_train_step_through_keras_train_function():
  model = _compiled()
  history = model.fit(_dataset(model), epochs=1, steps_per_epoch=3, verbose=0)
  assert int(model.critic_steps.numpy()) == 3  # One critic iteration per Keras step.
  assert int(model.generator_steps.numpy()) == 1  # First round: 3 critic iterations, then a G step.
  assert set(model.log_names()) <= set(history.history)
  assert model.train_function is not None  # Keras made it (make_train_function is Keras').
  # Each optimizer stepped once per update it owns: G once, each critic once per critic iteration.
  assert int(model.generator_optimizer.iterations.numpy()) == 1
  assert {n: int(o.iterations.numpy()) for n, o in model.critic_optimizers.items()} == {"image": 3, "fc1": 3}
  assert model.optimizer is model.generator_optimizer  # Keras' optimizer slot: callbacks act on G.


def test_compile_takes_the_optimizers_and_the_loss_form():
  """A variant is an argument: SGD instead of Adam for the critics, and the log loss instead of the config's
  Wasserstein loss, with nothing else changed."""
  model = _model(learning_rate=1e-3)
  generator_optimizer, _ = ppgn.adam_optimizers(model.config)
  sgd = {n: keras.optimizers.SGD(0.01, name=f"critic_{n}_sgd") for n in model.critic_names}
  model.compile(generator_optimizer, sgd, losses.GAN_LOSSES[losses.LOG])
  assert model.gan_loss.name == losses.LOG and model.critic_optimizers == sgd
  model.fit(_dataset(model), epochs=1, steps_per_epoch=3, verbose=0)
  assert all(int(o.iterations.numpy()) == 3 for o in sgd.values())
  assert not [v for o in sgd.values() for v in o.variables if "momentum" in v.path]  # SGD's state, not Adam's.
  # The log form: each critic loss is a sum of two softplus terms (> 0); a Wasserstein loss would be near 0.
  logs = {k: float(v.numpy()) for k, v in model.latest.items()}
  assert logs["d_loss_image"] - 10.0 * logs["gp_image"] > 0.5 and logs["l_gan"] > 0


@pytest.mark.parametrize("args,message", [
    ({"steps_per_execution": 2}, "steps_per_execution must be 1"),
    ({"jit_compile": True}, "jit_compile must be False"),
])
def test_compile_refuses_what_the_step_does_not_carry_out(args, message):
  with pytest.raises(ValueError, match=message):
    _compiled(**args)


def test_compile_refuses_optimizers_that_do_not_match_the_critics():
  model = _model()
  generator_optimizer, critic_optimizers = ppgn.adam_optimizers(model.config)
  del critic_optimizers["fc1"]
  with pytest.raises(ValueError, match="critic_optimizers names image, the critics are image,fc1"):
    model.compile(generator_optimizer, critic_optimizers, losses.gan_loss(losses.WGAN_GP))


@pytest.mark.parametrize("keras_argument", ["loss", "metrics", "optimizer"])
def test_compile_has_no_argument_the_step_would_ignore(keras_argument):
  with pytest.raises(TypeError, match=keras_argument):
    _compiled(**{keras_argument: "mse"})


def test_compile_accepts_what_the_step_carries_out():
  model = _compiled(jit_compile="auto", steps_per_execution=1)
  assert model.jit_compile is False and model.steps_per_execution == 1
  eager = _compiled(run_eagerly=True)
  eager.fit(_dataset(eager), epochs=1, steps_per_epoch=1, verbose=0)
  assert int(eager.critic_steps.numpy()) == 1
