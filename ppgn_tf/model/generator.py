"""The generator G: code h -> image in the normalised pixel space."""

from __future__ import annotations

import keras
import tensorflow as tf

# A transposed convolution with at most this many output channels, from at least this many input channels,
# runs as a matrix product and a sum of shifted windows (see `Conv2DTranspose`).
FEW_OUTPUT_CHANNELS = 4
MANY_INPUT_CHANNELS = 128


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
  x = Conv2DTranspose(8 * dim, 5, activation="relu", name="deconv2")(x)
  x = Conv2DTranspose(4 * dim, 5, activation="relu", name="deconv3")(x)
  x = Conv2DTranspose(4 * dim, 7, activation="relu", name="deconv4")(x)
  images = Conv2DTranspose(1, 10, name="deconv5", dtype="float32")(x)
  return keras.Model(codes, images, name=name)


def transposed_conv_by_matmul(x, kernel):
  """conv2d_transpose(x, kernel), stride 1, 'valid', as one matrix product and a sum of shifted windows.

  Each input pixel's contribution to its k x k output window comes from one (pixels, C_in) x (C_in, k*k*C_out)
  product; the windows are then summed into the output (col2im), rows first, then columns.
  kernel: [k_h, k_w, C_out, C_in], as Keras' Conv2DTranspose holds it.
  """
  k_h, k_w, c_out, c_in = kernel.shape
  shape = tf.shape(x)
  batch, height, width = shape[0], shape[1], shape[2]
  taps = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [c_in, k_h * k_w * c_out])
  windows = tf.reshape(tf.matmul(tf.reshape(x, [-1, c_in]), taps), [batch, height, width, k_h, k_w * c_out])
  rows = tf.add_n([tf.pad(windows[:, :, :, i], [[0, 0], [i, k_h - 1 - i], [0, 0], [0, 0]]) for i in range(k_h)])
  rows = tf.reshape(rows, [batch, height + k_h - 1, width, k_w, c_out])
  return tf.add_n([tf.pad(rows[:, :, :, j], [[0, 0], [0, 0], [j, k_w - 1 - j], [0, 0]]) for j in range(k_w)])


@tf.custom_gradient
def _transposed_conv_by_matmul(x, kernel):
  """`transposed_conv_by_matmul` with the gradients TensorFlow gives conv2d_transpose (two native ops)."""

  def grad(dy):
    dx = tf.nn.conv2d(dy, kernel, 1, "VALID")
    dkernel = tf.raw_ops.Conv2DBackpropFilter(input=dy, filter_sizes=tf.shape(kernel), out_backprop=x,
                                              strides=[1, 1, 1, 1], padding="VALID")
    return dx, dkernel
  return transposed_conv_by_matmul(x, kernel), grad


class Conv2DTranspose(keras.layers.Conv2DTranspose):
  """keras.layers.Conv2DTranspose (stride 1, 'valid') that computes few output channels as a matrix product.

  The same weights, values and gradients, up to float summation order. Why: G's last layer (4*dim -> 1
  channel, 10x10) as TensorFlow's oneDNN transposed convolution filled one lane of the CPU's vectors:
  at paper scale, batch 32, fp32, it took 39-45 ms against 7-10 ms as a product, and every G forward pass
  (six per G iteration, one per sampler step) runs it. Few input channels leave the product too little
  work to pay for the window sums, so those layers stay Keras' (see FEW_OUTPUT_CHANNELS).
  """

  def _by_matmul(self) -> bool:
    c_out, c_in = self.kernel.shape[2:]
    return (tuple(self.strides) == (1, 1) and self.padding == "valid" and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1) and self.output_padding is None
            and c_out <= FEW_OUTPUT_CHANNELS and c_in >= MANY_INPUT_CHANNELS)

  def call(self, inputs):
    if not self._by_matmul():
      return super().call(inputs)
    outputs = _transposed_conv_by_matmul(inputs, tf.convert_to_tensor(self.kernel))
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, tf.convert_to_tensor(self.bias))
    return self.activation(outputs) if self.activation is not None else outputs
