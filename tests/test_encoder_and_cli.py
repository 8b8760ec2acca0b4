"""Encoder pre-training and storage, and train.py's command line: help, bad input, a whole small run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ppgn_tf.data import datasets as data
from ppgn_tf.model import encoder as encoder_lib

from conftest import REPO


def _run(args, **kwargs):
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                        timeout=600, **kwargs)


def _error_lines(stderr: str, program: str = "train.py") -> list[str]:
  return [l for l in stderr.splitlines() if l.startswith(f"{program}: error:")]


def test_pretraining_lowers_loss_and_saves_metrics(tmp_path, small_idx_dir):
  train, test = data.load_arrays(f"idx:{small_idx_dir}")
  encoder, metrics = encoder_lib.pretrain_encoder(
      data.make_pipeline(train, 64, seed=0), data.make_pipeline(test, 128, seed=0, shuffle=False,
                                                                drop_remainder=False),
      epochs=2, verbose=0)
  assert metrics["train_loss"][-1] < metrics["train_loss"][0] - 0.1, metrics["train_loss"]
  assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["train_seconds"] > 0
  directory = str(tmp_path / "encoder")
  encoder_lib.save_encoder(encoder, metrics, directory)
  saved = json.loads(open(os.path.join(directory, "metrics.json")).read())
  assert saved["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
  loaded = encoder_lib.load_encoder(directory)
  assert not loaded.trainable
  x = data.normalize(test.images[:4])
  np.testing.assert_allclose(loaded(x)["fc2"].numpy(), encoder(x)["fc2"].numpy(), atol=1e-5)


def test_corrupt_or_missing_encoder_is_a_clear_error(tmp_path):
  with pytest.raises(encoder_lib.EncoderError, match="no such encoder directory"):
    encoder_lib.load_encoder(str(tmp_path / "nothing"))
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / encoder_lib.ENCODER_FILE).write_bytes(b"not a keras archive")
  with pytest.raises(encoder_lib.EncoderError, match="cannot be loaded"):
    encoder_lib.load_encoder(str(bad))


def test_helpfull_documents_every_flag():
  out = _run(["train.py", "--helpfull"])  # absl exits 1 after printing help.
  text = out.stdout + out.stderr
  for flag in ("--workdir", "--dataset", "--data_dir", "--seed", "--flagfile", "--latent_critics",
               "--critic_selection", "--strategy", "--beta_gan", "--encoder_epochs", "--[no]export", "--[no]image_critic"):
    assert flag in text, flag
  train_flags = text.split("ppgn_tf.cli.train:")[1].split("\n\n")[0]
  # absl prints "(default: ...)" or a help line for each flag; an empty help would show "--x: " + newline.
  assert ":\n    (default" not in train_flags


def test_bad_dataset_exits_nonzero_with_one_line(tmp_path):
  workdir = tmp_path / "run"
  out = _run(["train.py", f"--workdir={workdir}", "--dataset=nosuch"])
  assert out.returncode != 0
  errors = _error_lines(out.stderr)
  assert len(errors) == 1 and "--dataset=nosuch: unknown data source" in errors[0], out.stderr[-2000:]
  assert not workdir.exists()  # Nothing was started.


@pytest.mark.parametrize("args, message", [
    (["--dataset=idx:/definitely/missing"], "/definitely/missing"),
    (["--latent_critics=fc3"], "--latent_critics: 'fc3' is not a layer"),
    (["--recon_layers=fc1,conv9"], "--recon_layers: 'conv9' is not a layer"),
    (["--code_layer=pool"], "--code_layer: 'pool' is not a layer"),
    (["--dim=0"], "--dim must be > 0"),
    (["--batch_size=-4"], "--batch_size must be > 0"),
    (["--critic_iters=0"], "--critic_iters must be >= 1"),
    (["--epochs=0"], "--epochs must be >= 1"),
    (["--max_generator_steps=0"], "--max_generator_steps must be >= 1"),
    (["--random_p=1.5"], "--random_p must be in [0, 1]"),
    (["--gp_weight=-1"], "--gp_weight must be >= 0"),
    (["--adam_beta1=1.0"], "--adam_beta1 must be in [0, 1), got 1.0"),
    (["--precision=fp16"], "--precision=fp16: choose from auto, fp32, bf16"),
    (["--verbose=3"], "--verbose=3: choose from 0, 1, 2"),
    (["--recon_weights=1,2"], "--recon_weights has 2 values for 1 --recon_layers"),
    (["--critic_weights=x"], "--critic_weights: expected comma-separated numbers"),
    (["--image_critic=false"], "no critic"),
    (["--encoder_dir=/no/encoder/here"], "/no/encoder/here: no such encoder directory"),
    (["--strategy=multi_worker"], "TF_CONFIG"),
])
def test_bad_flags_exit_nonzero_with_one_line(tmp_path, capsys, monkeypatch, args, message):
  """train.py's main in this process (the subprocess test above covers the real exit code)."""
  import train as train_main
  monkeypatch.delenv("TF_CONFIG", raising=False)
  workdir = tmp_path / "run"
  train_main.FLAGS.unparse_flags()
  train_main.FLAGS(["train.py", f"--workdir={workdir}", "--dataset=mnist_offline", *args])
  assert train_main.main(["train.py"]) != 0
  errors = _error_lines(capsys.readouterr().err)
  assert len(errors) == 1 and message in errors[0], errors
  assert not workdir.exists()


def test_missing_flagfile_exits_nonzero(tmp_path):
  out = _run(["train.py", "--flagfile=flags/nosuch.cfg", f"--workdir={tmp_path / 'run'}"])
  assert out.returncode != 0
  assert "nosuch.cfg" in out.stderr


def test_train_cli_pretrains_encoder_then_trains(tmp_path, small_idx_dir):
  """The whole program on a small IDX set: encoder first, then 1 G step, samples and export."""
  workdir = tmp_path / "run"
  out = _run(["train.py", f"--workdir={workdir}", f"--dataset=idx:{small_idx_dir}", "--encoder_epochs=1",
              "--dim=2", "--batch_size=16", "--latent_critics=fc1", "--critic_iters_long=2",
              "--max_generator_steps=1", "--sample_per_class=1", "--sample_steps=3", "--export",
              "--verbose=0"])
  assert out.returncode == 0, out.stderr[-3000:]
  metrics = json.loads((workdir / "encoder" / "metrics.json").read_text())
  assert metrics["epochs"] == 1 and "test_accuracy" in metrics and "train_seconds" in metrics
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["generator_steps"] == 1 and summary["critic_steps"] == 2
  assert (workdir / "samples" / "samples.png").is_file()
  assert (workdir / "export" / "1" / "saved_model.pb").is_file()
