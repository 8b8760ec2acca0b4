"""Critics: the image critic D and latent critics on any layer of the encoder.

A latent critic tells real codes E^j(x) from reconstructed codes E^j(G(h)).
Each critic outputs one unbounded score per example (WGAN form; the log form
applies a sigmoid in the loss, never in the network).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from ppgn_tf.data.idx_format import IMAGE_SHAPE

IMAGE = "image"  # The name under which the image critic D is listed.


@tf.custom_gradient
def relu(x):
  """ReLU whose derivative treats the mask y > 0 as a constant (it is, almost everywhere).

  The same values and gradients as ReLU. Why: the gradient penalty differentiates
  the critic's input gradient, and TensorFlow's second derivative of ReLU is a
  tensor of zeros that it then back-propagates through the whole forward pass
  (one weight and one input gradient of zeros per layer). Here that path has no
  gradient at all, so it is pruned: about a fifth of a critic update. The mask is
  read from the output y, not x, so that x (the BiasAdd) feeds the ReLU alone and
  oneDNN fuses convolution, bias and ReLU into one op; ReluGrad applies it in one pass.
  """
  y = tf.nn.relu(x)

  def grad(dy):
    return tf.raw_ops.ReluGrad(gradients=dy, features=tf.stop_gradient(y))
  return y, grad


def _max_pool_backward(x, y, dy):
  return tf.raw_ops.MaxPoolGrad(orig_input=x, orig_output=y, grad=dy, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1],
                                padding="VALID")


@tf.custom_gradient
def max_pool_2x2(x):
  """2x2 max pooling (stride 2, 'valid') whose derivative treats the argmax positions as constants.

  The same values and gradients as tf.nn.max_pool2d. Why: TensorFlow's second derivative of max pooling
  hands a tensor of zeros to the pooled input, and the gradient penalty's pass to the weights then runs a
  whole backward pass of zeros (weight and input gradients of every conv layer before the pool) through
  the critic's forward pass on the interpolates. Here that path has no gradient at all, so it is pruned.
  """
  y = tf.nn.max_pool2d(x, 2, 2, "VALID")

  def grad(dy):
    return _max_pool_backward(tf.stop_gradient(x), tf.stop_gradient(y), dy)
  return y, grad


class MaxPool2x2(keras.layers.Layer):
  """keras.layers.MaxPooling2D(2) with `max_pool_2x2`'s derivative (no weights: checkpoints are unchanged)."""

  def call(self, x):
    return max_pool_2x2(x)

  def compute_output_shape(self, input_shape):
    batch, height, width, channels = input_shape
    return batch, height // 2, width // 2, channels


def _conv_critic(inputs, x, plan, name: str) -> keras.Model:
  """conv/pool stack from `plan` ((filters, kernel) or 'pool'), then disc_fc1 -> 1."""
  conv = 0
  for step in plan:
    if step == "pool":
      x = MaxPool2x2(name=f"pool{conv}")(x)
    else:
      conv += 1
      filters, kernel = step
      x = keras.layers.Conv2D(filters, kernel, activation=relu, name=f"conv{conv}")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  score = keras.layers.Dense(1, name="disc_fc1", dtype="float32")(x)
  score = keras.layers.Reshape((), name="score")(score)
  return keras.Model(inputs, score, name=name)


def build_image_critic(dim: int = 64, name: str = "critic_image") -> keras.Model:
  """D: conv1(4d,3) conv2(4d,3) pool conv3(4d,3) pool conv4(8d,3) pool disc_fc1.

  28 -> 26 -> 24 -> 12 -> 10 -> 5 -> 3 -> 1.
  """
  images = keras.Input(IMAGE_SHAPE, name="images")
  plan = [(4 * dim, 3), (4 * dim, 3), "pool", (4 * dim, 3), "pool", (8 * dim, 3), "pool"]
  return _conv_critic(images, images, plan, name)


def build_latent_critic(code_shape: tuple[int, ...], dim: int = 64, name: str = "critic") -> keras.Model:
  """A critic suited to one encoder layer's output shape.

  - A vector whose length is a square s*s with s >= 4 (fc1: 64 -> 8x8x1) is
    reshaped to s x s x 1 and goes through the thesis' D_fc1 stack:
    conv1(4d,2) conv2(4d,2) pool conv3(8d,2) pool disc_fc1 (8 -> 7 -> 6 -> 3 -> 2 -> 1).
  - A feature map of side >= 6 (conv1, conv2) gets 3x3 conv + pool blocks
    until its side is at most 5, widths 4d then 8d.
  - Anything smaller (conv3: 2x2x256, fc2: 10) gets an MLP of widths 4d, 8d.
  """
  codes = keras.Input(code_shape, name="codes")
  if len(code_shape) == 1:
    side = math.isqrt(code_shape[0])
    if side * side == code_shape[0] and side >= 4:
      x = keras.layers.Reshape((side, side, 1), name="to_square")(codes)
      plan = [(4 * dim, 2), (4 * dim, 2), "pool", (8 * dim, 2), "pool"]
      return _conv_critic(codes, x, _fit_plan(plan, side), name)
  elif len(code_shape) == 3 and min(code_shape[:2]) >= 6:
    plan, side, width = [], min(code_shape[:2]), 4 * dim
    while side > 5:
      plan += [(width, 3), "pool"]
      side = (side - 2) // 2
      width = 8 * dim
    return _conv_critic(codes, codes, plan, name)
  x = keras.layers.Flatten(name="flatten")(codes)
  x = keras.layers.Dense(4 * dim, activation=relu, name="fc1")(x)
  x = keras.layers.Dense(8 * dim, activation=relu, name="fc2")(x)
  score = keras.layers.Dense(1, name="disc_fc1", dtype="float32")(x)
  score = keras.layers.Reshape((), name="score")(score)
  return keras.Model(codes, score, name=name)


def _fit_plan(plan, side: int):
  """Drops trailing steps a small input cannot take ('valid' convs, 2x2 pools)."""
  kept = []
  for step in plan:
    new_side = side // 2 if step == "pool" else side - step[1] + 1
    if new_side < 1:
      break
    kept.append(step)
    side = new_side
  return kept


def build_critics(names, layer_shapes: dict[str, tuple[int, ...]], dim: int) -> dict[str, keras.Model]:
  """Critics by name, in the given order: 'image' is D, others are encoder layers."""
  critics = {}
  for n in names:
    if n == IMAGE:
      critics[n] = build_image_critic(dim)
    else:
      critics[n] = build_latent_critic(layer_shapes[n], dim, name=f"critic_{n}")
  return critics
