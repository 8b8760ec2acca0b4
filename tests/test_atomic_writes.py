"""files.write_atomically, the one writer of every file and directory a run leaves: whole or absent, never
half-written, even for a process killed between its writes; the rerun completes and leaves no temporaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import keras
import pytest

from conftest import REPO
from ppgn_tf import files
from ppgn_tf.evaluation import eval_classifier
from ppgn_tf.model import encoder as encoder_lib
from tiny_networks import TINY_CONV_WIDTHS

# A process that writes the evaluation classifier's cache (model, then metrics) or an encoder directory
# (metrics.json inside a temporary directory, then the directory), and SIGKILLs itself just before its
# KILL_AT-th rename into DIRECTORY: the moment after a temporary is complete and before it takes its place.
# Training is a stand-in (untrained networks): the writes are under test, not the training.
KILLED_WRITER = """
import os, signal, sys
kind, directory, idx_dir, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from ppgn_tf.evaluation import eval_classifier
from ppgn_tf.model import encoder as encoder_lib
renames, replace = [], os.replace
def replace_or_die(source, target):
  if os.path.abspath(target).startswith(os.path.abspath(directory)):
    renames.append(target)
    if len(renames) == kill_at:
      os.kill(os.getpid(), signal.SIGKILL)
  return replace(source, target)
os.replace = replace_or_die
if kind == "eval_classifier":
  eval_classifier.train_eval_classifier = lambda train, test: (eval_classifier.build_eval_classifier(),
                                                               {"test_accuracy": 0.5})
  eval_classifier.ensure_eval_classifier(directory, "idx:" + idx_dir)
else:
  encoder_lib.save_encoder(encoder_lib.build_encoder(conv_widths=(2, 2, 2)), {"test_accuracy": 0.5},
                           os.path.join(directory, "encoder"))
print("finished")
"""


def _killed_writer(kind, directory, idx_dir, kill_at):
  result = subprocess.run([sys.executable, "-c", KILLED_WRITER, kind, str(directory), idx_dir, str(kill_at)],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
  assert "finished" not in result.stdout


def _temporaries(directory):
  return [os.path.join(d, n) for d, names, file_names in os.walk(directory) for n in names + file_names
          if n.startswith(".tmp-")]


@pytest.mark.parametrize("kill_at", [1, 2])
def test_an_evaluation_classifier_cache_killed_between_writes_is_completed_by_the_rerun(tmp_path, small_idx_dir,
                                                                                        monkeypatch, kill_at):
  directory = tmp_path / "clf"
  _killed_writer("eval_classifier", directory, small_idx_dir, kill_at)
  model_path, metrics_path = directory / eval_classifier.MODEL_FILE, directory / eval_classifier.METRICS_FILE
  assert _temporaries(directory), "the kill should leave the temporary it was about to rename"
  assert not metrics_path.exists()
  if kill_at == 1:
    assert not model_path.exists()  # Killed before the model's rename: no model file, not a partial one.
  else:
    keras.models.load_model(model_path, compile=False)  # Renamed whole before the kill.

  trained = []
  monkeypatch.setattr(eval_classifier, "train_eval_classifier",
                      lambda train, test: trained.append(1) or (eval_classifier.build_eval_classifier(),
                                                                {"test_accuracy": 0.5}))
  _, metrics = eval_classifier.ensure_eval_classifier(str(directory), f"idx:{small_idx_dir}")
  assert trained == [1] and metrics["test_accuracy"] == 0.5
  assert sorted(os.listdir(directory)) == sorted([eval_classifier.METRICS_FILE, eval_classifier.MODEL_FILE])
  _, cached = eval_classifier.ensure_eval_classifier(str(directory), "nosuch-dataset-not-read")
  assert trained == [1] and cached == metrics  # Complete: read from disk, not trained again.


@pytest.mark.parametrize("kill_at", [1, 2])
def test_an_encoder_directory_killed_while_written_is_absent_and_the_rerun_writes_it(tmp_path, small_idx_dir,
                                                                                     monkeypatch, kill_at):
  _killed_writer("encoder", tmp_path, small_idx_dir, kill_at)
  directory = tmp_path / "encoder"
  assert not directory.exists()  # The directory appears whole or not at all.
  assert _temporaries(tmp_path)

  monkeypatch.setattr(encoder_lib, "pretrain_encoder", lambda *a, **k: (
      encoder_lib.build_encoder(conv_widths=TINY_CONV_WIDTHS), {"test_accuracy": 0.5, "train_seconds": 0.0}))
  encoder = encoder_lib.ensure_encoder(str(directory), lambda: (None, None), epochs=1,
                                       recipe=encoder_lib.RECIPES["thesis"], seed=0)
  assert set(encoder.output) == set(encoder_lib.LAYER_NAMES)
  assert sorted(os.listdir(directory)) == [encoder_lib.ENCODER_FILE, encoder_lib.METRICS_FILE]
  assert not _temporaries(tmp_path)  # The killed writer's temporary went with the rerun's write.


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "history.json"
  files.write_json(path, {"g_loss": [[1, 0.5]]})

  def fail_midway(out):
    out.write(b'{"g_loss": [[1, 0.5], [2')
    raise OSError(28, "No space left on device")

  with pytest.raises(files.StorageError, match=r"history\.json: not written \(ENOSPC: No space left on device\); "
                                               "its partial files are removed"):
    files.atomic_write(path, fail_midway)
  assert json.loads(path.read_text()) == {"g_loss": [[1, 0.5]]}
  assert os.listdir(tmp_path) == ["history.json"]


def test_a_directory_is_written_whole_and_other_errors_pass_through(tmp_path):
  target = tmp_path / "export" / "1"

  def make(temporary):
    os.mkdir(temporary)
    files.write_json(os.path.join(temporary, "a.json"), {"a": 1})

  files.write_atomically(target, make)
  assert os.listdir(target) == ["a.json"]

  def refuse(temporary):
    os.mkdir(temporary)
    raise ValueError("version 2 appeared meanwhile")

  with pytest.raises(ValueError, match="appeared meanwhile"):  # Not a storage failure: raised as it is.
    files.write_atomically(tmp_path / "export" / "2", refuse)
  assert sorted(os.listdir(tmp_path / "export")) == ["1"]


def test_only_the_temporaries_of_writers_no_longer_running_are_removed(tmp_path):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                        text=True).stdout.strip()
  abandoned = tmp_path / f".tmp-{dead}-0123abcd-summary.json"
  in_progress = tmp_path / f".tmp-{os.getpid()}-4567abcd-summary.json"  # A live writer's (this process').
  other_target = tmp_path / f".tmp-{dead}-89abcdef-history.json"
  for path in (abandoned, in_progress, other_target):
    path.write_text("partial")
  files.write_json(tmp_path / "summary.json", {})
  assert sorted(os.listdir(tmp_path)) == sorted(["summary.json", in_progress.name, other_target.name])
