"""Networks for tests of counting and plumbing, not of quality (test helpers, not library code)."""

from __future__ import annotations

import keras
import numpy as np

from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES
from ppgn_tf.model import encoder as encoder_lib

TINY_CONV_WIDTHS = (2, 2, 2)


def tiny_encoder() -> keras.Model:
  """E's layer names, shapes and code size with 2 channels per convolution, frozen."""
  encoder = encoder_lib.build_encoder(conv_widths=TINY_CONV_WIDTHS)
  encoder.trainable = False
  return encoder


def linear_generator(kernel) -> keras.Model:
  """G(h) = h A reshaped to an image: a Dense layer without bias whose kernel is A [code, 784] (cast to float32)."""
  codes = keras.Input((kernel.shape[0],))
  dense = keras.layers.Dense(int(np.prod(IMAGE_SHAPE)), use_bias=False)
  generator = keras.Model(codes, keras.layers.Reshape(IMAGE_SHAPE)(dense(codes)))
  dense.set_weights([np.asarray(kernel, np.float32)])
  return generator


def linear_encoder(fc1_kernel, fc1_bias, fc2_kernel=None, fc2_bias=None) -> keras.Model:
  """E with fc1 = x B + b1 on the flattened image and fc2 = fc1 C + b2 (C, b2 left at Keras' initialisation when
  not given): the outputs the sampler reads, with weights a test computes by hand."""
  images = keras.Input(IMAGE_SHAPE)
  fc1_layer, fc2_layer = keras.layers.Dense(fc1_kernel.shape[1]), keras.layers.Dense(NUM_CLASSES)
  fc1 = fc1_layer(keras.layers.Flatten()(images))
  encoder = keras.Model(images, {"fc1": fc1, "fc2": fc2_layer(fc1)})
  fc1_layer.set_weights([np.asarray(fc1_kernel, np.float32), np.asarray(fc1_bias, np.float32)])
  if fc2_kernel is not None:
    fc2_layer.set_weights([np.asarray(fc2_kernel, np.float32), np.asarray(fc2_bias, np.float32)])
  return encoder


def made_up_code_prior(code_shape, count: int = 400, seed: int = 0):
  """ReLU-like made-up codes of `code_shape` with classes 0-9 in equal numbers: the statistics an export's
  in-painting starts read (a CodePrior), for networks that have no real codes."""
  from ppgn_tf.sampling.mala_sampler import CodePrior
  rng = np.random.default_rng(seed)
  codes = rng.uniform(size=(count, *code_shape)) * (rng.uniform(size=(count, *code_shape)) > 0.5)
  return CodePrior(codes.astype(np.float32), (np.arange(count) % NUM_CLASSES).astype(np.int32))
