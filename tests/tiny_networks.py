"""Networks for tests of counting and plumbing, not of quality (test helpers, not library code)."""

from __future__ import annotations

import keras

from ppgn_tf.model import encoder as encoder_lib

TINY_CONV_WIDTHS = (2, 2, 2)


def tiny_encoder() -> keras.Model:
  """E's layer names, shapes and code size with 2 channels per convolution, frozen."""
  encoder = encoder_lib.build_encoder(conv_widths=TINY_CONV_WIDTHS)
  encoder.trainable = False
  return encoder
