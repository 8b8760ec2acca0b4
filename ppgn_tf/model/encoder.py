"""The encoder E (and classifier C = softmax(fc2)), its pre-training and storage.

E is a Keras functional model whose outputs are a dict holding every layer by
name, so critics and losses attach to any layer of E by name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import keras
import tensorflow as tf
from absl import logging

from ppgn_tf import files
from ppgn_tf import random_streams
from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES

# Layers of E in forward order; each is exposed as an output of the model.
LAYER_NAMES = ("conv1", "conv2", "conv3", "fc1", "fc2")
CONV_WIDTHS = (64, 128, 256)  # Channels of conv1, conv2, conv3 (the spec).
CODE_SIZE = 64  # fc1: the code h.
CODE_LAYER = "fc1"  # The layer whose output is the code h that G decodes (PPGNConfig.code_layer's default).

ENCODER_FILE = "encoder.keras"
METRICS_FILE = "metrics.json"


class EncoderError(ValueError):
  """A missing or unusable encoder directory."""


def build_encoder(name: str = "encoder", conv_widths: tuple[int, int, int] = CONV_WIDTHS) -> keras.Model:
  """E as in the spec: conv1(64,7) conv2(128,7) pool conv3(256,7) pool fc1(64) fc2(10).

  Stride 1, 'valid' padding, ReLU after every layer but fc2. Conv outputs are
  taken after ReLU and before pooling: 22x22x64, 16x16x128, 2x2x256; fc1 is the
  64-d code h; fc2 holds the class logits. Other `conv_widths` keep every layer
  and shape but the channels (narrow encoders run the benchmark's self-test).
  """
  images = keras.Input(IMAGE_SHAPE, name="images")
  conv1 = keras.layers.Conv2D(conv_widths[0], 7, activation="relu", name="conv1")(images)
  conv2 = keras.layers.Conv2D(conv_widths[1], 7, activation="relu", name="conv2")(conv1)
  x = keras.layers.MaxPooling2D(2, name="pool2")(conv2)
  conv3 = keras.layers.Conv2D(conv_widths[2], 7, activation="relu", name="conv3")(x)
  x = keras.layers.MaxPooling2D(2, name="pool3")(conv3)
  x = keras.layers.Flatten(name="flatten")(x)
  fc1 = keras.layers.Dense(CODE_SIZE, activation="relu", name="fc1")(x)
  # fc2 stays float32 under mixed precision: its softmax feeds losses and the sampler.
  fc2 = keras.layers.Dense(NUM_CLASSES, name="fc2", dtype="float32")(fc1)
  return keras.Model(images, dict(zip(LAYER_NAMES, (conv1, conv2, conv3, fc1, fc2))), name=name)


def layer_shapes(encoder: keras.Model) -> dict[str, tuple[int, ...]]:
  """Per-example output shape of every named layer of E."""
  return {name: tuple(t.shape[1:]) for name, t in encoder.output.items()}


def check_layer_names(names, flag: str) -> None:
  """Raises ValueError naming the flag when a name is not a layer of E."""
  for n in names:
    if n not in LAYER_NAMES:
      raise ValueError(
          f"--{flag}: '{n}' is not a layer of the encoder "
          f"(choose from {', '.join(LAYER_NAMES)})")


def _classifier(encoder: keras.Model) -> keras.Model:
  return keras.Model(encoder.input, encoder.output["fc2"], name="classifier")


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How E is pre-trained: SGD with momentum, batch 64, cross-entropy."""
  name: str
  learning_rate: float
  momentum: float
  cosine_decay: bool  # Learning rate decays to 0 over the run (cosine) instead of staying constant.


# The thesis' recipe (the PyTorch MNIST example's), tuned for 60,000 images: on
# a few thousand, 5 epochs are ~350 SGD steps and E underfits (~0.95 on the
# offline digits). The small-data recipe takes larger, decaying steps (~0.97).
RECIPES = {
    "thesis": Recipe("thesis", 0.01, 0.5, False),
    "small_data": Recipe("small_data", 0.05, 0.9, True),
}
SMALL_DATA_IMAGES = 20_000  # 'auto' uses the small-data recipe below this many training images.


def choose_recipe(name: str, num_train_images: int) -> Recipe:
  if name == "auto":
    name = "small_data" if num_train_images < SMALL_DATA_IMAGES else "thesis"
  if name not in RECIPES:
    raise ValueError(f"--encoder_recipe={name}: choose auto, {', '.join(RECIPES)}")
  return RECIPES[name]


def pretrain_encoder(train_ds: tf.data.Dataset,
                     test_ds: tf.data.Dataset,
                     *,
                     epochs: int = 5,
                     recipe: Recipe = RECIPES["thesis"],
                     seed: int = 0,
                     verbose: int = 2,
                     conv_widths: tuple[int, int, int] = CONV_WIDTHS) -> tuple[keras.Model, dict]:
  """Trains E for classification with SGD and cross-entropy.

  `train_ds` and `test_ds` yield (normalised images, labels) batches. Returns
  the trained encoder and a metrics dict (test accuracy, loss history, time).
  `conv_widths` other than the spec's give a narrow E (build_encoder).
  """
  random_streams.seed_keras(seed, random_streams.ENCODER_INITIALISATION)
  encoder = build_encoder(conv_widths=conv_widths)
  classifier = _classifier(encoder)
  learning_rate = recipe.learning_rate
  if recipe.cosine_decay:
    learning_rate = keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate, epochs * int(train_ds.cardinality().numpy()))
  classifier.compile(
      optimizer=keras.optimizers.SGD(learning_rate, momentum=recipe.momentum),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"])
  start = time.time()
  history = classifier.fit(train_ds, epochs=epochs, verbose=verbose, shuffle=False)  # The pipeline shuffles.
  train_seconds = time.time() - start
  test_loss, test_accuracy = classifier.evaluate(test_ds, verbose=0)
  metrics = {
      "test_accuracy": float(test_accuracy),
      "test_loss": float(test_loss),
      "train_loss": [float(v) for v in history.history["loss"]],
      "train_accuracy": [float(v) for v in history.history["accuracy"]],
      "train_seconds": train_seconds,
      "epochs": epochs,
      "recipe": dataclasses.asdict(recipe),
  }
  return encoder, metrics


def save_encoder(encoder: keras.Model, metrics: dict, directory: str) -> None:
  """Writes encoder.keras and metrics.json; the directory appears whole or not at all (files.write_atomically)."""
  def make(temporary):
    os.mkdir(temporary)
    encoder.save(os.path.join(temporary, ENCODER_FILE))
    files.write_json(os.path.join(temporary, METRICS_FILE), metrics)

  files.write_atomically(directory, make)


def check_encoder_dir(directory: str) -> None:
  """Cheap check that `directory` holds a saved encoder; raises EncoderError."""
  files.required_file(directory, ENCODER_FILE, "encoder directory", EncoderError)


def load_encoder(directory: str) -> keras.Model:
  """Loads a saved encoder, frozen. Raises EncoderError on a missing or corrupt file."""
  check_encoder_dir(directory)
  path = os.path.join(directory, ENCODER_FILE)
  try:
    encoder = keras.models.load_model(path, compile=False)
  except Exception as e:  # Keras raises many types for a corrupt archive.
    raise EncoderError(f"{path}: cannot be loaded ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else 'corrupt file'})") from e
  if not isinstance(encoder.output, dict) or set(encoder.output) != set(LAYER_NAMES):
    raise EncoderError(f"{path}: not a ppgn_tf encoder (outputs must be {LAYER_NAMES})")
  encoder.trainable = False
  return encoder


def read_metrics(directory: str) -> dict:
  with open(os.path.join(directory, METRICS_FILE)) as f:
    return json.load(f)


def ensure_encoder(directory: str, make_datasets, *, epochs: int, recipe: Recipe, seed: int) -> keras.Model:
  """Returns the encoder saved in `directory`, pre-training and saving one first if absent.

  `make_datasets()` -> (train_ds, test_ds) is only called when training is needed.
  """
  if os.path.isfile(os.path.join(directory, ENCODER_FILE)):
    logging.info("Reusing the encoder in %s", directory)
    return load_encoder(directory)
  logging.info("No encoder in %s: pre-training one (%d epochs, %s recipe: SGD lr %g%s, momentum %g)",
               directory, epochs, recipe.name, recipe.learning_rate,
               " cosine-decayed" if recipe.cosine_decay else "", recipe.momentum)
  train_ds, test_ds = make_datasets()
  encoder, metrics = pretrain_encoder(train_ds, test_ds, epochs=epochs, recipe=recipe, seed=seed)
  save_encoder(encoder, metrics, directory)
  logging.info("Encoder test accuracy %.4f after %.0f s, saved to %s",
               metrics["test_accuracy"], metrics["train_seconds"], directory)
  return load_encoder(directory)

