"""Classifiers of tasks E never saw, to plug into the sampler as its condition (`--condition_model`): a small MLP,
not E's conv net, trained on the digits relabelled by a task (odd or even, digit groups). It maps [N, 28, 28, 1]
pixels in [0, 1] to the logits of the task's classes, as any condition classifier must (`condition_model`)."""

from __future__ import annotations

import os
import time

import keras
import numpy as np

from ppgn_tf import files
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES

# Task name -> the names of its classes; a digit's class is TASK_OF_DIGIT[task][digit].
TASKS = {
    "odd_even": ("even", "odd"),
    "low_high": ("0-4", "5-9"),
    "pairs": ("0-1", "2-3", "4-5", "6-7", "8-9"),
}
TASK_OF_DIGIT = {
    "odd_even": np.arange(NUM_CLASSES) % 2,
    "low_high": np.arange(NUM_CLASSES) // 5,
    "pairs": np.arange(NUM_CLASSES) // 2,
}
BATCH_SIZE = 64


def check_task(task: str) -> None:
  if task not in TASKS:
    raise ValueError(f"--task={task}: choose from {', '.join(TASKS)}")


def task_labels(task: str, digits) -> np.ndarray:
  """The task's class (int32) of each digit."""
  check_task(task)
  return TASK_OF_DIGIT[task][np.asarray(digits, np.int64)].astype(np.int32)


def build_mlp(num_classes: int, hidden: int = 64, probabilities: bool = False) -> keras.Model:
  """Pixels in [0, 1] -> Flatten -> Dense(hidden, ReLU) -> Dense(num_classes): logits, or with `probabilities` their
  softmax (both are valid condition classifiers)."""
  images = keras.Input(IMAGE_SHAPE, name="images")
  x = keras.layers.Dense(hidden, activation="relu", name="hidden")(keras.layers.Flatten()(images))
  outputs = keras.layers.Dense(num_classes, activation="softmax" if probabilities else None, name="classes")(x)
  return keras.Model(images, outputs, name="task_mlp")


def train_task_classifier(task: str, train: data_lib.Split, test: data_lib.Split, *, epochs: int = 3,
                          hidden: int = 64, seed: int = 0, probabilities: bool = False,
                          verbose: int = 0) -> tuple[keras.Model, dict]:
  """An MLP trained with Adam for `epochs` on `train`'s digits relabelled by `task`; returns it and its metrics
  (held-out accuracy on `test`, seconds)."""
  check_task(task)
  random_streams.seed_keras(seed, random_streams.TASK_CLASSIFIER_INITIALISATION)
  model = build_mlp(len(TASKS[task]), hidden, probabilities)
  model.compile(keras.optimizers.Adam(1e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities), metrics=["accuracy"])
  relabelled = data_lib.Split(train.images, task_labels(task, train.labels))
  # The pipeline yields normalised images (what E sees); this classifier reads pixels in [0, 1].
  batches = data_lib.make_pipeline(relabelled, BATCH_SIZE, seed=seed, stream=random_streams.TASK_CLASSIFIER_DATA_ORDER)
  batches = batches.map(lambda x, y: (x * data_lib.STD + data_lib.MEAN, y))
  start = time.time()
  model.fit(batches, epochs=epochs, verbose=verbose, shuffle=False)
  seconds = time.time() - start
  outputs = model.predict(test.images.astype(np.float32) / 255.0, batch_size=256, verbose=0)
  accuracy = float(np.mean(outputs.argmax(1) == task_labels(task, test.labels)))
  return model, {"task": task, "classes": list(TASKS[task]), "test_accuracy": accuracy, "train_seconds": seconds,
                 "epochs": epochs, "hidden": hidden, "seed": seed,
                 "outputs": "probabilities" if probabilities else "logits"}


def save(model: keras.Model, metrics: dict, path: str) -> None:
  """Writes the model to `path` (.keras) and its metrics to PATH without .keras + .json, each atomically."""
  if not path.endswith(".keras"):
    raise ValueError(f"--output={path}: a Keras model file name ends in .keras")
  files.make_directory(os.path.dirname(os.path.abspath(path)), f"--output={path}")
  tmp = f"{path[:-len('.keras')]}.tmp-{os.getpid()}.keras"
  try:
    model.save(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  files.write_json(path[:-len(".keras")] + ".json", metrics)

