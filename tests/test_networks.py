"""Tests for the encoder E, generator G and critics: layer names, shapes, activations."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ppgn_tf.model import critics
from ppgn_tf.model import encoder
from ppgn_tf.model import generator

DIM = 4


def _out_shape(model, layer):
  return tuple(model.get_layer(layer).output.shape)


def _images(n, seed=0):
  return np.random.default_rng(seed).normal(size=(n, 28, 28, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def enc():
  keras.utils.set_random_seed(0)
  return encoder.build_encoder()


@pytest.fixture(scope="module")
def gen():
  keras.utils.set_random_seed(1)
  return generator.build_generator((64,), dim=DIM)


# --- Encoder ---------------------------------------------------------------


def test_encoder_outputs_every_layer_by_name(enc):
  out = enc(_images(3))
  assert list(out) == ["conv1", "conv2", "conv3", "fc1", "fc2"]
  assert sorted(out) == sorted(encoder.LAYER_NAMES)
  shapes = {k: tuple(v.shape) for k, v in out.items()}
  assert shapes == {
      "conv1": (3, 22, 22, 64),
      "conv2": (3, 16, 16, 128),
      "conv3": (3, 2, 2, 256),
      "fc1": (3, 64),
      "fc2": (3, 10),
  }


def test_encoder_layer_shapes(enc):
  assert encoder.layer_shapes(enc) == {
      "conv1": (22, 22, 64),
      "conv2": (16, 16, 128),
      "conv3": (2, 2, 256),
      "fc1": (64,),
      "fc2": (10,),
  }
  assert _out_shape(enc, "pool2") == (None, 8, 8, 128)
  assert _out_shape(enc, "pool3") == (None, 1, 1, 256)


def test_encoder_activations(enc):
  out = {k: np.asarray(v) for k, v in enc(_images(8, seed=2)).items()}
  for name in ("conv1", "conv2", "conv3", "fc1"):
    assert out[name].min() >= 0.0, name  # Taken after ReLU.
    assert out[name].max() > 0.0, name
  # fc2 holds logits: not passed through ReLU or softmax.
  assert out["fc2"].min() < 0.0
  assert not np.allclose(out["fc2"].sum(axis=1), 1.0)
  assert enc.get_layer("fc2").activation is keras.activations.linear
  assert enc.get_layer("fc1").activation is keras.activations.relu


def test_check_layer_names():
  encoder.check_layer_names(["conv1", "fc1", "fc2"], "latent_critics")  # No error.
  with pytest.raises(ValueError) as info:
    encoder.check_layer_names(["fc1", "fc3"], "latent_critics")
  assert "--latent_critics" in str(info.value)
  assert "fc3" in str(info.value)


# --- Generator -------------------------------------------------------------


def test_generator_maps_codes_to_images(gen):
  codes = np.abs(np.random.default_rng(3).normal(size=(3, 64))).astype(np.float32)
  images = np.asarray(gen(codes))
  assert images.shape == (3, 28, 28, 1)
  assert np.isfinite(images).all()
  # No output activation: normalised pixels take both signs.
  assert images.min() < 0.0 < images.max()


def test_generator_layer_trace(gen):
  assert _out_shape(gen, "gen_fc1") == (None, 5 * 5 * DIM)
  assert _out_shape(gen, "reshape") == (None, 5, 5, DIM)
  assert _out_shape(gen, "deconv2") == (None, 9, 9, 8 * DIM)
  assert _out_shape(gen, "deconv3") == (None, 13, 13, 4 * DIM)
  assert _out_shape(gen, "deconv4") == (None, 19, 19, 4 * DIM)
  assert _out_shape(gen, "deconv5") == (None, 28, 28, 1)
  for name in ("gen_fc1", "deconv2", "deconv3", "deconv4"):
    assert gen.get_layer(name).activation is keras.activations.relu, name
  assert gen.get_layer("deconv5").activation is keras.activations.linear
  for name in ("deconv2", "deconv3", "deconv4", "deconv5"):
    layer = gen.get_layer(name)
    assert layer.strides == (1, 1) and layer.padding == "valid", name
  assert [gen.get_layer(n).kernel_size for n in ("deconv2", "deconv3", "deconv4", "deconv5")] == \
      [(5, 5), (5, 5), (7, 7), (10, 10)]


@pytest.mark.parametrize("c_in, c_out, k, side", [(128, 1, 10, 19), (160, 3, 3, 5)])
def test_transposed_conv_with_few_output_channels_is_keras_by_matmul(c_in, c_out, k, side):
  """G's last layer (256 -> 1 channel at paper scale) runs as a matrix product: the values and the gradients
  of keras.layers.Conv2DTranspose with the same weights, up to float summation order."""
  import tensorflow as tf
  keras.utils.set_random_seed(9)
  x = tf.constant(np.random.default_rng(10).normal(size=(2, side, side, c_in)).astype(np.float32))
  ours = generator.Conv2DTranspose(c_out, k, activation="relu")
  plain = keras.layers.Conv2DTranspose(c_out, k, activation="relu")
  ours.build(x.shape), plain.build(x.shape)
  ours.set_weights([w + 0.01 for w in plain.get_weights()])  # A non-zero bias.
  plain.set_weights(ours.get_weights())
  assert ours._by_matmul() and ours(x).shape == (2, side + k - 1, side + k - 1, c_out)
  upstream = tf.constant(np.random.default_rng(11).normal(size=(2, side + k - 1, side + k - 1, c_out)), tf.float32)
  grads = []
  for layer in (ours, plain):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x)
      loss = tf.reduce_sum(y * upstream)
    grads.append((y, *tape.gradient(loss, [x, *layer.trainable_variables])))
  assert float(tf.reduce_max(grads[1][0])) > 0 and float(tf.reduce_min(grads[1][0])) == 0  # ReLU acted.
  for a, b in zip(*grads):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4 * float(tf.reduce_max(tf.abs(b))))


def test_transposed_conv_keeps_keras_kernels_where_they_are_fast(gen):
  """Many output channels, or few input channels (the test widths), stay Keras' own op."""
  assert not any(gen.get_layer(n)._by_matmul() for n in ("deconv2", "deconv3", "deconv4", "deconv5"))
  paper = generator.build_generator((64,), dim=64)
  assert [paper.get_layer(n)._by_matmul() for n in ("deconv2", "deconv3", "deconv4", "deconv5")] == \
      [False, False, False, True]


LOAD_G_ALONE = r"""
import json, sys
import numpy as np
import tensorflow as tf
assert "ppgn_tf" not in sys.modules
module = tf.saved_model.load(sys.argv[1])
out = module.step(tf.constant(np.load(sys.argv[2])))
print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
"""


def test_saved_model_with_matmul_transposed_conv_runs_without_the_package(tmp_path):
  """The exported sampler differentiates G: a SavedModel holding the matmul layer and its gradient loads and
  gives the same images and code gradient in a process that never imports ppgn_tf."""
  import json
  import subprocess
  import sys
  import tensorflow as tf
  keras.utils.set_random_seed(12)
  g = generator.build_generator((64,), dim=32)  # deconv5: 128 -> 1 channel, by matmul.
  assert g.get_layer("deconv5")._by_matmul()

  def step(codes):
    with tf.GradientTape() as tape:
      tape.watch(codes)
      images = g(codes)
      score = tf.reduce_sum(tf.square(images))
    return {"images": images, "code_gradient": tape.gradient(score, codes)}

  module = tf.Module()
  module.g, module.step = g, tf.function(step, input_signature=[tf.TensorSpec([None, 64], tf.float32)])
  codes = np.abs(np.random.default_rng(13).normal(size=(2, 64))).astype(np.float32)
  here = {k: v.numpy() for k, v in module.step(tf.constant(codes)).items()}
  tf.saved_model.save(module, str(tmp_path / "g"))
  np.save(tmp_path / "codes.npy", codes)
  (tmp_path / "load.py").write_text(LOAD_G_ALONE)
  out = subprocess.run([sys.executable, "-I", str(tmp_path / "load.py"), str(tmp_path / "g"), str(tmp_path / "codes.npy")],
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert out.returncode == 0, out.stderr[-3000:]
  there = json.loads(out.stdout.strip().splitlines()[-1])
  assert float(np.abs(here["code_gradient"]).max()) > 0
  for k in here:
    np.testing.assert_allclose(np.array(there[k]), here[k], rtol=1e-5, atol=1e-5, err_msg=k)


def test_generator_flattens_spatial_codes():
  g = generator.build_generator((2, 2, 256), dim=2)
  assert np.asarray(g(np.ones((2, 2, 2, 256), np.float32))).shape == (2, 28, 28, 1)


# --- Critics ---------------------------------------------------------------


def test_image_critic_trace():
  keras.utils.set_random_seed(4)
  d = critics.build_image_critic(dim=DIM)
  scores = np.asarray(d(_images(3)))
  assert scores.shape == (3,)
  assert np.isfinite(scores).all()
  trace = [("conv1", 26, 4 * DIM), ("conv2", 24, 4 * DIM), ("pool2", 12, 4 * DIM),
           ("conv3", 10, 4 * DIM), ("pool3", 5, 4 * DIM), ("conv4", 3, 8 * DIM),
           ("pool4", 1, 8 * DIM)]
  for name, side, width in trace:
    assert _out_shape(d, name) == (None, side, side, width), name
  assert _out_shape(d, "disc_fc1") == (None, 1)
  assert d.get_layer("disc_fc1").activation is keras.activations.linear


def test_fc1_latent_critic_is_the_d_fc1_stack():
  d = critics.build_latent_critic((64,), dim=DIM, name="critic_fc1")
  assert d.name == "critic_fc1"
  assert _out_shape(d, "to_square") == (None, 8, 8, 1)
  trace = [("conv1", 7, 4 * DIM), ("conv2", 6, 4 * DIM), ("pool2", 3, 4 * DIM),
           ("conv3", 2, 8 * DIM), ("pool3", 1, 8 * DIM)]
  for name, side, width in trace:
    assert _out_shape(d, name) == (None, side, side, width), name
  assert [d.get_layer(n).kernel_size for n in ("conv1", "conv2", "conv3")] == [(2, 2)] * 3
  codes = np.abs(np.random.default_rng(5).normal(size=(4, 64))).astype(np.float32)
  scores = np.asarray(d(codes))
  assert scores.shape == (4,) and np.isfinite(scores).all()


@pytest.mark.parametrize("layer", ["conv1", "conv2", "conv3", "fc2"])
def test_latent_critic_for_each_encoder_layer(enc, layer):
  shape = encoder.layer_shapes(enc)[layer]
  d = critics.build_latent_critic(shape, dim=DIM, name=f"critic_{layer}")
  assert tuple(d.input.shape) == (None, *shape)
  codes = np.random.default_rng(6).normal(size=(2, *shape)).astype(np.float32)
  scores = np.asarray(d(codes))
  assert scores.shape == (2,)
  assert np.isfinite(scores).all()
  # Different codes get different scores (the output depends on the input).
  assert scores[0] != scores[1]


def test_latent_critic_conv_blocks_shrink_feature_maps():
  d = critics.build_latent_critic((22, 22, 64), dim=DIM)
  assert _out_shape(d, "pool1") == (None, 10, 10, 4 * DIM)
  assert _out_shape(d, "pool2") == (None, 4, 4, 8 * DIM)
  d = critics.build_latent_critic((16, 16, 128), dim=DIM)
  assert _out_shape(d, "pool1") == (None, 7, 7, 4 * DIM)
  assert _out_shape(d, "pool2") == (None, 2, 2, 8 * DIM)


def test_latent_critic_small_codes_get_an_mlp():
  for shape in [(2, 2, 256), (10,)]:
    d = critics.build_latent_critic(shape, dim=DIM)
    assert _out_shape(d, "fc1") == (None, 4 * DIM)
    assert _out_shape(d, "fc2") == (None, 8 * DIM)
    assert _out_shape(d, "disc_fc1") == (None, 1)


def test_build_critics_in_given_order(enc):
  built = critics.build_critics(["image", "fc1", "conv3"], encoder.layer_shapes(enc), DIM)
  assert list(built) == ["image", "fc1", "conv3"]
  assert tuple(built["image"].input.shape) == (None, 28, 28, 1)
  assert tuple(built["fc1"].input.shape) == (None, 64)
  assert tuple(built["conv3"].input.shape) == (None, 2, 2, 256)
  assert built["fc1"].name == "critic_fc1" and built["conv3"].name == "critic_conv3"
  # Each critic has its own weights.
  assert len({id(v) for c in built.values() for v in c.trainable_variables}) == \
      sum(len(c.trainable_variables) for c in built.values())


def test_critic_relu_has_relu_values_and_derivatives_up_to_the_penalty():
  """critics.relu prunes only the all-zero second-derivative path: its values, the critic's weight gradients and
  the penalty's are TensorFlow's ReLU's, up to float summation order."""
  import tensorflow as tf
  from ppgn_tf.model import losses
  x = tf.constant(np.random.default_rng(4).normal(size=(3, 5, 5, 2)).astype(np.float32))
  np.testing.assert_array_equal(critics.relu(x).numpy(), tf.nn.relu(x).numpy())

  keras.utils.set_random_seed(6)
  critic = critics.build_image_critic(dim=DIM)
  with_relu = [l for l in critic.layers if getattr(l, "activation", None) is critics.relu]
  assert [l.name for l in with_relu] == ["conv1", "conv2", "conv3", "conv4"]
  real, fake = tf.constant(_images(3, seed=7)), tf.constant(_images(3, seed=8))
  epsilon = tf.constant([0.2, 0.5, 0.9])
  grads = {}
  for name, activation in (("pruned", critics.relu), ("plain", keras.activations.relu)):
    for layer in with_relu:
      layer.activation = activation
    with tf.GradientTape(persistent=True) as tape:
      loss = tf.reduce_mean(critic(fake)) - tf.reduce_mean(critic(real))
      penalty = losses.gradient_penalty(critic, real, fake, epsilon)
    grads[name] = tape.gradient(loss, critic.trainable_variables), tape.gradient(penalty, critic.trainable_variables)
  for layer in with_relu:
    layer.activation = critics.relu
  for a, b in zip(grads["pruned"][0], grads["plain"][0]):  # First order: the same.
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
  for a, b in zip(grads["pruned"][1], grads["plain"][1]):  # The penalty: biases reach it through masks only.
    if a is None:
      assert b is None or not np.any(b.numpy())
    else:
      assert float(tf.reduce_max(tf.abs(a))) > 0 or not np.any(b.numpy())
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_critic_pooling_has_max_pooling_values_and_derivatives_up_to_the_penalty():
  """MaxPool2x2 prunes only the all-zero second-derivative path: the penalty's weight gradients are
  TensorFlow's max pooling's, up to float summation order."""
  import tensorflow as tf
  from ppgn_tf.model import losses
  x = tf.constant(_images(2, seed=5))
  np.testing.assert_array_equal(critics.max_pool_2x2(x).numpy(), tf.nn.max_pool2d(x, 2, 2, "VALID").numpy())

  keras.utils.set_random_seed(6)
  pruned = critics.build_image_critic(dim=DIM)
  plain_layers = [keras.layers.MaxPooling2D(2) if isinstance(l, critics.MaxPool2x2) else l
                  for l in pruned.layers[1:-2]]

  def plain(u):  # The same weights with Keras' max pooling.
    for layer in plain_layers:
      u = layer(u)
    return tf.reshape(pruned.get_layer("disc_fc1")(u), [-1])

  real, fake = tf.constant(_images(3, seed=7)), tf.constant(_images(3, seed=8))
  epsilon = tf.constant([0.2, 0.5, 0.9])
  grads = {}
  for name, critic in (("pruned", pruned), ("plain", plain)):
    with tf.GradientTape() as tape:
      penalty = losses.gradient_penalty(critic, real, fake, epsilon)
    grads[name] = tape.gradient(penalty, pruned.trainable_variables)
  # Biases reach the penalty only through ReLU masks and argmax positions: Keras' pooling computes their
  # gradient as zeros (the pruned path), MaxPool2x2 leaves it out.
  for a, b in zip(grads["pruned"], grads["plain"]):
    if a is None:
      assert b is None or not np.any(b.numpy())
  kernels = [(a, b) for a, b in zip(grads["pruned"], grads["plain"]) if a is not None]
  assert len(kernels) == 5 and all(float(tf.reduce_max(tf.abs(a))) > 0 for a, _ in kernels)
  for a, b in kernels:
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
