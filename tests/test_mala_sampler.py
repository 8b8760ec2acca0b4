"""The MALA-approx sampler (Eq. 8): one step against a numpy hand computation,
conditioning on classes and hidden units, per-row determinism, kept states,
settings validation and clipping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.sampling import sampler_config
from ppgn_tf.sampling import trained_run
from ppgn_tf.sampling.mala_sampler import (CodePrior, MalaSampler, SamplerConfig, check_inpaint_inputs, clip_bounds,
                                  initial_codes, mala_step, named_mask, preset, row_normal, run_chains)

from tiny_networks import linear_encoder, linear_generator

CODE = 4  # Code size of the tiny hand-checked networks.


# --- One step on tiny linear networks, by hand ---------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
  """Linear G (kernel A) and E (fc1 = x B + b1, fc2 = fc1 C + b2), with their weights in float64."""
  rng = np.random.default_rng(0)
  w = {"A": rng.normal(0, 0.05, (CODE, 784)), "B": rng.normal(0, 0.1, (784, CODE)),
       "b1": rng.normal(0, 0.1, CODE), "C": rng.normal(0, 1.0, (CODE, 10)), "b2": rng.normal(0, 0.1, 10)}
  w = {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}

  return linear_generator(w["A"]), linear_encoder(w["B"], w["b1"], w["C"], w["b2"]), w


def _hand_parts(h, w):
  """(fc1, fc2) of E(G(h)) in float64 (Keras' x @ W; G(h) flattened is h A). R_h(h) is fc1."""
  fc1 = h @ w["A"] @ w["B"] + w["b1"]
  return fc1, fc1 @ w["C"] + w["b2"]


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _step(tiny, h, targets, seeds, step, **kw):
  generator, encoder, _ = tiny
  h_next, images, objective = mala_step(tf.constant(h, tf.float32), tf.constant(targets, tf.int32),
                                        tf.constant(seeds, tf.int64), step, generator, encoder, **kw)
  return h_next.numpy().astype(np.float64), images.numpy(), objective.numpy()


def test_mala_step_class_conditioning_matches_hand_computation(tiny):
  _, _, w = tiny
  h = np.random.default_rng(1).normal(size=(3, CODE)).astype(np.float32).astype(np.float64)
  targets = np.array([0, 7, 3])
  r, fc2 = _hand_parts(h, w)
  p = _softmax(fc2)
  onehot = np.eye(10)[targets]
  jacobian = w["A"] @ w["B"] @ w["C"]  # d fc2 / d h, [code, 10]: fc2 = h J + const.
  grad = (onehot - p) @ jacobian.T  # d log_softmax(fc2)[c] / d h = J (e_c - p), row-wise.
  expected = h + 0.1 * (r - h) + 0.5 * grad
  assert np.abs(grad).max() > 1e-2  # The conditioning term is not negligible in this check.

  h_next, images, objective = _step(tiny, h, targets, [5, 6, 7], 0, epsilon1=0.1, epsilon2=0.5, epsilon3=0.0)
  np.testing.assert_allclose(h_next, expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(images.reshape(3, 784), h @ w["A"], rtol=1e-4, atol=1e-6)
  log_p = fc2 - np.log(np.exp(fc2).sum(-1, keepdims=True))
  np.testing.assert_allclose(objective, log_p[np.arange(3), targets], rtol=1e-4, atol=1e-5)


def test_mala_step_noise_is_epsilon3_times_row_normal(tiny):
  h = np.random.default_rng(2).normal(size=(3, CODE))
  seeds, step = [11, 12, 13], 4
  base, _, _ = _step(tiny, h, [1, 2, 3], seeds, step, epsilon1=0.1, epsilon2=0.5, epsilon3=0.0)
  noisy, _, _ = _step(tiny, h, [1, 2, 3], seeds, step, epsilon1=0.1, epsilon2=0.5, epsilon3=0.3)
  noise = row_normal(tf.constant(seeds, tf.int64), step, [CODE]).numpy()
  assert np.abs(noise).max() > 0.1
  np.testing.assert_allclose(noisy - base, 0.3 * noise, atol=1e-5)
  # Keyed per row by (seed, step): a row's draw ignores the rest of the batch, and steps differ.
  np.testing.assert_allclose(row_normal(tf.constant([12], tf.int64), step, [CODE]).numpy()[0], noise[1])
  key = random_streams.draw_key(12, random_streams.MALA_NOISE, step)  # The row's noise stream at the step.
  np.testing.assert_allclose(noise[1], tf.random.stateless_normal([CODE], seed=key).numpy())
  assert not np.allclose(row_normal(tf.constant(seeds, tf.int64), step + 1, [CODE]).numpy(), noise)
  assert not np.allclose(noise[0], noise[1])


def test_mala_step_hidden_unit_conditioning_matches_hand_computation(tiny):
  _, _, w = tiny
  h = np.random.default_rng(3).normal(size=(4, CODE)).astype(np.float32).astype(np.float64)
  units = np.array([0, 1, 2, 3])
  fc1, _ = _hand_parts(h, w)
  r = fc1
  grad = (w["A"] @ w["B"])[:, units].T  # d fc1[k] / d h: column k of A B.
  h_next, _, objective = _step(tiny, h, units, [1, 2, 3, 4], 0, condition_layer="fc1",
                               epsilon1=0.1, epsilon2=0.5, epsilon3=0.0)
  np.testing.assert_allclose(objective, fc1[np.arange(4), units], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(h_next, h + 0.1 * (r - h) + 0.5 * grad, rtol=1e-4, atol=1e-5)
  # Clipping applies to the stepped codes.
  clipped, _, _ = _step(tiny, h, units, [1, 2, 3, 4], 0, condition_layer="fc1", epsilon1=0.1,
                        epsilon2=0.5, epsilon3=0.0, clip_min=-0.3, clip_max=0.2)
  np.testing.assert_allclose(clipped, np.clip(h + 0.1 * (r - h) + 0.5 * grad, -0.3, 0.2), rtol=1e-4, atol=1e-5)


# --- The trained networks of the fixtures ---------------------------------------------------------

@pytest.fixture(scope="module")
def nets(trained_workdir, encoder_dir):
  """(G of the tiny trained run, E of the encoder fixture)."""
  return trained_run.load_trained(trained_workdir).generator, encoder_lib.load_encoder(encoder_dir)


def _sample(nets, config, targets, seeds, condition_layer="class", h0=None):
  sampler = MalaSampler(*nets, config, condition_layer=condition_layer)
  out = sampler.sample(np.asarray(targets, np.int32), np.asarray(seeds, np.int64), h0)
  return {k: v.numpy() for k, v in out.items()}


# The fixtures' G (2 G steps) is barely trained and E is narrow: G's images look alike to E (the requested
# class' log-probability spreads by about 0.3 over the classes at h_0), so conditioning needs a large eps2 to show
# within 30 steps. fc1 is after ReLU and some units of the fixture's fc1 are dead on G's images (no gradient), so
# hidden units are picked among the live ones.
BIG_EPSILON2 = 1000.0


def test_class_conditioning_raises_requested_class_probability(nets):
  # Three chains per class: the fixtures' G and E are barely trained, so one chain per class made the shares
  # below hinge on a single draw of the networks (10 chains gave 0.8 with one initialisation, 0.4 with another).
  classes, seeds = np.tile(np.arange(10), 3), np.arange(30) + 100
  before = _sample(nets, SamplerConfig(steps=0), classes, seeds)
  after = _sample(nets, SamplerConfig(steps=30, epsilon2=BIG_EPSILON2), classes, seeds)
  for out in (before, after):
    np.testing.assert_allclose(out["objective"], np.log(out["class_probs"][np.arange(30), classes]),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["class_probs"].sum(1), 1.0, atol=1e-5)
  rise = after["objective"] - before["objective"]
  spread = np.log(before["class_probs"]).std(1).mean()  # How far apart the classes start.
  assert rise.mean() > max(0.01, 3 * spread), (rise, spread)
  assert np.mean(rise > 0) >= 0.8, rise
  # The encoder now calls many more samples what they were asked to be: at least 3x chance, from below it.
  before_share = np.mean(before["class_probs"].argmax(1) == classes)
  after_share = np.mean(after["class_probs"].argmax(1) == classes)
  assert before_share <= 0.2 and after_share >= 0.3 and after_share >= before_share + 0.15, (before_share, after_share)


def test_hidden_unit_conditioning_raises_the_unit(nets):
  generator, encoder = nets
  seeds = np.arange(8) + 200
  h0 = initial_codes(tf.constant(seeds, tf.int64), [64])
  start = encoder(generator(h0, training=False), training=False)
  for layer in ("fc1", "conv3"):
    before = start[layer].numpy().reshape(8, -1)
    unit = int(before.mean(0).argmax())  # Live at h_0: a dead ReLU unit has no gradient.
    before = before[:, unit]
    assert before.mean() > 0
    after = _sample(nets, SamplerConfig(steps=30, epsilon2=BIG_EPSILON2), np.full(8, unit), seeds,
                    condition_layer=layer)
    features = encoder(generator(tf.constant(after["codes"]), training=False), training=False)
    np.testing.assert_allclose(after["objective"], features[layer].numpy().reshape(8, -1)[:, unit],
                               rtol=1e-4, atol=1e-5)
    assert after["objective"].mean() > 3 * before.mean(), (layer, unit, before, after["objective"])
    assert np.all(after["objective"] > before), (layer, unit, before, after["objective"])


def test_rows_depend_only_on_their_own_target_and_seed(nets):
  config = SamplerConfig(steps=12, epsilon3=0.1)  # Noise large enough to matter.
  targets, seeds = np.array([0, 3, 3, 5, 8, 9]), np.array([10, 11, 12, 13, 14, 15])
  base = _sample(nets, config, targets, seeds)["images"]
  order = np.array([4, 2, 0, 5, 1, 3])
  shuffled = _sample(nets, config, targets[order], seeds[order])["images"]
  np.testing.assert_allclose(shuffled, base[order], atol=1e-3)
  mixed = _sample(nets, config, np.concatenate([[7, 1], targets, [2, 6]]),
                  np.concatenate([[90, 91], seeds, [92, 93]]))["images"]
  np.testing.assert_allclose(mixed[2:8], base, atol=1e-3)
  # Rows do differ: same class, different seed.
  assert np.abs(base[1] - base[2]).max() > 1e-2


def test_keep_every_and_zero_steps(nets):
  generator, _ = nets
  targets, seeds = np.array([1, 4, 7]), np.array([3, 4, 5])
  h0 = initial_codes(tf.constant(seeds, tf.int64), [64]).numpy()
  config = SamplerConfig(steps=6, keep_every=2)
  out = _sample(nets, config, targets, seeds)
  assert out["trajectory_codes"].shape == (6 // 2 + 1, 3, 64)
  np.testing.assert_allclose(out["trajectory_codes"][0], h0)
  np.testing.assert_allclose(out["trajectory_codes"][-1], out["codes"])
  two = _sample(nets, dataclasses.replace(config, steps=2, keep_every=0), targets, seeds)
  assert "trajectory_codes" not in two
  np.testing.assert_allclose(out["trajectory_codes"][1], two["codes"], atol=1e-5)
  assert np.abs(out["codes"] - h0).max() > 1e-3

  zero = _sample(nets, SamplerConfig(steps=0, keep_every=3), targets, seeds)
  assert zero["trajectory_codes"].shape == (1, 3, 64)
  np.testing.assert_array_equal(zero["codes"], h0)
  np.testing.assert_allclose(zero["images"], data.denormalize(generator(tf.constant(h0), training=False)).numpy(),
                             atol=1e-5)


@pytest.mark.parametrize("bad, flag", [
    (dict(steps=-1), "steps"), (dict(epsilon1=-0.1), "epsilon1"), (dict(epsilon2=-1.0), "epsilon2"),
    (dict(epsilon3=-1e-3), "epsilon3"), (dict(keep_every=-2), "keep_every"),
    (dict(clip_min=1.0, clip_max=0.5), "clip_min")])
def test_config_validation_rejects(bad, flag):
  with pytest.raises(ValueError, match=flag):
    SamplerConfig(**bad).validate()
  with pytest.raises(ValueError, match=flag):
    MalaSampler(None, None, SamplerConfig(**bad))


def test_a_config_holds_its_fields_only_and_every_check_runs_each_time():
  """No hidden state on the frozen dataclass: validate() checks the values it finds, every time."""
  config = SamplerConfig(steps=3)
  config.validate()
  assert set(vars(config)) == {f.name for f in dataclasses.fields(config)}
  with pytest.raises(ValueError, match="--steps must be >= 0, got -1"):
    dataclasses.replace(config, steps=-1).validate()
  object.__setattr__(config, "steps", -1)  # Behind the frozen guard: checked again, so refused.
  with pytest.raises(ValueError, match="--steps must be >= 0, got -1"):
    config.validate()


def test_config_validation_accepts_edges():
  SamplerConfig().validate()
  SamplerConfig(steps=0, epsilon1=0, epsilon2=0, epsilon3=0, keep_every=0, clip_min=0.5, clip_max=0.5).validate()
  SamplerConfig(clip_min=-1.0).validate()


def test_clipping_keeps_codes_in_range(nets):
  targets, seeds = np.arange(4), np.arange(4) + 50
  free = _sample(nets, SamplerConfig(steps=3, keep_every=1), targets, seeds)
  assert free["trajectory_codes"][1:].min() < -0.5 and free["trajectory_codes"][1:].max() > 0.5
  clipped = _sample(nets, SamplerConfig(steps=3, keep_every=1, clip_min=-0.5, clip_max=0.5), targets, seeds)
  states = clipped["trajectory_codes"][1:]
  assert states.min() >= -0.5 and states.max() <= 0.5
  assert np.isclose(states, 0.5).any() and np.isclose(states, -0.5).any()
  np.testing.assert_array_equal(clipped["codes"], states[-1])


def test_default_h0_for_a_spatial_code_layer():
  from ppgn_tf.model.generator import build_generator
  generator = build_generator(encoder_lib.layer_shapes(encoder_lib.build_encoder())["conv3"], dim=2)
  sampler = MalaSampler(generator, encoder_lib.build_encoder(), SamplerConfig(steps=1), code_layer="conv3")
  out = sampler.sample(np.array([1, 2], np.int32), np.array([1, 2], np.int64))
  assert out["codes"].shape == (2, 2, 2, 256)


def test_chains_can_start_from_the_codes_of_given_images(nets, small_idx_dir):
  generator, encoder = nets
  sampler = MalaSampler(generator, encoder, SamplerConfig(steps=0))
  _, test = data.load_arrays(f"idx:{small_idx_dir}")
  images = data.normalize(test.images[:3])
  h0 = sampler.codes_of(images)
  np.testing.assert_allclose(h0.numpy(), encoder(images)["fc1"].numpy(), atol=1e-6)
  out = sampler.sample(np.array([1, 2, 3], np.int32), np.array([0, 1, 2], np.int64), h0)
  # Zero steps from the images' codes: the chains' images are G(E(x)), the reconstructions.
  np.testing.assert_allclose(out["codes"].numpy(), h0.numpy(), atol=1e-6)
  np.testing.assert_allclose(out["images"].numpy(), data.denormalize(generator(h0)).numpy(), atol=1e-5)


# --- The original PPGN's options, by hand on the tiny networks ------------------------------------

def _inpaint_hand(h, w, targets, known, mask, eps):
  """One step's direction with in-painting, in float64: (R - h, class gradient, known-pixel gradient)."""
  m, x = mask.reshape(len(h), 784), known.reshape(len(h), 784)
  generated = h @ w["A"]
  composite = m * x + (1 - m) * generated
  fc1 = composite @ w["B"] + w["b1"]
  p = _softmax(fc1 @ w["C"] + w["b2"])
  onehot = np.eye(10)[targets]
  class_grad = (((onehot - p) @ w["C"].T @ w["B"].T) * (1 - m)) @ w["A"].T  # Only unknown pixels reach E.
  known_grad = -(m * (generated - x)) @ w["A"].T
  return fc1 - h, class_grad, known_grad


def test_step_normalisation_and_step_size_match_hand_computation(tiny):
  _, _, w = tiny
  h = np.random.default_rng(4).normal(size=(3, CODE)).astype(np.float32).astype(np.float64)
  targets = np.array([2, 5, 9])
  r, fc2 = _hand_parts(h, w)
  grad = (np.eye(10)[targets] - _softmax(fc2)) @ (w["A"] @ w["B"] @ w["C"]).T
  direction = 0.1 * (r - h) + 0.5 * grad
  kw = dict(epsilon1=0.1, epsilon2=0.5, epsilon3=0.0)
  scaled, _, _ = _step(tiny, h, targets, [1, 2, 3], 0, step_size=0.3, **kw)
  np.testing.assert_allclose(scaled, h + 0.3 * direction, rtol=1e-4, atol=1e-5)
  normalised, _, _ = _step(tiny, h, targets, [1, 2, 3], 0, step_size=0.3, normalize_step=True, **kw)
  expected = h + 0.3 * direction / np.abs(direction).mean(1, keepdims=True)  # Per row, as the original PPGN.
  np.testing.assert_allclose(normalised, expected, rtol=1e-4, atol=1e-5)
  # A normalised step moves every row by step_size per unit on average, whatever the gradients' scale.
  np.testing.assert_allclose(np.abs(normalised - h).mean(1), 0.3, rtol=1e-4)


def test_inpainting_step_matches_hand_computation(tiny):
  _, _, w = tiny
  rng = np.random.default_rng(5)
  h = rng.normal(size=(2, CODE)).astype(np.float32).astype(np.float64)
  known = rng.normal(size=(2, 28, 28, 1)).astype(np.float32)
  mask = np.stack([named_mask("left"), named_mask("centre")])
  targets = np.array([3, 8])
  prior_term, class_grad, known_grad = _inpaint_hand(h, w, targets, known.astype(np.float64), mask, None)
  assert np.abs(known_grad).max() > 1e-2 and np.abs(class_grad).max() > 1e-3
  h_next, images, objective = _step(tiny, h, targets, [1, 2], 0, epsilon1=0.1, epsilon2=0.5, epsilon3=0.0,
                                    epsilon4=0.2, inpaint=(tf.constant(known), tf.constant(mask)))
  np.testing.assert_allclose(h_next, h + 0.1 * prior_term + 0.5 * class_grad + 0.2 * known_grad,
                             rtol=1e-4, atol=1e-5)
  # E saw the known pixels pasted into G(h).
  np.testing.assert_allclose(images[mask > 0], known[mask > 0], atol=1e-6)
  np.testing.assert_allclose(images.reshape(2, 784)[mask.reshape(2, 784) == 0],
                             (h @ w["A"])[mask.reshape(2, 784) == 0], rtol=1e-4, atol=1e-5)


def test_step_size_schedule_is_linear_from_start_to_end(tiny):
  generator, encoder, w = tiny
  h0 = np.random.default_rng(6).normal(size=(2, CODE)).astype(np.float32)
  targets, seeds = np.array([1, 6]), np.array([3, 4], np.int64)
  config = SamplerConfig(steps=3, epsilon1=0.1, epsilon2=0.5, epsilon3=0.0, step_size=1.0, step_size_end=0.2)
  out = run_chains(tf.constant(h0), tf.constant(targets, tf.int32), tf.constant(seeds), generator, encoder,
                   config=config)
  h = h0.astype(np.float64)
  for lr in (1.0, 0.6, 0.2):  # Linear over steps 0..2.
    r, fc2 = _hand_parts(h, w)
    grad = (np.eye(10)[targets] - _softmax(fc2)) @ (w["A"] @ w["B"] @ w["C"]).T
    h = h + lr * (0.1 * (r - h) + 0.5 * grad)
  np.testing.assert_allclose(out["codes"].numpy(), h, rtol=1e-4, atol=1e-5)


def _drawn(*args, **kwargs) -> np.ndarray:
  """initial_codes(*args, **kwargs) run as a graph: eagerly, its per-row draws (map_fn) take about 10 ms a row."""
  return tf.function(lambda: initial_codes(*args, **kwargs), autograph=False)().numpy()


@pytest.fixture(scope="module")
def prior():
  """Made-up ReLU-like codes: unit j is 0 half of the time, else uniform on [j, j + 1]."""
  rng = np.random.default_rng(7)
  codes = (rng.uniform(size=(400, CODE)) + np.arange(CODE)) * (rng.uniform(size=(400, CODE)) > 0.5)
  return CodePrior(codes.astype(np.float32))


def test_h0_from_real_codes_lies_in_their_range(prior):
  seeds = tf.constant(np.arange(200), tf.int64)
  picked = _drawn(seeds, [CODE], "codes", prior.codes)
  # Whole real codes, each one of the prior's rows.
  matches = (picked[:, None, :] == prior.codes[None]).all(-1)
  assert matches.any(1).all()
  assert len({int(np.argmax(row)) for row in matches}) > 100  # Many different codes, not one.
  marginals = _drawn(seeds, [CODE], "marginals", prior.codes)
  for j in range(CODE):  # Each unit's value is one of that unit's real values.
    assert np.isin(marginals[:, j], prior.codes[:, j]).all()
  assert marginals.min() >= 0 and (marginals == 0).mean() > 0.3  # Non-negative, with the codes' zeros.
  assert not (marginals[:, None, :] == prior.codes[None]).all(-1).any(1).all()  # Units mixed across codes.
  # Per row: the same seed draws the same code in any batch.
  np.testing.assert_array_equal(initial_codes(seeds[5:6], [CODE], "codes", prior.codes).numpy()[0], picked[5])
  normal = _drawn(seeds, [CODE])
  assert normal.min() < 0  # N(0, 1), the thesis' h_0, is not a ReLU code.


def _labelled(prior):
  """The made-up codes with classes 0-9, the ten classes in equal numbers."""
  return CodePrior(prior.codes, (np.arange(len(prior.codes)) % 10).astype(np.int32))


def test_h0_from_class_codes_are_real_codes_of_the_requested_class(prior, tiny):
  labelled = _labelled(prior)
  seeds = tf.constant(np.arange(300), tf.int64)
  targets = tf.constant(np.arange(300) % 10, tf.int32)
  picked = _drawn(seeds, [CODE], "class_codes", labelled.codes, targets=targets, prior_labels=labelled.labels)
  matches = (picked[:, None, :] == labelled.codes[None]).all(-1)  # [300, 400]: which real codes each row equals.
  of_class = labelled.labels[None, :] == targets.numpy()[:, None]
  assert (matches & of_class).any(1).all()  # Always a real code of the requested class.
  assert len(np.unique(picked, axis=0)) > 150  # Many codes of each class, not one per class.
  # The same seed and class draw the same code in any batch; another class draws another code.
  alone = initial_codes(seeds[7:8], [CODE], "class_codes", labelled.codes, targets=targets[7:8],
                        prior_labels=labelled.labels).numpy()
  np.testing.assert_array_equal(alone[0], picked[7])
  # Through the sampler, with restarts drawing again from the requested class.
  config = SamplerConfig(steps=4, epsilon3=0.0, h0="class_codes", reset_every=2, keep_every=1)
  states = MalaSampler(tiny[0], tiny[1], config, prior=labelled).sample(
      np.array([3, 8]), np.array([1, 2]))["trajectory_codes"].numpy()
  for state in (states[0], states[2]):
    hits = (state[:, None, :] == labelled.codes[None]).all(-1) & (labelled.labels[None] == np.array([[3], [8]]))
    assert hits.any(1).all()
  assert not np.allclose(states[0], states[2])


def test_h0_from_class_gaussians_are_new_codes_of_the_requested_class(prior, tiny):
  """h0=class_gaussian draws from per-class means and covariances alone: new codes, near their class' mean,
  inside the codes' range, the same for one seed in any batch."""
  labelled = _labelled(prior)
  statistics = labelled.statistics()
  # Summary statistics only: one mean and one scale per class, one range per unit.
  assert statistics.class_means.shape == (10, 1, CODE) and statistics.class_scales.shape == (10, 1, CODE, CODE)
  np.testing.assert_allclose(statistics.class_means[3, 0], labelled.codes[labelled.labels == 3].mean(0), rtol=1e-5)
  covariance = statistics.class_scales[3, 0] @ statistics.class_scales[3, 0].T
  np.testing.assert_allclose(covariance, np.cov(labelled.codes[labelled.labels == 3], rowvar=False), atol=0.01)
  seeds = tf.constant(np.arange(2000), tf.int64)
  targets = tf.constant(np.full(2000, 3), tf.int32)
  drawn = _drawn(seeds, [CODE], "class_gaussian", targets=targets, statistics=statistics)
  assert not (drawn[:, None, :] == labelled.codes[None]).all(-1).any()  # No row is a stored code.
  assert len(np.unique(drawn, axis=0)) > 0.99 * len(drawn)  # Only all 4 units clipped to the range can repeat.
  assert (drawn >= statistics.unit_low).all() and (drawn <= statistics.unit_high).all()
  # Near the class' mean (clipping at the range moves it a little), far from another class' when they differ.
  np.testing.assert_allclose(drawn.mean(0), statistics.class_means[3, 0], atol=0.25)
  alone = initial_codes(seeds[11:12], [CODE], "class_gaussian", targets=targets[11:12], statistics=statistics)
  np.testing.assert_array_equal(alone.numpy()[0], drawn[11])
  # Through the sampler (the default preset's h0): 0 steps return h0 itself.
  sampler = MalaSampler(tiny[0], tiny[1], SamplerConfig(h0="class_gaussian", steps=0), prior=labelled)
  out = sampler.sample(np.array([3, 3]), np.array([11, 12]))
  np.testing.assert_allclose(out["codes"].numpy(), drawn[11:13], rtol=1e-6)
  with pytest.raises(ValueError, match="--h0=class_gaussian needs the classes"):
    MalaSampler(tiny[0], tiny[1], SamplerConfig(h0="class_gaussian"), prior=prior)


def test_class_mixtures_draw_each_component_by_its_weight():
  """Two well-apart clusters per class: two components find them, and draws come from both in their shares."""
  rng = np.random.default_rng(5)
  labels = np.repeat(np.arange(10), 100).astype(np.int32)
  far = np.tile((np.arange(100) < 30)[:, None] * 10.0, (10, 1))  # 30 of each class' codes sit 10 away.
  codes = (rng.normal(size=(1000, CODE)) * 0.1 + 5 + far).astype(np.float32)
  statistics = CodePrior(codes, labels).statistics(components=2)
  np.testing.assert_allclose(np.sort(statistics.class_weights[4]), [0.3, 0.7], atol=1e-6)
  np.testing.assert_allclose(np.sort(statistics.class_means[4, :, 0]), [5.0, 15.0], atol=0.1)
  seeds = tf.constant(np.arange(1000), tf.int64)
  drawn = _drawn(seeds, [CODE], "class_gaussian", targets=tf.fill([1000], 4), statistics=statistics)
  assert 0.25 < np.mean(drawn[:, 0] > 10) < 0.35
  # Too few codes for a component of MIN_CODES_PER_COMPONENT: fewer components, the rest never drawn.
  few = CodePrior(codes[:150], (np.arange(150) % 10).astype(np.int32)).statistics(components=2)
  assert (few.class_weights == np.array([1.0, 0.0], np.float32)).all(axis=1).all()
  with pytest.raises(ValueError, match="--h0_components must be >= 1"):
    SamplerConfig(h0_components=0).validate()


def test_the_default_preset_starts_from_no_training_code():
  assert preset("default").h0 == "class_gaussian" and not preset("default").reads_training_codes
  assert preset("training_digit").reads_training_codes


def test_inpainting_starts_from_the_code_of_the_masked_image(tiny):
  """As the original PPGN: h_0 = E(masked image, unknown pixels at the data's mean), whatever h0 mode is set."""
  generator, encoder, _ = tiny
  rng = np.random.default_rng(3)
  images = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
  mask = np.repeat(named_mask("left")[None], 2, axis=0)
  sampler = MalaSampler(generator, encoder, SamplerConfig(steps=0))
  out = sampler.inpaint(images, mask, np.array([1, 2]), np.array([5, 6]))
  neutral = data.normalize(images).numpy() * mask  # Unknown pixels 0 in normalised space.
  np.testing.assert_allclose(out["codes"].numpy(), encoder(neutral)["fc1"].numpy(), rtol=1e-5, atol=1e-6)
  # The known half decides the start: another right half, the same start.
  other = images.copy()
  other[:, :, 14:] = 0.0
  np.testing.assert_allclose(sampler.inpaint(other, mask, np.array([1, 2]), np.array([5, 6]))["codes"].numpy(),
                             out["codes"].numpy(), rtol=1e-5, atol=1e-6)


def test_start_noise_moves_the_inpainting_start_by_the_seed(tiny):
  """start_noise > 0: h_0 = E(masked image) + start_noise * z, z ~ N(0, 1) from each row's seed; 0: no noise."""
  generator, encoder, _ = tiny
  images = np.random.default_rng(4).uniform(size=(3, 28, 28, 1)).astype(np.float32)
  images[1] = images[0]
  mask = named_mask("top")
  seeds = np.array([5, 6, 5])
  targets = np.array([1, 2, 3])
  plain = MalaSampler(generator, encoder, SamplerConfig(steps=0)).inpaint_start_codes(images, mask, targets,
                                                                                       seeds).numpy()
  noisy = MalaSampler(generator, encoder, SamplerConfig(steps=0, start_noise=2.0))
  start = noisy.inpaint_start_codes(images, mask, targets, seeds).numpy()
  np.testing.assert_allclose(noisy.inpaint(images, mask, targets, seeds)["codes"].numpy(), start,
                             atol=1e-6)  # inpaint starts there (0 steps: ends there).
  # The noise is N(0, 1) keyed by the row's seed, from a stream of its own (not the h_0 draw's).
  z = (start - plain) / 2.0
  np.testing.assert_allclose(z[0], z[2], atol=1e-5)  # One seed, one draw.
  assert np.std(z) == pytest.approx(1.0, abs=0.35)
  h0_draw = initial_codes(tf.constant(seeds, tf.int64), plain.shape[1:], "normal").numpy()
  assert np.abs(z - h0_draw).max() > 0.5
  assert np.abs(start[0] - start[1]).max() > 0.1  # One image, two seeds: two starts.


def test_class_mean_h0_is_the_mean_code_of_the_requested_class_whatever_the_seed(prior, tiny):
  labelled = _labelled(prior)
  statistics = labelled.statistics(components=2)  # The mixture's mean is the class' mean, whatever its parts.
  seeds = tf.constant([1, 2, 3, 4], tf.int64)
  means = initial_codes(seeds, [CODE], "class_mean", targets=tf.constant([3, 3, 5, 5]), statistics=statistics).numpy()
  np.testing.assert_allclose(means[0], labelled.codes[labelled.labels == 3].mean(0), rtol=1e-4)
  np.testing.assert_allclose(means[0], means[1])  # Another seed, the same start.
  np.testing.assert_allclose(means[2], labelled.codes[labelled.labels == 5].mean(0), rtol=1e-4)
  # No class of E (another condition): the mean over every class.
  anyone = initial_codes(seeds, [CODE], "class_mean", statistics=statistics).numpy()
  np.testing.assert_allclose(anyone[0], labelled.codes.mean(0), rtol=1e-4)
  with pytest.raises(ValueError, match="class_mean needs the classes"):
    MalaSampler(tiny[0], tiny[1], SamplerConfig(h0="class_mean"), prior=prior)


def test_inpainting_from_h0_fill_starts_at_the_known_pixels_pasted_into_gs_drawing_of_the_class(prior, tiny):
  """inpaint_start=h0_fill: h_0 = E(known pixels pasted into G(the settings' h_0 for the requested class))."""
  generator, encoder, _ = tiny
  labelled = _labelled(prior)
  images = np.repeat(np.random.default_rng(3).uniform(size=(1, 28, 28, 1)).astype(np.float32), 3, axis=0)
  mask = named_mask("left")
  config = SamplerConfig(steps=0, epsilon3=0.0, inpaint_start="h0_fill", h0="class_mean")
  sampler = MalaSampler(generator, encoder, config, prior=labelled)
  targets, seeds = np.array([2, 2, 7]), np.array([5, 6, 5])
  start = sampler.inpaint(images, mask, targets, seeds)["codes"].numpy()
  drawn = generator(initial_codes(tf.constant(seeds, tf.int64), [CODE], "class_mean", targets=tf.constant(targets),
                                  statistics=labelled.statistics())).numpy()
  pasted = np.where(mask > 0, data.normalize(images).numpy(), drawn)
  np.testing.assert_allclose(start, encoder(pasted)["fc1"].numpy(), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(start[0], start[1], atol=1e-6)  # class_mean: the seed changes nothing.
  assert np.abs(start[0] - start[2]).max() > 1e-3  # Another class, another start.
  assert not config.inpaint_varies
  drawing = dataclasses.replace(config, h0="class_gaussian")
  assert drawing.inpaint_varies
  varied = MalaSampler(generator, encoder, drawing, prior=labelled).inpaint(images, mask, targets, seeds)
  assert np.abs(varied["codes"].numpy()[0] - varied["codes"].numpy()[1]).max() > 1e-3  # A draw per seed.
  with pytest.raises(ValueError, match="--inpaint_start=mean: choose from masked_image, h0_fill"):
    SamplerConfig(inpaint_start="mean").validate()


@pytest.mark.parametrize("name, varies", [("inpaint", False), ("inpaint_varied", True)])
def test_inpainting_presets_vary_with_the_seed_only_when_named_so(tiny, prior, name, varies):
  generator, encoder, _ = tiny
  config = sampler_config.inpaint_preset(name)
  assert config.inpaint_varies == varies and config.stop_probability is None
  images = np.repeat(np.random.default_rng(5).uniform(size=(1, 28, 28, 1)).astype(np.float32), 2, axis=0)
  out = MalaSampler(generator, encoder, dataclasses.replace(config, steps=3), prior=_labelled(prior)).inpaint(
      images, named_mask("left"), np.array([4, 4]), np.array([1, 2]))["images"].numpy()
  assert (np.abs(out[0] - out[1]).max() > 1e-4) == varies
  with pytest.raises(ValueError, match="--inpaint_preset=best: choose from inpaint, inpaint_varied"):
    sampler_config.inpaint_preset("best")


def test_class_codes_need_classes_and_start_from_every_class_for_other_conditions(prior, tiny, tmp_path):
  config = SamplerConfig(h0="class_codes")
  with pytest.raises(ValueError, match="classes of the real codes"):
    MalaSampler(tiny[0], tiny[1], config, prior=prior)  # A prior without classes.
  no_sevens = CodePrior(prior.codes, np.where(np.arange(400) % 10 == 7, 6, np.arange(400) % 10).astype(np.int32))
  with pytest.raises(ValueError, match="no image of class 7"):
    MalaSampler(tiny[0], tiny[1], config, prior=no_sevens)
  # Conditioned on a unit, the targets are no classes of E: the chain starts from a real code of any class, the
  # one h0=codes draws for the seed (unit 3 would otherwise have picked a code of class 3).
  seeds = np.arange(40) + 60
  on_unit = MalaSampler(tiny[0], tiny[1], dataclasses.replace(config, steps=0), prior=_labelled(prior),
                        condition_layer="fc1").sample(np.full(40, 3), seeds)["codes"].numpy()
  np.testing.assert_array_equal(on_unit, initial_codes(tf.constant(seeds, tf.int64), [CODE], "codes",
                                                       prior.codes).numpy())
  picked_labels = [_labelled(prior).labels[(prior.codes == row).all(1)][0] for row in on_unit]
  assert len(set(picked_labels)) > 5
  # Classes survive a save and load; a file written before them loads without.
  _labelled(prior).save(str(tmp_path / "labelled.npz"))
  loaded = CodePrior.load(str(tmp_path / "labelled.npz"))
  np.testing.assert_array_equal(loaded.labels, _labelled(prior).labels)
  np.testing.assert_array_equal(loaded.codes, prior.codes)
  np.savez(str(tmp_path / "old.npz"), codes=prior.codes)
  assert CodePrior.load(str(tmp_path / "old.npz")).labels is None


def test_percentile_clipping_bounds_are_the_codes_percentiles(prior, tiny):
  low, high = prior.bounds(10)
  np.testing.assert_allclose(low, np.percentile(prior.codes, 10, axis=0), rtol=1e-6)
  np.testing.assert_allclose(high, np.percentile(prior.codes, 90, axis=0), rtol=1e-6)
  config = SamplerConfig(steps=5, epsilon2=50.0, clip_percentile=10, keep_every=1)
  sampler = MalaSampler(tiny[0], tiny[1], config, prior=prior)
  states = sampler.sample(np.arange(6), np.arange(6))["trajectory_codes"].numpy()[1:]
  assert (states >= low - 1e-6).all() and (states <= high + 1e-6).all()
  assert np.isclose(states, high).any()  # The conditioning pushes against the range.
  # With a fixed range as well, the tighter bound wins per unit.
  both_low, both_high = clip_bounds(dataclasses.replace(config, clip_min=0.5, clip_max=2.0), prior)
  np.testing.assert_allclose(both_low, np.maximum(low, 0.5))
  np.testing.assert_allclose(both_high, np.minimum(high, 2.0))


def test_restarts_draw_fresh_codes_every_n_steps(prior, tiny):
  config = SamplerConfig(steps=6, epsilon3=0.0, h0="codes", reset_every=3, keep_every=1)
  sampler = MalaSampler(tiny[0], tiny[1], config, prior=prior)
  seeds = tf.constant([11, 12, 13], tf.int64)
  states = sampler.sample(np.array([1, 2, 3]), seeds)["trajectory_codes"].numpy()
  np.testing.assert_array_equal(states[0], initial_codes(seeds, [CODE], "codes", prior.codes).numpy())
  # After step 3 each chain starts again from draw 1; not after the last step (the sample is a chain's end).
  np.testing.assert_array_equal(states[3], initial_codes(seeds, [CODE], "codes", prior.codes, draw=1).numpy())
  assert not np.allclose(states[3], states[0])
  assert not np.isin(states[6], prior.codes).all()


def test_chains_stop_once_their_class_is_probable_enough(tiny):
  _, _, w = tiny
  h = np.random.default_rng(8).normal(size=(6, CODE)).astype(np.float32).astype(np.float64)
  _, fc2 = _hand_parts(h, w)
  p = _softmax(fc2)
  targets = np.argsort(p, axis=1)[:, [-1, -1, -1, 0, 0, 0]].diagonal()  # Three likely classes, three unlikely.
  threshold = float(np.sort(p[np.arange(6), targets])[2] + 1e-6)  # Above the three lowest.
  arrived = p[np.arange(6), targets] >= threshold
  assert 0 < arrived.sum() < 6
  kw = dict(epsilon1=0.1, epsilon2=0.5, epsilon3=0.2)
  moved, _, _ = _step(tiny, h, targets, np.arange(6), 0, **kw)
  stopped, _, _ = _step(tiny, h, targets, np.arange(6), 0, stop_probability=threshold, **kw)
  np.testing.assert_allclose(stopped[arrived], h[arrived], atol=1e-6)  # Arrived rows stay, noise and all.
  np.testing.assert_allclose(stopped[~arrived], moved[~arrived], atol=1e-6)  # The others step as usual.
  assert np.abs(moved[arrived] - h[arrived]).max() > 1e-2
  with pytest.raises(ValueError, match="class conditioning only"):
    _step(tiny, h, np.zeros(6, int), np.arange(6), 0, condition_layer="fc1", stop_probability=0.5, **kw)


@pytest.mark.parametrize("bad, flag", [
    (dict(epsilon4=-1.0), "epsilon4"), (dict(step_size=-0.1), "step_size"), (dict(step_size_end=-1.0), "step_size_end"),
    (dict(reset_every=-1), "reset_every"), (dict(h0="uniform"), "h0"), (dict(clip_percentile=50), "clip_percentile"),
    (dict(clip_percentile=-1), "clip_percentile"), (dict(epsilon3=float("nan")), "epsilon3"),
    (dict(stop_probability=0.0), "stop_probability"), (dict(stop_probability=1.5), "stop_probability")])
def test_new_settings_validation_rejects(bad, flag):
  with pytest.raises(ValueError, match=flag):
    SamplerConfig(**bad).validate()


def test_settings_that_read_codes_need_them(tiny):
  with pytest.raises(ValueError, match="real codes"):
    MalaSampler(tiny[0], tiny[1], SamplerConfig(h0="codes"))
  with pytest.raises(ValueError, match="real codes"):
    MalaSampler(tiny[0], tiny[1], SamplerConfig(clip_percentile=1.0))
  with pytest.raises(ValueError, match="sampler_preset=nope"):
    preset("nope")
  assert preset("thesis") == SamplerConfig()  # Eq. 8 with the thesis' values, exactly.


@pytest.mark.parametrize("images, mask, message", [
    (np.zeros((2, 28, 28, 1)), np.ones((28, 14, 1)), "mask: expected shape"),
    (np.zeros((2, 28, 28, 1)), np.ones((3, 28, 28, 1)), "mask: expected shape"),
    (np.full((2, 28, 28, 1), 1.5), np.ones((28, 28, 1)), r"pixels must be in \[0, 1\]"),
    (np.zeros((2, 28, 28, 1)), np.full((28, 28, 1), 0.5), "values must be 0"),
    (np.zeros((2, 32, 32, 1)), np.ones((28, 28, 1)), "images: expected shape"),
    (np.zeros((3, 28, 28, 1)), np.ones((28, 28, 1)), "images: expected shape")])
def test_inpainting_inputs_are_checked(images, mask, message):
  with pytest.raises(ValueError, match=message):
    check_inpaint_inputs(images, mask, rows=2)
  with pytest.raises(ValueError, match="inpaint_mask=diagonal"):
    named_mask("diagonal")


def test_inpainting_keeps_known_pixels_and_follows_the_class(tiny, small_idx_dir):
  # The tiny linear G depends strongly on h (the trained fixtures' G barely does after 2 G steps).
  generator, encoder, _ = tiny
  _, test = data.load_arrays(f"idx:{small_idx_dir}")
  images = test.images[:8].astype(np.float32) / 255.0
  mask = named_mask("top")
  targets, seeds = np.arange(8) % 10, np.arange(8) + 300
  config = SamplerConfig(steps=40, epsilon1=0.0, epsilon2=1.0, epsilon3=0.0, epsilon4=0.3)
  sampler = MalaSampler(generator, encoder, config)
  run = lambda s, how, *args: {k: v.numpy() for k, v in getattr(s, how)(*args).items()}
  filled = run(sampler, "inpaint", images, mask, targets, seeds)
  free = run(sampler, "sample", targets, seeds)
  unconditioned = run(MalaSampler(generator, encoder, dataclasses.replace(config, epsilon2=0.0)), "inpaint", images,
                      mask, targets, seeds)
  known = np.broadcast_to(mask, images.shape) > 0
  # The output keeps the known pixels exactly ...
  np.testing.assert_allclose(filled["images"][known], images[known], atol=1e-6)
  # ... and G(h) itself moved towards them: closer than an unconditioned chain's G(h) (4 code units cannot
  # draw the whole known half: the least-squares floor is near).
  known_error = lambda x: np.mean((x[known] - images[known]) ** 2)
  assert known_error(filled["generated"]) < 0.95 * known_error(free["images"]), (
      known_error(filled["generated"]), known_error(free["images"]))
  # The requested class's probability is higher than when in-painting without the class, for every chain.
  rows = np.arange(8)
  rise = filled["class_probs"][rows, targets] - unconditioned["class_probs"][rows, targets]
  assert np.all(rise > 0) and rise.mean() > 0.003, rise
