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
from ppgn_tf.sampling import trained_run
from ppgn_tf.sampling.condition_spec import ConditionSpec
from ppgn_tf.sampling.mala_sampler import CodePrior, MalaSampler, SamplerConfig, initial_codes, mala_step

from conftest import NARROW_CONV_WIDTHS, REPO
from serving_requests import NO_PACKAGE_PREAMBLE
from tiny_networks import linear_encoder, linear_generator

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
  return trained_run.load_trained(trained_workdir).generator, encoder_lib.load_encoder(encoder_dir)


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
  with pytest.raises(condition_model.ConditionError,
                     match=r"--unit=64: layer fc1 has 64 units \(choose from 0 to 63\)"):
    condition_model.resolve(ConditionSpec(layer="fc1", unit=64), encoder)
  conv1_units = 22 * 22 * NARROW_CONV_WIDTHS[0]  # Rows x columns x channels of the fixture's E.
  conv = condition_model.resolve(ConditionSpec(layer="conv1", unit=conv1_units - 1), encoder)
  assert conv.units == conv1_units and conv.num_targets == conv.units
  with pytest.raises(condition_model.ConditionError,
                     match=rf"--unit={conv1_units}: layer conv1 has {conv1_units} units"):
    condition_model.resolve(ConditionSpec(layer="conv1", unit=conv1_units), encoder)
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
  generator = linear_generator(w["A"])
  encoder = linear_encoder(w["B"], w["b1"])
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


# --- The export: the classifier baked in, a unit per row, the limits --------------------------------------

STANDALONE = NO_PACKAGE_PREAMBLE + r'''import numpy as np
import tensorflow as tf

path, unit = sys.argv[1], int(sys.argv[2])
signatures = tf.saved_model.load(path).signatures


def refused(name, **inputs):
  try:
    signatures[name](**inputs)
  except tf.errors.InvalidArgumentError as e:
    return e.message
  return None


out = signatures["serving_default"](class_id=tf.constant([0, 1, 1, 0], tf.int32),
                                    seed=tf.constant([1, 2, 3, 4], tf.int64))
units = signatures["sample_unit"](unit=tf.constant([unit, unit], tf.int32), seed=tf.constant([5, 6], tf.int64))
seeds = lambda n: tf.constant(np.arange(n), tf.int64)
print(json.dumps({
    "modules": sorted(m for m in sys.modules if m.startswith("ppgn")),
    "signatures": sorted(signatures.keys()),
    "serving_default": {k: v.numpy().tolist() for k, v in out.items()},
    "sample_unit": {k: v.numpy().tolist() for k, v in units.items()},
    "class_2": refused("serving_default", class_id=tf.constant([0, 2], tf.int32), seed=seeds(2)),
    "class_2_sample": refused("sample", class_id=tf.constant([2], tf.int32), seed=seeds(1), steps=tf.constant(1),
                              epsilon1=tf.constant(0.01), epsilon2=tf.constant(1.0), epsilon3=tf.constant(0.0)),
    "unit_64": refused("sample_unit", unit=tf.constant([3, 64], tf.int32), seed=seeds(2)),
    "unit_negative": refused("sample_unit", unit=tf.constant([-1], tf.int32), seed=seeds(1)),
    "unit_rows": refused("sample_unit", unit=tf.constant([1] * 5, tf.int32), seed=seeds(5)),
    "unit_seeds": refused("sample_unit", unit=tf.constant([1, 2], tf.int32), seed=seeds(3)),
}))
'''


@pytest.fixture(scope="module")
def exported(nets, trained_workdir, odd_even, tmp_path_factory):
  """(version path, library samplers, live unit of fc1) of an export of the default preset conditioned on a copy of
  the odd/even MLP, which is deleted once the export is written; with a sample_unit signature on fc1."""
  from ppgn_tf.sampling import sampler_config
  generator, encoder = nets
  model = trained_run.load_trained(trained_workdir)
  prior = trained_run.load_code_prior(trained_workdir, model)
  copy = tmp_path_factory.mktemp("classifier") / "odd_even.keras"
  copy.write_bytes(open(odd_even[0], "rb").read())
  plugged = condition_model.load_classifier(str(copy))
  config = sampler_config.preset("default")
  archive = serving.build_archive(generator, encoder, config, "fc1", prior, condition_model=plugged,
                                  unit_layer="fc1", max_batch=4)
  path = serving.write(archive, str(tmp_path_factory.mktemp("export") / "odd_even"))
  copy.unlink()  # Baked in: the export never reads the file again.
  start = encoder(generator(initial_codes(tf.constant([5, 6], tf.int64), [64]), training=False), training=False)
  unit = int(start["fc1"].numpy().mean(0).argmax())
  samplers = {"classes": MalaSampler(generator, encoder, config, prior=prior, condition_model=plugged),
              "unit": MalaSampler(generator, encoder, sampler_config.for_unit_condition(config), prior=prior,
                                  condition_layer="fc1")}
  return path, samplers, unit, str(copy)


def test_an_export_bakes_the_classifier_in_and_checks_class_id_and_unit(exported, tmp_path):
  path, samplers, unit, source = exported
  script = tmp_path / "load.py"
  script.write_text(STANDALONE)
  out = _run([sys.executable, "-I", str(script), path, str(unit)], cwd=str(tmp_path))
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["modules"] == []
  assert {"serving_default", "sample", "inpaint", "generate", "encode", "sample_unit"} <= set(result["signatures"])
  served = {k: np.array(v) for k, v in result["serving_default"].items()}
  assert set(served) == {"images", "codes", "class_probs", "condition_probs"}
  assert served["condition_probs"].shape == (4, 2) and served["class_probs"].shape == (4, 10)
  library = {k: v.numpy() for k, v in samplers["classes"].sample([0, 1, 1, 0], [1, 2, 3, 4]).items()}
  for k in served:
    np.testing.assert_allclose(served[k], library[k], atol=1e-4, err_msg=k)
  # class_id follows the classifier's K = 2; the unit, fc1's 64 units; rows, max_batch 4.
  assert "class_id must be in [0, 2)" in result["class_2"] and "class_id must be in [0, 2)" in result["class_2_sample"]
  assert "unit must be in [0, 64) (fc1)" in result["unit_64"] and "unit must be in [0, 64)" in result["unit_negative"]
  assert "unit has more rows than this export allows (max_batch 4)" in result["unit_rows"]
  assert "seed must have one value per unit" in result["unit_seeds"]
  units = {k: np.array(v) for k, v in result["sample_unit"].items()}
  assert set(units) == {"images", "codes", "class_probs", "activation"}
  library = {k: v.numpy() for k, v in samplers["unit"].sample([unit, unit], [5, 6]).items()}
  np.testing.assert_allclose(units["activation"], library["objective"], atol=1e-4)
  np.testing.assert_allclose(units["images"], library["images"], atol=1e-4)
  # assets.extra/sampler.json names the condition; the settings read back as they were.
  assert export_layout.read_condition(path) == {"kind": "classifier", "model": os.path.abspath(source),
                                                "num_classes": 2, "model_outputs": "logits"}
  record = export_layout.read_unit_condition(path)
  assert {k: record[k] for k in ("kind", "layer", "units", "signature")} == {
      "kind": "unit", "layer": "fc1", "units": 64, "signature": "sample_unit"}
  assert record["settings"]["stop_probability"] is None  # The default's stop rule is a class probability's.
  from ppgn_tf.sampling import sampler_config
  assert export_layout.read_sampler_settings(path) == sampler_config.preset("default")


def test_export_program_with_a_condition(trained_workdir, odd_even, tmp_path):
  export_dir = tmp_path / "m"
  out = _run([sys.executable, "export.py", f"--workdir={trained_workdir}", f"--export_dir={export_dir}",
              f"--condition_model={odd_even[0]}", "--condition_layer=conv3", "--sampler_preset=thesis", "--steps=2",
              "--precision=fp32"])
  assert out.returncode == 0, out.stderr[-3000:]
  path = str(export_dir / "1")
  assert export_layout.read_condition(path)["num_classes"] == 2
  units = 2 * 2 * NARROW_CONV_WIDTHS[2]  # The fixture E's conv3: 2x2 positions, its channels.
  assert export_layout.read_unit_condition(path)["units"] == units
  signatures = tf.saved_model.load(path).signatures
  with pytest.raises(tf.errors.InvalidArgumentError, match=rf"unit must be in \[0, {units}\) \(conv3\)"):
    signatures["sample_unit"](unit=tf.constant([units], tf.int32), seed=tf.constant([1], tf.int64))


@pytest.mark.parametrize("flags, message", [
    (["--unit=3", "--condition_layer=fc1"], "export.py: error: --unit: an export's sample_unit signature takes the "
                                            "unit with each request; give --condition_layer alone"),
    (["--condition_layer=fc9"], "export.py: error: --condition_layer=fc9: not a layer of the encoder (choose from "
                                "conv1, conv2, conv3, fc1, fc2)"),
    (["--condition_model=/no/such.keras"], "export.py: error: --condition_model=/no/such.keras: no such file or "
                                           "directory"),
])
def test_export_program_refuses_bad_conditions_in_one_line(flags, message, trained_workdir, tmp_path):
  out = _run([sys.executable, "export.py", f"--workdir={trained_workdir}", f"--export_dir={tmp_path / 'm'}", *flags])
  assert out.returncode == 1 and not (tmp_path / "m").exists()
  assert _program_lines(out.stderr)[-1] == message, out.stderr[-2000:]


# --- The programs: sample and evaluate ----------------------------------------------------------------------

def _live_unit(nets, seeds=(5, 6)):
  generator, encoder = nets
  start = encoder(generator(initial_codes(tf.constant(list(seeds), tf.int64), [64]), training=False), training=False)
  return int(start["fc1"].numpy().mean(0).argmax())  # A dead ReLU unit has no gradient.


def _stats(output_dir):
  with open(os.path.join(output_dir, "samples.json")) as f:
    return json.load(f)


def test_sample_program_conditions_on_a_classifier_and_on_a_unit(trained_workdir, odd_even, nets, exported,
                                                                 tmp_path):
  unit = _live_unit(nets)
  runs = {
      # The default preset with a unit: its stop rule is off, its chains start from every class' codes.
      "unit": [f"--workdir={trained_workdir}", "--condition_layer=fc1", f"--unit={unit}", "--per_class=3"],
      "classifier": [f"--workdir={trained_workdir}", f"--condition_model={odd_even[0]}", "--sampler_preset=thesis",
                     "--steps=4", f"--epsilon2={BIG_EPSILON2}", "--per_class=3"],
      "export": [f"--saved_model={exported[0]}", "--per_class=3"],
      "export_unit": [f"--saved_model={exported[0]}", "--condition_layer=fc1", f"--unit={exported[2]}",
                      "--per_class=3"],
  }
  stats = {}
  for name, args in runs.items():
    out = _run([sys.executable, "-m", "ppgn_tf.sample", *args, "--gif_frames=2", f"--output_dir={tmp_path / name}"])
    assert out.returncode == 0, (name, out.stderr[-3000:])
    stats[name] = _stats(tmp_path / name)
    with np.load(tmp_path / name / "samples.npz") as saved:
      stats[name]["npz"] = {k: saved[k] for k in saved}
  for name in ("classifier", "export"):  # One row per class of the classifier: 2 x 3 chains.
    assert stats[name]["condition"]["kind"] == "classifier" and stats[name]["condition"]["num_classes"] == 2
    assert list(stats[name]["npz"]["classes"]) == [0, 0, 0, 1, 1, 1] and stats[name]["npz"]["images"].shape[0] == 6
    assert 0 <= stats[name]["accuracy"] <= 1 and 0 < stats[name]["mean_requested_probability"] < 1
  for name, chosen in (("unit", unit), ("export_unit", exported[2])):
    assert stats[name]["condition"] == {"kind": "unit", "layer": "fc1", "unit": chosen, "units": 64}
    assert list(stats[name]["npz"]["units"]) == [chosen] * 3 and stats[name]["mean_activation"] >= 0
  assert (tmp_path / "unit" / "chains.gif").is_file() and not (tmp_path / "export_unit" / "chains.gif").exists()


@pytest.mark.parametrize("flags, message", [
    (["--unit=3"], "sample: error: --unit=3 needs --condition_layer (the layer of E the unit belongs to)"),
    (["--condition_layer=fc1", "--unit=64"], "sample: error: --unit=64: layer fc1 has 64 units (choose from 0 to 63)"),
    (["--condition_layer=fc1", "--unit=1", "--stop_probability=0.5"],
     "sample: error: --stop_probability applies to class conditioning only (E's classes or --condition_model's), "
     "not to a unit of --condition_layer"),
])
def test_sample_program_refuses_bad_conditions_in_one_line(flags, message, trained_workdir, tmp_path):
  out = _run([sys.executable, "-m", "ppgn_tf.sample", f"--workdir={trained_workdir}", *flags,
              f"--output_dir={tmp_path / 'out'}"])
  assert out.returncode == 1 and not (tmp_path / "out").exists()
  assert _program_lines(out.stderr)[-1] == message, out.stderr[-2000:]


def test_sample_program_refuses_a_one_class_model_in_one_line(trained_workdir, tmp_path):
  path = str(tmp_path / "one.keras")
  _model((28, 28, 1), lambda x: keras.layers.Dense(1)(keras.layers.Flatten()(x))).save(path)
  out = _run([sys.executable, "-m", "ppgn_tf.sample", f"--workdir={trained_workdir}", f"--condition_model={path}",
              f"--output_dir={tmp_path / 'out'}"])
  assert out.returncode == 1 and not (tmp_path / "out").exists()
  assert _program_lines(out.stderr)[-1] == (
      f"sample: error: --condition_model={path}: has K = 1 output; conditioning needs K >= 2 classes (a binary "
      "classifier must return both classes' logits or probabilities)")


@pytest.fixture(scope="module")
def eval_classifier_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("eval_classifier") / "clf")  # Trained by the first evaluation, then shared.


def test_evaluate_program_compares_conditioned_with_unconditioned_chains(trained_workdir, odd_even, nets,
                                                                         eval_classifier_dir, tmp_path):
  common = ["--sampler_preset=thesis", f"--steps={STEPS}", f"--epsilon2={BIG_EPSILON2}", "--per_class=10",
            f"--eval_classifier_dir={eval_classifier_dir}"]
  unit = _live_unit(nets)
  results = {}
  for name, condition in (("classifier", [f"--condition_model={odd_even[0]}"]),
                          ("unit", ["--condition_layer=fc1", f"--unit={unit}"])):
    output = tmp_path / f"{name}.json"
    out = _run([sys.executable, "-m", "ppgn_tf.evaluate", f"--workdir={trained_workdir}", *condition, *common,
                f"--output={output}"])
    assert out.returncode == 0, (name, out.stderr[-3000:])
    assert out.stdout.strip().splitlines()[-1] == str(output)
    results[name] = json.loads(output.read_text())
    assert (tmp_path / f"{name}_samples.png").is_file()
  c, u = results["classifier"]["conditioned"], results["classifier"]["unconditioned"]
  assert results["classifier"]["num_samples"] == 20 and results["classifier"]["condition"]["num_classes"] == 2
  assert c["mean_requested_probability"] > u["mean_requested_probability"] + 0.25, (c, u)
  assert [row["class"] for row in c["per_class"]] == [0, 1]
  assert all(sum(row["eval_classifier_digit_shares"]) == pytest.approx(1.0) for row in c["per_class"])
  c, u = results["unit"]["conditioned"], results["unit"]["unconditioned"]
  assert c["mean_activation"] > 2 * u["mean_activation"] > 0, (c, u)
  assert 0 < c["active_share"] <= 1
  for result in results.values():  # The evaluation classifier's verdict, beside the real digits'.
    for judged in (result["conditioned"], result["unconditioned"]):
      assert 0 < judged["eval_classifier_mean_top_probability"] <= 1 and judged["frechet_distance"] > 0
      assert sum(judged["eval_classifier_digit_shares"]) == pytest.approx(1.0)
      # The copy test, as every sample-quality figure has it: chains against G(E(x)) of the training digits.
      assert judged["copy_ratio"] > 0 and judged["exact_duplicate_pairs"] == 0  # Distinct seeds, distinct images.
    assert result["G(E(x_test))"]["frechet_distance"] > 0 and result["G(E(x_test))"]["diversity"] > 0
    assert 0 < result["real_digits"]["eval_classifier_mean_top_probability"] <= 1
    assert result["sampler"]["epsilon2"] == BIG_EPSILON2
