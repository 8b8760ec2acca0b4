"""An evaluation classifier independent of E: another architecture, trained separately.

It judges samples (is this the requested digit?) without sharing E's blind
spots: the sampler climbs E's own class probability, so E's verdict on its
samples is biased upward. Trained once per dataset and cached on disk.
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np

from ppgn_tf import files
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES

MODEL_FILE = "eval_classifier.keras"
METRICS_FILE = "metrics.json"
FEATURES = 128  # Width of the feature layer the Frechet distance and the diversity are measured in.
MAX_SHIFT_PIXELS = 2  # Training's random shifts, up to this many pixels each way.


def build_eval_classifier() -> keras.Model:
  """3x3 'same' convolutions, batch norm, dropout: deliberately unlike E (7x7 'valid', none of those)."""
  images = keras.Input(IMAGE_SHAPE, name="images")
  x = images
  for filters in (32, 64):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dropout(0.3)(x)
  features = keras.layers.Dense(FEATURES, activation="relu", name="features")(x)
  logits = keras.layers.Dense(NUM_CLASSES, name="logits")(keras.layers.Dropout(0.3)(features))
  return keras.Model(images, {"features": features, "logits": logits}, name="eval_classifier")


def train_eval_classifier(train: data_lib.Split, test: data_lib.Split, *, epochs: int = 8, seed: int = 1,
                          verbose: int = 0) -> tuple[keras.Model, dict]:
  """Adam with small random shifts; returns the model and its held-out accuracy."""
  random_streams.seed_keras(seed, random_streams.EVAL_CLASSIFIER_INITIALISATION)
  model = build_eval_classifier()
  images = keras.Input(IMAGE_SHAPE)
  shifts_seed = random_streams.integer_seed(seed, random_streams.EVAL_CLASSIFIER_AUGMENTATION)
  shift = MAX_SHIFT_PIXELS / IMAGE_SHAPE[0]  # RandomTranslation takes a fraction of the height (and width).
  shifted = keras.layers.RandomTranslation(shift, shift, fill_mode="constant",
                                           fill_value=-data_lib.MEAN / data_lib.STD, seed=shifts_seed)(images)
  trainer = keras.Model(images, model(shifted)["logits"])
  trainer.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
  start = time.time()
  batches = data_lib.make_pipeline(train, 64, seed=seed, stream=random_streams.EVAL_CLASSIFIER_DATA_ORDER)
  trainer.fit(batches, epochs=epochs, verbose=verbose, shuffle=False)
  accuracy = float(np.mean(predict(model, data_lib.normalize(test.images).numpy()).argmax(1) == test.labels))
  return model, {"test_accuracy": accuracy, "train_seconds": time.time() - start, "epochs": epochs}


def predict(model: keras.Model, normalised_images: np.ndarray, batch_size: int = 256) -> np.ndarray:
  """Class probabilities for normalised images."""
  out = [keras.ops.softmax(model(normalised_images[i:i + batch_size], training=False)["logits"]).numpy()
         for i in range(0, len(normalised_images), batch_size)]
  return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)


def features(model: keras.Model, normalised_images: np.ndarray, batch_size: int = 256) -> np.ndarray:
  out = [model(normalised_images[i:i + batch_size], training=False)["features"].numpy()
         for i in range(0, len(normalised_images), batch_size)]
  return np.concatenate(out) if out else np.zeros((0, FEATURES), np.float32)


def ensure_eval_classifier(directory: str, dataset: str, data_dir: str | None = None) -> tuple[keras.Model, dict]:
  """Loads the classifier cached in `directory`, training it on `dataset` first if absent.

  The cache is complete only once METRICS_FILE exists: the model is written first, the metrics last, each by
  files.write_atomically. A run killed between the two leaves a model without metrics, which the next call
  trains anew and replaces.
  """
  path = os.path.join(directory, MODEL_FILE)
  metrics_path = os.path.join(directory, METRICS_FILE)
  if os.path.isfile(metrics_path) and os.path.isfile(path):
    with open(metrics_path) as f:
      return keras.models.load_model(path, compile=False), json.load(f)
  train, test = data_lib.load_arrays(dataset, data_dir)
  model, metrics = train_eval_classifier(train, test)
  metrics["dataset"] = dataset
  files.write_atomically(path, model.save)
  files.write_json(metrics_path, metrics)
  return model, metrics
