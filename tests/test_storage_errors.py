"""Disks and paths that fail: one line naming the path and the cause, a non-zero exit, the last good
checkpoint in charge, and a rerun that continues once space is free.

A full disk is played by stand-ins for TensorFlow's checkpoint and SavedModel writers that leave a partial
file and raise what TensorFlow raises on ENOSPC (ResourceExhaustedError); train.py runs in this process.
"""

from __future__ import annotations

import glob
import json
import os

import keras
import tensorflow as tf

from test_bad_input import SAME_CONFIG, _error_lines, _snapshot, _train_main

NO_SPACE = "No space left on device"


def _full_disk(path):
  with open(path, "wb") as f:
    f.write(b"\0" * 100)  # What a writer leaves when the disk fills mid-file.
  raise tf.errors.ResourceExhaustedError(None, None, f"{path}; {NO_SPACE}")


def _read(workdir, name):
  with open(os.path.join(workdir, name)) as f:
    return json.load(f)


def test_a_workdir_that_cannot_be_created(small_idx_dir, encoder_dir, capsys):
  workdir = "/proc/ppgn_tf_no_such_dir/run"  # /proc takes no new directories, even from root.
  code = _train_main([f"--workdir={workdir}", f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}",
                      *SAME_CONFIG])
  assert code != 0
  errors = _error_lines(capsys.readouterr().err, "train.py")
  assert len(errors) == 1 and f"--workdir={workdir}: cannot create it (ENOENT: No such file or directory)" in \
      errors[0], errors


def test_a_disk_that_fills_during_a_checkpoint(tmp_path, small_idx_dir, encoder_dir, capsys, monkeypatch):
  workdir = str(tmp_path / "run")
  args = [f"--workdir={workdir}", f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}", *SAME_CONFIG,
          "--checkpoint_every=2"]  # 4 G steps = 9 critic iterations: ckpt-2, -4, then the disk is full.
  save = tf.train.CheckpointManager.save

  def save_until_full(manager, checkpoint_number=None, **kwargs):
    if checkpoint_number >= 6:
      os.makedirs(os.path.join(manager.directory, f"ckpt-{checkpoint_number}_temp"))
      _full_disk(os.path.join(manager.directory, f"ckpt-{checkpoint_number}_temp", "part-00000-of-00001.data"))
    return save(manager, checkpoint_number=checkpoint_number, **kwargs)

  monkeypatch.setattr(tf.train.CheckpointManager, "save", save_until_full)
  assert _train_main(args) == 1
  errors = _error_lines(capsys.readouterr().err, "train.py")
  checkpoints = os.path.join(workdir, "checkpoints")
  assert len(errors) == 1, errors
  assert (f"checkpoint ckpt-6 not written ({checkpoints}: ResourceExhaustedError: " in errors[0]
          and NO_SPACE in errors[0] and f"the last complete checkpoint {checkpoints}/ckpt-4 stays in charge"
          in errors[0]), errors
  assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-4")
  assert not glob.glob(os.path.join(checkpoints, "ckpt-6*"))  # The partial save is removed: space is scarce.
  assert not os.path.exists(os.path.join(workdir, "summary.json"))

  monkeypatch.setattr(tf.train.CheckpointManager, "save", save)  # Space is free again.
  assert _train_main(args) == 0
  summary = _read(workdir, "summary.json")
  assert (summary["generator_steps"], summary["critic_steps"]) == (4, 3 + 3 * 2)  # Continued to the end.
  assert [g for g, _ in _read(workdir, "history.json")["g_loss"]] == [1, 2, 3, 4]  # Each G step once.


def test_a_disk_that_fills_during_the_export(tmp_path, small_idx_dir, encoder_dir, capsys, monkeypatch):
  workdir = str(tmp_path / "run")
  args = [f"--workdir={workdir}", f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}", *SAME_CONFIG,
          "--export", "--sample_steps=2"]
  archive_class = type(keras.export.ExportArchive())  # Its __new__ returns a backend's class.
  write_out = archive_class.write_out

  def fill_the_disk(archive, filepath, *args, **kwargs):
    os.makedirs(os.path.join(filepath, "variables"))
    _full_disk(os.path.join(filepath, "variables", "variables.data-00000-of-00001"))

  monkeypatch.setattr(archive_class, "write_out", fill_the_disk)
  assert _train_main(args) == 1
  errors = _error_lines(capsys.readouterr().err, "train.py")
  export_dir = os.path.join(workdir, "export")
  assert len(errors) == 1, errors
  assert (f"{export_dir}/1: export not written (ResourceExhaustedError: " in errors[0] and NO_SPACE in errors[0]
          and "partial files are removed" in errors[0]), errors
  assert os.listdir(export_dir) == []  # Nothing half-written left.
  checkpoints = _snapshot(os.path.join(workdir, "checkpoints"))
  assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-9")

  monkeypatch.setattr(archive_class, "write_out", write_out)
  assert _train_main(args) == 0  # Nothing left to train: the rerun does the end-of-run work.
  assert os.path.isfile(os.path.join(export_dir, "1", "saved_model.pb"))
  assert _snapshot(os.path.join(workdir, "checkpoints")) == checkpoints
  assert _read(workdir, "summary.json")["generator_steps"] == 4
