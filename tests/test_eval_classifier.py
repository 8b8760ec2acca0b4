"""The independent evaluation classifier: architecture unlike E, trains, caches itself."""

from __future__ import annotations

import numpy as np

from ppgn_tf.data import datasets as data
from ppgn_tf.evaluation import eval_classifier


def test_architecture_differs_from_encoder():
  model = eval_classifier.build_eval_classifier()
  names = [l.__class__.__name__ for l in model.layers]
  assert "BatchNormalization" in names and "Dropout" in names
  kernels = {l.kernel_size for l in model.layers if hasattr(l, "kernel_size")}
  assert kernels == {(3, 3)}  # E uses 7x7 'valid' convolutions.
  out = model(np.zeros((2, 28, 28, 1), np.float32))
  assert out["logits"].shape == (2, 10) and out["features"].shape == (2, 128)


def test_trains_above_chance_and_is_cached(tmp_path, small_idx_dir):
  directory = str(tmp_path / "clf")
  model, metrics = eval_classifier.ensure_eval_classifier(directory, f"idx:{small_idx_dir}")
  assert metrics["test_accuracy"] > 0.6  # 512 digits, 8 epochs: well above chance (0.1).
  again, metrics_again = eval_classifier.ensure_eval_classifier(directory, "nosuch-dataset-not-read")
  assert metrics_again == metrics  # Loaded from disk, not retrained.
  _, test = data.load_arrays(f"idx:{small_idx_dir}")
  x = data.normalize(test.images[:5]).numpy()
  probs = eval_classifier.predict(again, x)
  np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
  np.testing.assert_allclose(probs, eval_classifier.predict(model, x), atol=1e-5)


def test_a_cache_cut_short_before_its_metrics_is_trained_anew(tmp_path, small_idx_dir, monkeypatch):
  """A kill between the model file and metrics.json leaves a model alone: the next call retrains and completes
  the cache instead of failing on the missing metrics."""
  directory = tmp_path / "clf"
  directory.mkdir()
  (directory / eval_classifier.MODEL_FILE).write_bytes(b"a model whose metrics were never written")
  trained = []

  def stand_in(train, test):
    trained.append(len(train))
    return eval_classifier.build_eval_classifier(), {"test_accuracy": 0.5}

  monkeypatch.setattr(eval_classifier, "train_eval_classifier", stand_in)
  model, metrics = eval_classifier.ensure_eval_classifier(str(directory), f"idx:{small_idx_dir}")
  assert trained == [512] and metrics == {"test_accuracy": 0.5, "dataset": f"idx:{small_idx_dir}"}
  assert sorted(p.name for p in directory.iterdir()) == sorted([eval_classifier.METRICS_FILE, eval_classifier.MODEL_FILE])
  again, _ = eval_classifier.ensure_eval_classifier(str(directory), "nosuch-dataset-not-read")  # Now cached.
  assert trained == [512] and len(again.layers) == len(model.layers)
