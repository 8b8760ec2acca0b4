"""Useful floating-point operations of training and sampling, counted from the layer shapes.

Why analytic: a profiler counts what the kernels happen to do (padding, zero
gradients, recomputation); the useful work is what the algorithm needs, and
dividing it by the measured time says how far an implementation is from the
machine's limit.

Forward FLOPs of one example, F(net) = sum over layers of 2 * multiply-adds:

  Conv2D           2 * H_out * W_out * k_h * k_w * C_in * C_out
  Conv2DTranspose  2 * H_in  * W_in  * k_h * k_w * C_in * C_out   (each input pixel scatters a k x k x C_out patch)
  Dense            2 * N_in * N_out

Biases, activations, pooling, reshapes and the optimizer update are left out
(all are O(activations) or O(weights), well under 1% here).

Backward passes, in units of F (per network, per example):
  TRAIN      = 3   forward + gradients for weights and inputs (2F)
  INPUT_GRAD = 2   forward + gradient for inputs only (1F): E and the critics seen by G, G and E in the sampler
  GP         = 4   WGAN-GP on the interpolates: forward (1F), input gradient (1F), and the
                   backward of that input gradient to the weights (2F: weight gradient and
                   propagation, the second-order term through ReLU masks being zero)

Critic iteration (per example):  F_G [+ F_E if any latent critic] + sum_k (2 * TRAIN + GP) F_k
G step (per example):            TRAIN F_G + INPUT_GRAD F_E + sum_k INPUT_GRAD F_k   (critic terms if beta_gan > 0)
G iteration:                     n critic iterations + one G step - (F_G [+ F_E]): the G step
                                 reuses the forward pass G(E(x)) [and E(G(E(x)))] of the round's last batch.
MALA sampler, per chain:          (2 * steps + 1) * (F_G + F_E): each step a forward and an input
                                 gradient through G and E, then one last forward for the output.

The first layer's input gradient is counted in TRAIN although nothing needs it; for these
networks that layer has one input channel or is a small dense layer (< 0.1% of F).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import keras

from ppgn_tf.model.critics import IMAGE

TRAIN = 3
INPUT_GRAD = 2
GP = 4


def _spatial(shape) -> tuple[int, int]:
  return int(shape[1]), int(shape[2])


def layer_forward_flops(layer: keras.layers.Layer) -> int:
  """2 * multiply-adds of one example through `layer` (0 for layers without any)."""
  if isinstance(layer, keras.Model):
    return forward_flops(layer)
  if isinstance(layer, keras.layers.Conv2DTranspose):
    h_in, w_in = _spatial(layer.input.shape)
    k_h, k_w, c_out, c_in = (int(d) for d in layer.kernel.shape)
    return 2 * h_in * w_in * k_h * k_w * c_in * c_out
  if isinstance(layer, keras.layers.Conv2D):
    h_out, w_out = _spatial(layer.output.shape)
    k_h, k_w, c_in_per_group, c_out = (int(d) for d in layer.kernel.shape)
    return 2 * h_out * w_out * k_h * k_w * c_in_per_group * c_out
  if isinstance(layer, keras.layers.Dense):
    n_in, n_out = (int(d) for d in layer.kernel.shape)
    # A Dense on a rank > 2 input applies to every leading position.
    positions = math.prod(int(d) for d in layer.input.shape[1:-1])
    return 2 * n_in * n_out * positions
  return 0


def forward_flops(model: keras.Model) -> int:
  """F(model): forward FLOPs of one example (nested models included)."""
  return sum(layer_forward_flops(layer) for layer in model.layers)


def layer_table(model: keras.Model) -> list[tuple[str, int]]:
  """(layer name, forward FLOPs per example) of every layer that has any."""
  return [(l.name, layer_forward_flops(l)) for l in model.layers if layer_forward_flops(l)]


@dataclasses.dataclass(frozen=True)
class NetworkFlops:
  """Forward FLOPs per example of G, E and each critic."""
  generator: int
  encoder: int
  critics: Mapping[str, int]

  @classmethod
  def of(cls, generator: keras.Model, encoder: keras.Model,
         critics: Mapping[str, keras.Model]) -> "NetworkFlops":
    return cls(forward_flops(generator), forward_flops(encoder),
               {n: forward_flops(c) for n, c in critics.items()})


def _has_latent(critics: Mapping[str, int]) -> bool:
  return any(n != IMAGE for n in critics)


def critic_iteration(net: NetworkFlops, batch: int, gradient_penalty: bool = True,
                     shares: Mapping[str, float] | None = None) -> float:
  """One critic iteration on `batch` examples.

  `shares`: the expected fraction of iterations in which each critic is trained
  (random selection trains one per iteration); by default every critic, every time.
  """
  shares = shares or {}
  per_example = net.generator + (net.encoder if _has_latent(net.critics) else 0)
  per_example += sum(shares.get(n, 1.0) * (2 * TRAIN + (GP if gradient_penalty else 0)) * f
                     for n, f in net.critics.items())
  return batch * per_example


def generator_step(net: NetworkFlops, batch: int, adversarial: bool = True) -> int:
  """One G step: L_x, L_h through E and L_gan through every critic."""
  per_example = TRAIN * net.generator + INPUT_GRAD * net.encoder
  if adversarial:
    per_example += sum(INPUT_GRAD * f for f in net.critics.values())
  return batch * per_example


def generator_iteration(net: NetworkFlops, batch: int, critic_iterations: int = 5,
                        gradient_penalty: bool = True, adversarial: bool = True,
                        shares: Mapping[str, float] | None = None) -> float:
  """A steady-state round: `critic_iterations` critic iterations and one G step sharing G(E(x))."""
  shared = net.generator + (net.encoder if _has_latent(net.critics) else 0)
  return (critic_iterations * critic_iteration(net, batch, gradient_penalty, shares)
          + generator_step(net, batch, adversarial) - batch * shared)


def sampler_per_chain(net: NetworkFlops, steps: int) -> int:
  """One MALA chain of `steps` steps (Eq. 8), including the final forward pass."""
  return (2 * steps + 1) * (net.generator + net.encoder)
