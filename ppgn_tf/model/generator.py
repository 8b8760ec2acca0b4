"""The generator G: code h -> image in the normalised pixel space."""

from __future__ import annotations

import keras


def build_generator(code_shape: tuple[int, ...], dim: int = 64, name: str = "generator") -> keras.Model:
  """G as in the spec, widths scaled by `dim` (64 in the thesis).

  gen-fc1(5*5*dim) -> reshape 5x5xdim -> deconv2(8*dim, 5) -> deconv3(4*dim, 5)
  -> deconv4(4*dim, 7) -> deconv5(1, 10); stride 1, 'valid', ReLU except the
  last (no output activation: G writes normalised pixels). 5 -> 9 -> 13 -> 19 -> 28.
  A code with spatial shape (another --code_layer) is flattened first.
  """
  codes = keras.Input(code_shape, name="codes")
  x = keras.layers.Flatten(name="flatten")(codes) if len(code_shape) > 1 else codes
  x = keras.layers.Dense(5 * 5 * dim, activation="relu", name="gen_fc1")(x)
  x = keras.layers.Reshape((5, 5, dim), name="reshape")(x)
  x = keras.layers.Conv2DTranspose(8 * dim, 5, activation="relu", name="deconv2")(x)
  x = keras.layers.Conv2DTranspose(4 * dim, 5, activation="relu", name="deconv3")(x)
  x = keras.layers.Conv2DTranspose(4 * dim, 7, activation="relu", name="deconv4")(x)
  images = keras.layers.Conv2DTranspose(1, 10, name="deconv5", dtype="float32")(x)
  return keras.Model(codes, images, name=name)
