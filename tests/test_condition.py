"""Plug & Play: conditioning on a classifier of the user's own (any K) or on a unit of E, from the library, the
programs and the export; its checks, and the logits-or-probabilities decision."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf.data import datasets as data
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.model import task_classifier
from ppgn_tf.sampling import condition_model
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import serving
from ppgn_tf.sampling.condition_spec import ConditionSpec
from ppgn_tf.sampling.mala_sampler import (CodePrior, MalaSampler, SamplerConfig, initial_codes, mala_step,
                                          row_normal)
from ppgn_tf.training import train_lib

from conftest import REPO

# The fixtures' G (2 G steps) draws nearly the same image from every code, so a condition shows only with a large
# epsilon2 (as in test_mala_sampler); the quick start's G needs the thesis' 1 (docs/conditioning.md).
BIG_EPSILON2 = 1000.0
STEPS = 30


def _run(args, cwd=REPO, timeout=300):
  return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _program_lines(stderr):
  tf_log = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl::InitializeLog)")
  return [line for line in stderr.splitlines() if line.strip() and not tf_log.match(line)]


@pytest.fixture(scope="module")
def nets(trained_workdir, encoder_dir):
  """(G of the tiny trained run, E of the encoder fixture)."""
  return train_lib.load_trained(trained_workdir).generator, encoder_lib.load_encoder(encoder_dir)


@pytest.fixture(scope="module")
def odd_even(small_idx_dir, tmp_path_factory):
  """(path, metrics) of an MLP trained for a task E never saw, odd or even, on the small set (a few seconds)."""
  train, test = data.load_arrays(f"idx:{small_idx_dir}")
  model, metrics = task_classifier.train_task_classifier("odd_even", train, test, epochs=5)
  path = str(tmp_path_factory.mktemp("odd_even") / "odd_even.keras")
  task_classifier.save(model, metrics, path)
  return path, metrics


# --- The classifier: loaded, checked, logits or probabilities --------------------------------------------

def test_a_task_classifier_learns_its_task(odd_even):
  path, metrics = odd_even
  assert metrics["test_accuracy"] > 0.7, metrics  # Odd or even from 512 digits: well above chance (0.5).
  assert json.load(open(path[:-len(".keras")] + ".json"))["classes"] == ["even", "odd"]


def _same_weights(model, probabilities):
  other = task_classifier.build_mlp(model.output.shape[-1], hidden=model.get_layer("hidden").units,
                                    probabilities=probabilities)
  other.set_weights(model.get_weights())
  return other


def test_logits_and_probabilities_give_the_same_condition(odd_even, tmp_path):
  """A model that returns probabilities (softmax inside) and the same model returning logits, as .keras files and
  as a SavedModel: each is told apart on the probe batch, and log C_c is the same for all."""
  logits = keras.saving.load_model(odd_even[0])
  softmax = _same_weights(logits, probabilities=True)
  softmax.save(str(tmp_path / "softmax.keras"))
  logits.export(str(tmp_path / "logits_saved_model"), verbose=False)
  softmax.export(str(tmp_path / "softmax_saved_model"), verbose=False)
  loaded = {name: condition_model.load_classifier(str(tmp_path / name) if name != "logits" else odd_even[0])
            for name in ("logits", "softmax.keras", "logits_saved_model", "softmax_saved_model")}
  assert {n: c.outputs_probabilities for n, c in loaded.items()} == {
      "logits": False, "softmax.keras": True, "logits_saved_model": False, "softmax_saved_model": True}
  assert all(c.num_classes == 2 for c in loaded.values())
  pixels = tf.constant(np.random.default_rng(3).uniform(size=(6, 28, 28, 1)), tf.float32)
  expected = tf.nn.log_softmax(logits(pixels)).numpy()
  for name, classifier in loaded.items():
    np.testing.assert_allclose(classifier.log_probabilities(pixels).numpy(), expected, atol=1e-5, err_msg=name)
  assert loaded["softmax.keras"].record()["model_outputs"] == "probabilities"
  assert loaded["logits"].record() == {"kind": "classifier", "model": os.path.abspath(odd_even[0]),
                                       "num_classes": 2, "model_outputs": "logits"}


def _model(inputs_shape, outputs):
  images = keras.Input(inputs_shape)
  return keras.Model(images, outputs(images))


BAD_CLASSIFIERS = {
    "flat_input": (lambda: _model((784,), lambda x: keras.layers.Dense(2)(x)), r"takes inputs of shape \[None, 784\]"),
    "image_output": (lambda: _model((28, 28, 1), lambda x: keras.layers.Conv2D(1, 3, padding="same")(x)),
                     r"returns shape \[8, 28, 28, 1\] for 8 images; a classifier returns \[N, K\]"),
    "one_class": (lambda: _model((28, 28, 1), lambda x: keras.layers.Dense(1)(keras.layers.Flatten()(x))),
                  "K = 1 output"),
    "two_outputs": (lambda: _model((28, 28, 1), lambda x: {"a": keras.layers.Dense(2)(keras.layers.Flatten()(x)),
                                                           "b": keras.layers.Dense(3)(keras.layers.Flatten()(x))}),
                    "returns 2 outputs"),
}


@pytest.mark.parametrize("name", sorted(BAD_CLASSIFIERS))
def test_models_the_sampler_cannot_use_are_refused_in_one_line(name, tmp_path):
  build, message = BAD_CLASSIFIERS[name]
  path = str(tmp_path / f"{name}.keras")
  build().save(path)
  with pytest.raises(condition_model.ConditionError, match=message) as raised:
    condition_model.load_classifier(path)
  assert len(str(raised.value).splitlines()) == 1 and str(raised.value).startswith(f"--condition_model={path}: ")


def test_paths_that_hold_no_classifier_are_refused(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "weights.h5").write_bytes(b"\x89HDF")
  (tmp_path / "broken.keras").write_bytes(b"not a keras archive")
  for path, message in ((tmp_path / "none.keras", "no such file"), (tmp_path / "empty", "without saved_model.pb"),
                        (tmp_path / "weights.h5", r"expected a Keras model file \(.keras\)"),
                        (tmp_path / "broken.keras", "cannot be loaded")):
    with pytest.raises(condition_model.ConditionError, match=message):
      condition_model.load_classifier(str(path))


@pytest.mark.parametrize("spec, message", [
    (ConditionSpec(model_path="x.keras", layer="fc1", unit=0), "not both"),
    (ConditionSpec(unit=3), "--unit=3 needs --condition_layer"),
    (ConditionSpec(layer="fc1"), "--condition_layer=fc1 needs --unit"),
    (ConditionSpec(layer="fc1", unit=-1), "--unit must be >= 0"),
    (ConditionSpec(model_path="/no/such/model.keras"), "no such file or directory")])
def test_condition_flags_are_checked_before_tensorflow_work(spec, message):
  with pytest.raises(ValueError, match=message):
    spec.validate()


def test_units_are_checked_against_the_encoders_layers(nets):
  encoder = nets[1]
  with pytest.raises(condition_model.ConditionError,
                     match=r"--condition_layer=fc3: not a layer of the encoder \(choose from conv1, conv2, conv3, "
                           r"fc1, fc2\)"):
    condition_model.resolve(ConditionSpec(layer="fc3", unit=0), encoder)
  with pytest.raises(condition_model.ConditionError, match=r"--unit=64: layer fc1 has 64 units \(choose from 0 to 63\)"):
    condition_model.resolve(ConditionSpec(layer="fc1", unit=64), encoder)
  conv = condition_model.resolve(ConditionSpec(layer="conv1", unit=22 * 22 * 64 - 1), encoder)
  assert conv.units == 22 * 22 * 64 and conv.num_targets == conv.units  # Rows x columns x channels.
  with pytest.raises(ValueError, match="unit 64 requested: the condition has 64"):
    MalaSampler(*nets, SamplerConfig(steps=1), condition_layer="fc1").sample([64], [1])


# --- One step by hand: the prior term is E's, the conditioning term the classifier's --------------------

def test_a_step_conditioned_on_a_classifier_matches_hand_computation():
  """Linear G (kernel A) and E (fc1 = x B + b1); a linear classifier of 3 classes on pixels p = STD G(h) + MEAN:
  h' = h + eps1 (fc1(G(h)) - h) + eps2 STD ((e_c - q) W^T * inside) A^T, q = softmax(p W + b)."""
  rng = np.random.default_rng(0)
  code = 4
  w = {"A": rng.normal(0, 0.05, (code, 784)), "B": rng.normal(0, 0.1, (784, code)), "b1": rng.normal(0, 0.1, code),
       "W": rng.normal(0, 0.3, (784, 3)), "b": rng.normal(0, 0.1, 3)}
  w = {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}
  codes = keras.Input((code,))
  dense_g = keras.layers.Dense(784, use_bias=False)
  generator = keras.Model(codes, keras.layers.Reshape((28, 28, 1))(dense_g(codes)))
  dense_g.set_weights([w["A"].astype(np.float32)])
  images = keras.Input((28, 28, 1))
  fc1_layer = keras.layers.Dense(code)
  fc1 = fc1_layer(keras.layers.Flatten()(images))
  encoder = keras.Model(images, {"fc1": fc1, "fc2": keras.layers.Dense(10)(fc1)})
  fc1_layer.set_weights([w["B"].astype(np.float32), w["b1"].astype(np.float32)])
  pixels_in = keras.Input((28, 28, 1))
  clf_layer = keras.layers.Dense(3)
  classifier = keras.Model(pixels_in, clf_layer(keras.layers.Flatten()(pixels_in)))
  clf_layer.set_weights([w["W"].astype(np.float32), w["b"].astype(np.float32)])
  plugged = condition_model.ConditionClassifier(classifier, 3, False, "linear")

  h = rng.normal(size=(3, code)).astype(np.float32).astype(np.float64)
  targets = np.array([0, 2, 1])
  generated = h @ w["A"]
  pixels = generated * data.STD + data.MEAN
  inside = (pixels > 0) & (pixels < 1)  # The classifier sees pixels clipped to [0, 1], as the sampler returns them.
  logits = np.clip(pixels, 0, 1) @ w["W"] + w["b"]
  q = np.exp(logits - logits.max(1, keepdims=True))
  q /= q.sum(1, keepdims=True)
  grad = data.STD * (((np.eye(3)[targets] - q) @ w["W"].T) * inside) @ w["A"].T
  fc1_of_g = generated @ w["B"] + w["b1"]
  expected = h + 0.1 * (fc1_of_g - h) + 0.5 * grad
  assert np.abs(0.5 * grad).max() > 1e-2  # The conditioning term counts in this check.
  h_next, _, objective = mala_step(tf.constant(h, tf.float32), tf.constant(targets, tf.int32),
                                   tf.constant([1, 2, 3], tf.int64), 0, generator, encoder, condition_model=plugged,
                                   epsilon1=0.1, epsilon2=0.5, epsilon3=0.0)
  np.testing.assert_allclose(h_next.numpy(), expected, rtol=1e-4, atol=1e-5)
  log_q = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  np.testing.assert_allclose(objective.numpy(), log_q[np.arange(3), targets], rtol=1e-4, atol=1e-5)


# --- The trained fixtures: the classifier's label, the unit, the start of the chains -------------------------

def test_conditioning_on_another_classifier_raises_its_probability(nets, odd_even):
  """The odd/even MLP's probability of the requested label, against chains with epsilon2 = 0 (the prior term
  alone: same G, seeds and starts), which are exactly the chains conditioned on E with epsilon2 = 0."""
  plugged = condition_model.load_classifier(odd_even[0])
  labels, seeds = np.tile([0, 1], 10), np.arange(20) + 100
  run = lambda eps2, **condition: {k: v.numpy() for k, v in MalaSampler(
      *nets, SamplerConfig(steps=STEPS, epsilon2=eps2), **condition).sample(labels, seeds).items()}
  conditioned, unconditioned = run(BIG_EPSILON2, condition_model=plugged), run(0.0, condition_model=plugged)
  rows = np.arange(20)
  requested = lambda out: out["condition_probs"][rows, labels]
  assert requested(conditioned).mean() > requested(unconditioned).mean() + 0.25, (
      requested(conditioned), requested(unconditioned))
  assert np.mean(requested(conditioned) > 0.5) >= 0.9 and np.mean(requested(unconditioned) > 0.5) <= 0.6
  np.testing.assert_allclose(conditioned["objective"], np.log(requested(conditioned)), rtol=1e-4, atol=1e-5)
  assert conditioned["condition_probs"].shape == (20, 2) and conditioned["class_probs"].shape == (20, 10)
  # The images stay what G draws: finite pixels in [0, 1] (the fixtures' G draws no digits yet; the quick start's
  # are judged by the evaluation classifier in docs/conditioning.md).
  assert np.isfinite(conditioned["images"]).all()
  assert conditioned["images"].min() >= 0 and conditioned["images"].max() <= 1
  prior_alone = {k: v.numpy() for k, v in MalaSampler(*nets, SamplerConfig(steps=STEPS, epsilon2=0.0)).sample(
      labels, seeds).items()}
  np.testing.assert_allclose(unconditioned["codes"], prior_alone["codes"], atol=1e-6)


def test_stop_probability_reads_the_plugged_classifier(nets, odd_even):
  plugged = condition_model.load_classifier(odd_even[0])
  labels, seeds = np.tile([0, 1], 4), np.arange(8) + 40
  start = MalaSampler(*nets, SamplerConfig(steps=0), condition_model=plugged).sample(labels, seeds)
  p0 = start["condition_probs"].numpy()[np.arange(8), labels]
  threshold = float(np.median(p0))  # Half the chains have arrived at the start and never move.
  out = MalaSampler(*nets, SamplerConfig(steps=5, epsilon2=BIG_EPSILON2, stop_probability=threshold),
                    condition_model=plugged).sample(labels, seeds)
  arrived = p0 >= threshold
  assert 0 < arrived.sum() < 8
  np.testing.assert_array_equal(out["codes"].numpy()[arrived], start["codes"].numpy()[arrived])
  assert np.abs(out["codes"].numpy()[~arrived] - start["codes"].numpy()[~arrived]).max() > 1e-3
  with pytest.raises(ValueError, match="class conditioning only"):
    MalaSampler(*nets, SamplerConfig(stop_probability=0.9), condition_layer="fc1")
  with pytest.raises(ValueError, match="not both"):
    MalaSampler(*nets, SamplerConfig(), condition_layer="fc1", condition_model=plugged)


def test_class_gaussian_starts_from_every_class_when_the_condition_is_no_class_of_E():
  """Codes of class c sit near 10 c on unit 0, class 0 holding half of them: without classes of E, h_0 comes from
  the mixture of every class' Gaussian, each by its share."""
  rng = np.random.default_rng(2)
  labels = np.concatenate([np.zeros(450), np.repeat(np.arange(1, 10), 50)]).astype(np.int32)
  codes = (rng.normal(size=(900, 4)) * 0.1 + 10.0 * labels[:, None] * np.array([1, 0, 0, 0])).astype(np.float32)
  statistics = CodePrior(codes, labels).statistics()
  np.testing.assert_allclose(statistics.class_shares[[0, 1]], [0.5, 50 / 900], atol=1e-6)
  seeds = tf.constant(np.arange(3000), tf.int64)
  drawn = initial_codes(seeds, [4], "class_gaussian", targets=None, statistics=statistics).numpy()
  nearest = np.clip(np.round(drawn[:, 0] / 10), 0, 9).astype(int)
  assert 0.45 < np.mean(nearest == 0) < 0.55 and set(nearest) == set(range(10))
  for c in (3, 9):
    assert 0.03 < np.mean(nearest == c) < 0.085
  # A row's draw is its seed's alone, in any batch.
  np.testing.assert_array_equal(initial_codes(seeds[17:18], [4], "class_gaussian", statistics=statistics)[0],
                                drawn[17])


def test_hidden_unit_conditioning_raises_the_unit_above_unconditioned_chains(nets):
  generator, encoder = nets
  seeds = np.arange(8) + 200
  start = encoder(generator(initial_codes(tf.constant(seeds, tf.int64), [64]), training=False), training=False)
  unit = int(start["fc1"].numpy().mean(0).argmax())  # Live at h_0: a dead ReLU unit has no gradient.
  run = lambda eps2: MalaSampler(*nets, SamplerConfig(steps=STEPS, epsilon2=eps2), condition_layer="fc1").sample(
      np.full(8, unit), seeds)["objective"].numpy()
  conditioned, unconditioned = run(BIG_EPSILON2), run(0.0)
  assert conditioned.mean() > 2 * unconditioned.mean() > 0 and np.all(conditioned > unconditioned)
