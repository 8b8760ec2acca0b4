"""Losses as small pure functions of tensors (TF-GAN style); the trainer composes them.

All are means over the examples of the batch they see. Under a distribution
strategy the trainer divides each replica's value by the replica count so that
summed gradients equal those of the mean over the global batch.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import tensorflow as tf

WGAN_GP = "wgan_gp"  # Wasserstein critic and generator terms (the thesis' experiments).
LOG = "log"  # -log D(x) - log(1 - D(G(h))) for the critic, non-saturating -log D(G(h)) for G (Eqs. 4, 9, 11).


def _f32(x) -> tf.Tensor:
  return tf.cast(x, tf.float32)


def image_reconstruction_loss(fake_images, real_images) -> tf.Tensor:
  """L_x = ||G(h) - x||^2 as a mean over elements."""
  return tf.reduce_mean(tf.square(_f32(fake_images) - _f32(real_images)))


def feature_reconstruction_loss(fake_features: Mapping[str, tf.Tensor],
                                real_features: Mapping[str, tf.Tensor],
                                weights: Mapping[str, float]) -> tf.Tensor:
  """L_h = sum_j alpha_j ||E^j(G(h)) - E^j(x)||^2, each a mean over elements (Eq. 10)."""
  total = tf.constant(0.0)
  for layer, alpha in weights.items():
    total += alpha * tf.reduce_mean(tf.square(_f32(fake_features[layer]) - _f32(real_features[layer])))
  return total


def wasserstein_estimate(real_scores, fake_scores) -> tf.Tensor:
  """mean D(real) - mean D(fake): the critic's estimate of the Wasserstein distance (Eq. 2)."""
  return tf.reduce_mean(_f32(real_scores)) - tf.reduce_mean(_f32(fake_scores))


def wasserstein_critic_loss(real_scores, fake_scores) -> tf.Tensor:
  """mean D(fake) - mean D(real)."""
  return -wasserstein_estimate(real_scores, fake_scores)


def log_critic_loss(real_scores, fake_scores) -> tf.Tensor:
  """-log D(real) - log(1 - D(fake)) with D = sigmoid(score) (Eqs. 4, 11)."""
  return (tf.reduce_mean(tf.nn.softplus(-_f32(real_scores))) +
          tf.reduce_mean(tf.nn.softplus(_f32(fake_scores))))


def gradient_penalty(critic: Callable[[tf.Tensor], tf.Tensor], real, fake, mix) -> tf.Tensor:
  """E[(||grad_u D(u)||_2 - 1)^2] at u = mix * real + (1 - mix) * fake.

  `mix` holds one U[0, 1] draw per example (WGAN-GP's interpolation weight, the "epsilon" of Gulrajani et
  al., not MALA's); the norm is over each example's whole input, whatever its shape.
  """
  real, fake = _f32(real), _f32(fake)
  mix = tf.reshape(_f32(mix), [-1] + [1] * (len(real.shape) - 1))
  interpolates = mix * real + (1.0 - mix) * fake
  with tf.GradientTape() as tape:
    tape.watch(interpolates)
    scores = _f32(critic(interpolates))
  grads = tape.gradient(scores, interpolates)
  grads = tf.reshape(grads, [tf.shape(grads)[0], -1])
  # The small constant keeps the gradient of the norm finite at zero.
  norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=1) + 1e-12)
  return tf.reduce_mean(tf.square(norms - 1.0))


def wasserstein_generator_term(fake_scores) -> tf.Tensor:
  """One critic's term in the Wasserstein L_gan: -mean D(fake)."""
  return -tf.reduce_mean(_f32(fake_scores))


def log_generator_term(fake_scores) -> tf.Tensor:
  """One critic's term in the log-loss L_gan, non-saturating: -log D(fake) with D = sigmoid(score)."""
  return tf.reduce_mean(tf.nn.softplus(-_f32(fake_scores)))


@dataclasses.dataclass(frozen=True)
class GanLoss:
  """One form of the adversarial game, as PPGN.compile takes it: the critic's loss (before any gradient
  penalty) of (real scores, fake scores), and one critic's term in L_gan of its fake scores."""
  name: str
  critic_loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
  generator_term: Callable[[tf.Tensor], tf.Tensor]


# --gan_loss's choices: the one registry of loss forms.
GAN_LOSSES = {form.name: form for form in (
    GanLoss(WGAN_GP, wasserstein_critic_loss, wasserstein_generator_term),
    GanLoss(LOG, log_critic_loss, log_generator_term),
)}


def gan_loss(name: str) -> GanLoss:
  """The GanLoss called `name`; raises ValueError (one line naming --gan_loss) for another name."""
  if name not in GAN_LOSSES:
    raise ValueError(f"--gan_loss={name}: choose from {', '.join(GAN_LOSSES)}")
  return GAN_LOSSES[name]


def adversarial_loss(generator_term: Callable[[tf.Tensor], tf.Tensor],
                     fake_scores: Mapping[str, tf.Tensor],
                     weights: Mapping[str, float | tf.Tensor]) -> tf.Tensor:
  """L_gan = sum_k lambda_k * term_k (Eq. 9), term_k = generator_term(fake scores of critic k) (a GanLoss's);
  a weight may be a tensor (0 masks a critic)."""
  total = tf.constant(0.0)
  for name, scores in fake_scores.items():
    total += _f32(weights[name]) * generator_term(scores)
  return total


def generator_loss(l_x, l_h, l_gan, beta_x: float, beta_h: float, beta_gan: float) -> tf.Tensor:
  """L_G = beta_x L_x + beta_h L_h + beta_gan L_gan (Eq. 3)."""
  return beta_x * _f32(l_x) + beta_h * _f32(l_h) + beta_gan * _f32(l_gan)
