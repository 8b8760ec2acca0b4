"""Tests for ppgn_tf.losses against values computed by hand or in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf.model import losses

REAL = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
FAKE = np.array([0.0, 4.0, -1.0], np.float32)


def _np_softplus(x):
  return np.log1p(np.exp(x))


def _np_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


# --- Reconstruction losses -------------------------------------------------


def test_image_reconstruction_loss_is_mean_over_elements():
  fake = tf.constant([[[1.0, 2.0], [3.0, 4.0]]])  # [1, 2, 2]
  real = tf.constant([[[0.0, 2.0], [5.0, 1.0]]])
  # Squared differences 1, 0, 4, 9 -> mean 14 / 4.
  assert float(losses.image_reconstruction_loss(fake, real)) == pytest.approx(3.5)


def test_image_reconstruction_loss_casts_uint8_and_float16():
  fake = tf.constant([[2, 0]], tf.uint8)
  real = tf.constant([[0.0, 1.0]], tf.float16)
  assert float(losses.image_reconstruction_loss(fake, real)) == pytest.approx(2.5)


def test_image_reconstruction_loss_is_zero_for_identical_inputs():
  x = tf.random.stateless_normal([3, 28, 28, 1], seed=[1, 2])
  assert float(losses.image_reconstruction_loss(x, x)) == 0.0


def test_feature_reconstruction_loss_weights_each_layer_mean():
  fake = {
      "conv3": tf.constant([[[1.0, 2.0]], [[0.0, 0.0]]]),  # [2, 1, 2]
      "fc1": tf.constant([[1.0, 1.0, 1.0]]),  # [1, 3]
      "fc2": tf.constant([[100.0]]),  # Not weighted: must be ignored.
  }
  real = {
      "conv3": tf.constant([[[0.0, 0.0]], [[0.0, 2.0]]]),
      "fc1": tf.constant([[1.0, 3.0, -1.0]]),
      "fc2": tf.constant([[0.0]]),
  }
  weights = {"conv3": 0.5, "fc1": 2.0}
  # conv3: (1 + 4 + 0 + 4) / 4 = 2.25; fc1: (0 + 4 + 4) / 3 = 8 / 3.
  expected = 0.5 * 2.25 + 2.0 * 8.0 / 3.0
  got = float(losses.feature_reconstruction_loss(fake, real, weights))
  assert got == pytest.approx(expected, rel=1e-6)


def test_feature_reconstruction_loss_with_no_layers_is_zero():
  assert float(losses.feature_reconstruction_loss({}, {}, {})) == 0.0


# --- Critic losses ---------------------------------------------------------


def test_wasserstein_estimate_and_critic_loss():
  # mean(REAL) = 2.5 / 4 = 0.625, mean(FAKE) = 1.0.
  assert float(losses.wasserstein_estimate(REAL, FAKE)) == pytest.approx(-0.375)
  assert float(losses.wasserstein_critic_loss(REAL, FAKE)) == pytest.approx(0.375)
  assert float(losses.GAN_LOSSES[losses.WGAN_GP].critic_loss(REAL, FAKE)) == pytest.approx(0.375)


def test_log_critic_loss_matches_negative_log_sigmoid():
  r = np.array([-3.0, 0.0, 2.0, 10.0])
  f = np.array([-5.0, 1.5, 0.25])
  expected = np.mean(-np.log(_np_sigmoid(r))) + np.mean(-np.log(1.0 - _np_sigmoid(f)))
  got = float(losses.log_critic_loss(tf.constant(r, tf.float32), tf.constant(f, tf.float32)))
  assert got == pytest.approx(expected, rel=1e-5)
  got = float(losses.GAN_LOSSES[losses.LOG].critic_loss(r.astype(np.float32), f.astype(np.float32)))
  assert got == pytest.approx(expected, rel=1e-5)


def test_log_critic_loss_is_finite_for_large_scores():
  got = float(losses.log_critic_loss(tf.constant([-200.0]), tf.constant([200.0])))
  # softplus(200) + softplus(200) = 400 (no overflow to inf).
  assert got == pytest.approx(400.0, rel=1e-6)


def test_log_critic_loss_at_zero_scores_is_two_log_two():
  got = float(losses.log_critic_loss(tf.zeros([5]), tf.zeros([3])))
  assert got == pytest.approx(2.0 * np.log(2.0), rel=1e-6)


# --- Generator losses ------------------------------------------------------


def test_generator_adversarial_term_wasserstein():
  assert float(losses.GAN_LOSSES[losses.WGAN_GP].generator_term(FAKE)) == pytest.approx(-1.0)


def test_generator_adversarial_term_log_is_non_saturating():
  expected = np.mean(-np.log(_np_sigmoid(FAKE)))
  got = float(losses.GAN_LOSSES[losses.LOG].generator_term(FAKE))
  assert got == pytest.approx(expected, rel=1e-5)


def test_adversarial_loss_sums_weighted_terms():
  scores = {
      "image": tf.constant([1.0, 3.0]),  # mean 2
      "fc1": tf.constant([-4.0, 0.0, 1.0]),  # mean -1
      "conv3": tf.constant([7.0]),  # mean 7, masked by a zero weight
  }
  weights = {"image": 0.5, "fc1": tf.constant(3.0), "conv3": 0.0}
  # -(0.5 * 2) - (3 * -1) - 0 * 7 = 2.
  got = float(losses.adversarial_loss(losses.wasserstein_generator_term, scores, weights))
  assert got == pytest.approx(2.0)
  # A tensor weight can switch a critic on and off (as the trainer's mask does).
  weights = {"image": 0.5, "fc1": tf.constant(0.0), "conv3": tf.constant(1.0)}
  got = float(losses.adversarial_loss(losses.wasserstein_generator_term, scores, weights))
  assert got == pytest.approx(-1.0 - 7.0)


def test_adversarial_loss_log_kind():
  image = np.array([0.5, -1.0], np.float32)
  fc1 = np.array([2.0], np.float32)
  scores = {"image": tf.constant(image), "fc1": tf.constant(fc1)}
  weights = {"image": 2.0, "fc1": tf.constant(0.25, tf.float64)}
  expected = (2.0 * np.mean(-np.log(_np_sigmoid(image))) +
              0.25 * np.mean(-np.log(_np_sigmoid(fc1))))
  got = float(losses.adversarial_loss(losses.log_generator_term, scores, weights))
  assert got == pytest.approx(expected, rel=1e-5)


def test_adversarial_loss_without_critics_is_zero():
  assert float(losses.adversarial_loss(losses.wasserstein_generator_term, {}, {})) == 0.0


def test_generator_loss_combines_with_betas():
  got = losses.generator_loss(tf.constant(3.0), 5.0, tf.constant(-2.0, tf.float64),
                              beta_x=2.0, beta_h=0.1, beta_gan=1.0)
  assert got.dtype == tf.float32
  assert float(got) == pytest.approx(2.0 * 3.0 + 0.1 * 5.0 + 1.0 * -2.0, rel=1e-6)
  # The thesis text's betas (1, 0.1, 2) give a different value.
  got = losses.generator_loss(3.0, 5.0, -2.0, beta_x=1.0, beta_h=0.1, beta_gan=2.0)
  assert float(got) == pytest.approx(3.0 + 0.5 - 4.0, rel=1e-6)


def test_the_registry_is_the_one_choice_of_loss_form():
  assert list(losses.GAN_LOSSES) == [losses.WGAN_GP, losses.LOG]
  assert losses.gan_loss(losses.LOG) is losses.GAN_LOSSES[losses.LOG]
  with pytest.raises(ValueError, match="--gan_loss=hinge: choose from wgan_gp, log"):
    losses.gan_loss("hinge")


# --- Gradient penalty ------------------------------------------------------


def _linear_critic(w):
  w = tf.constant(w, tf.float32)
  return lambda u: tf.reduce_sum(w * u, axis=list(range(1, len(u.shape))))


def _half_square_critic(u):
  return 0.5 * tf.reduce_sum(tf.square(u), axis=list(range(1, len(u.shape))))


@pytest.mark.parametrize("epsilon", [
    [0.0, 0.0, 0.0],
    [1.0, 1.0, 1.0],
    [0.1, 0.5, 0.9],
])
def test_gradient_penalty_of_linear_critic_is_independent_of_epsilon(epsilon):
  rng = np.random.default_rng(0)
  w = rng.normal(size=(4, 4, 1)).astype(np.float32)
  real = rng.normal(size=(3, 4, 4, 1)).astype(np.float32)
  fake = rng.normal(size=(3, 4, 4, 1)).astype(np.float32)
  expected = (np.linalg.norm(w) - 1.0) ** 2
  got = float(losses.gradient_penalty(_linear_critic(w), real, fake, tf.constant(epsilon)))
  assert got == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_zero_for_unit_norm_gradient():
  w = np.zeros((4, 4, 1), np.float32)
  w[0, 0, 0], w[2, 3, 0] = 0.6, 0.8  # ||w|| = 1.
  real = np.ones((2, 4, 4, 1), np.float32)
  got = float(losses.gradient_penalty(_linear_critic(w), real, -real, [0.3, 0.7]))
  assert got == pytest.approx(0.0, abs=1e-10)


def _expected_half_square_penalty(real, fake, eps):
  shape = [-1] + [1] * (real.ndim - 1)
  u = eps.reshape(shape) * real + (1.0 - eps.reshape(shape)) * fake
  norms = np.linalg.norm(u.reshape(len(u), -1), axis=1)
  return np.mean((norms - 1.0) ** 2), u


@pytest.mark.parametrize("shape", [(3, 4, 4, 1), (3, 2, 3)])
def test_gradient_penalty_of_half_square_critic(shape):
  rng = np.random.default_rng(1)
  real = rng.normal(size=shape).astype(np.float32)
  fake = rng.normal(size=shape).astype(np.float32)
  eps = np.array([0.0, 0.25, 1.0], np.float32)
  expected, u = _expected_half_square_penalty(real.astype(np.float64), fake.astype(np.float64),
                                              eps.astype(np.float64))
  got = float(losses.gradient_penalty(_half_square_critic, real, fake, eps))
  assert got == pytest.approx(expected, rel=1e-5)
  # The norm is over each example's whole input: a norm per row (last axis)
  # or over the whole batch gives a different value.
  per_row = np.mean((np.linalg.norm(u, axis=-1) - 1.0) ** 2)
  whole_batch = (np.linalg.norm(u) - 1.0) ** 2
  assert abs(got - per_row) > 1e-2
  assert abs(got - whole_batch) > 1e-2


def test_gradient_penalty_hand_computed_example():
  # Per example [B=2, 2, 2]; gradient of 0.5 * sum(u^2) is u.
  real = np.array([[[3.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]], np.float32)
  fake = np.zeros_like(real)
  eps = [1.0, 0.5]
  # Example 0: u = real, ||u|| = 5 -> 16. Example 1: u = 0.5, ||u|| = 1 -> 0.
  got = float(losses.gradient_penalty(_half_square_critic, real, fake, tf.constant(eps)))
  assert got == pytest.approx(8.0, rel=1e-6)


def test_gradient_penalty_accepts_column_epsilon_and_is_differentiable():
  w = tf.Variable(tf.fill([2, 3], 2.0))
  critic = lambda u: tf.reduce_sum(w * u, axis=[1, 2])
  real = tf.ones([2, 2, 3])
  with tf.GradientTape() as tape:
    gp = losses.gradient_penalty(critic, real, tf.zeros([2, 2, 3]), tf.constant([[0.2], [0.8]]))
  # ||w|| = sqrt(6 * 4); d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||.
  norm = np.sqrt(24.0)
  assert float(gp) == pytest.approx((norm - 1.0) ** 2, rel=1e-6)
  grad = tape.gradient(gp, w)
  np.testing.assert_allclose(grad.numpy(), np.full([2, 3], 2.0 * (norm - 1.0) * 2.0 / norm),
                             rtol=1e-5)
