r"""Trains a small classifier for a task E never saw, to plug into the sampler as its condition (Plug & Play).

  python -m ppgn_tf.cli.train_classifier --task=odd_even --output=classifiers/odd_even.keras
  python -m ppgn_tf.sample --workdir=runs/quickstart --condition_model=classifiers/odd_even.keras

The classifier is an MLP with one hidden layer (not E's conv net) on pixels in
[0, 1], trained with Adam on the digits relabelled by --task: odd_even (0: even,
1: odd), low_high (0: digits 0-4, 1: 5-9) or pairs (0: 0-1, 1: 2-3, ..., 4: 8-9).
Writes OUTPUT (.keras) and, beside it, OUTPUT without .keras plus .json (the task's
classes, held-out accuracy, training seconds). Any classifier of [N, 28, 28, 1]
images in [0, 1] to K >= 2 classes plugs in the same way; this program only makes
an example. See docs/conditioning.md.
"""

from __future__ import annotations

import os

from absl import flags
from absl import logging

from ppgn_tf import checks
from ppgn_tf import files
from ppgn_tf.cli import runner
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data import sources
from ppgn_tf.model import task_classifier

FLAGS = flags.FLAGS

flags.DEFINE_enum("task", "odd_even", list(task_classifier.TASKS), "The task: odd_even (even, odd), low_high "
                  "(0-4, 5-9) or pairs (0-1, 2-3, 4-5, 6-7, 8-9).")
flags.DEFINE_string("dataset", "mnist_offline", "The digits it is trained on (and judged on: their test split).")
flags.DEFINE_string("data_dir", None, "tfds data directory.")
flags.DEFINE_string("output", None, "The Keras model file written (.keras).")
flags.DEFINE_integer("epochs", 3, "Epochs of Adam.")
flags.DEFINE_integer("hidden", 64, "Units of the hidden layer.")
flags.DEFINE_integer("seed", 0, "Seed of its initialisation and data order.")
flags.DEFINE_bool("probabilities", False, "Return class probabilities (a softmax layer) instead of logits; the "
                  "sampler takes either.")
flags.mark_flag_as_required("output")


def main(argv):
  runner.refuse_arguments(argv)
  try:
    if not FLAGS.output.endswith(".keras"):
      raise ValueError(f"--output={FLAGS.output}: a Keras model file name ends in .keras")
    for name in ("epochs", "hidden"):
      checks.at_least(name, getattr(FLAGS, name), 1)
    sources.check_source(FLAGS.dataset)
    files.make_directory(os.path.dirname(os.path.abspath(FLAGS.output)), f"--output={FLAGS.output}")
    train, test = data_lib.load_arrays(FLAGS.dataset, FLAGS.data_dir)
    model, metrics = task_classifier.train_task_classifier(
        FLAGS.task, train, test, epochs=FLAGS.epochs, hidden=FLAGS.hidden, seed=FLAGS.seed,
        probabilities=FLAGS.probabilities)
    metrics["dataset"] = FLAGS.dataset
    task_classifier.save(model, metrics, FLAGS.output)
  except (ValueError, files.StorageError) as e:
    return runner.error("train_classifier", e)
  logging.info("%s classifier (%s): held-out accuracy %.4f after %.1f s", FLAGS.task,
               ", ".join(metrics["classes"]), metrics["test_accuracy"], metrics["train_seconds"])
  print(FLAGS.output)
  return 0


run = runner.runner(main)  # The console script ppgn-train-classifier; python -m ppgn_tf.cli.train_classifier.

if __name__ == "__main__":
  run()
