"""Bad input, everywhere: one clear line naming the problem, a non-zero exit before heavy work,
and nothing already in the workdir lost or changed.

train.py runs in this process (fast); export.py, ppgn_tf.sample and ppgn_tf.evaluate run as
subprocesses, all at once, because each needs its own flags and a TensorFlow start-up.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

# train.py flags that rebuild the configuration of conftest's trained_workdir (so it is a rerun, not a mismatch).
SAME_CONFIG = ["--dim=2", "--batch_size=8", "--latent_critics=fc1", "--critic_iters=2", "--critic_iters_long=3",
               "--long_rounds_until=1", "--long_round_every=1000", "--verbose=0", "--sample_per_class=0",
               "--max_generator_steps=4"]


def _snapshot(directory) -> dict:
  """Relative path -> sha256 of every file under `directory`."""
  result = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        result[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return result


def _error_lines(stderr: str, program: str) -> list[str]:
  return [l for l in stderr.splitlines() if l.startswith(f"{program}: error:")]


def _corrupt_checkpoint_data(workdir):
  for path in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.data-*")):
    size = os.path.getsize(path)
    with open(path, "wb") as f:
      f.write(b"\x5a" * size)  # Same size, wrong bytes: only the checksums can tell.


def _delete_checkpoint_files(workdir):
  for path in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*")):
    os.remove(path)


def _delete_checkpoint_index(workdir):
  os.remove(os.path.join(workdir, "checkpoints", "checkpoint"))


@pytest.fixture
def finished(tmp_path, trained_workdir) -> str:
  """A private copy of a finished tiny run."""
  workdir = str(tmp_path / "run")
  shutil.copytree(trained_workdir, workdir)
  return workdir


def _train_main(argv):
  import train as train_main
  train_main.FLAGS.unparse_flags()
  train_main.FLAGS(["train.py", *argv])
  return train_main.main(["train.py"])


@pytest.mark.parametrize("damage, message", [
    (_corrupt_checkpoint_data, "corrupt checkpoint"),
    (_delete_checkpoint_files, "named by"),
])
def test_train_refuses_a_damaged_checkpoint_and_keeps_it(finished, small_idx_dir, encoder_dir, capsys, damage,
                                                         message):
  damage(finished)
  before = _snapshot(finished)
  code = _train_main([f"--workdir={finished}", f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}",
                      *SAME_CONFIG])
  assert code != 0
  errors = _error_lines(capsys.readouterr().err, "train.py")
  assert len(errors) == 1 and message in errors[0], errors
  assert _snapshot(finished) == before  # Not restarted from scratch on top of it, nothing rewritten.


def test_a_lost_index_resumes_from_the_newest_complete_checkpoint(finished, small_idx_dir, encoder_dir):
  """A kill between a first checkpoint's files and its index (or a deleted index) loses nothing; a
  half-written first save (ckpt-N_temp) is ignored."""
  from ppgn_tf.training import checkpoints
  _delete_checkpoint_index(finished)
  os.makedirs(os.path.join(finished, "checkpoints", "ckpt-99_temp"))
  newest = checkpoints.check_checkpoints(os.path.join(finished, "checkpoints"))
  assert newest and newest.endswith("ckpt-5"), newest  # conftest's run: 5 critic iterations.
  assert _train_main([f"--workdir={finished}", f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}",
                      *SAME_CONFIG]) == 0
  with open(os.path.join(finished, "summary.json")) as f:
    summary = json.load(f)
  assert summary["generator_steps"] == 4 and summary["critic_steps"] == 5 + 2 * 2  # Continued, not restarted.


def test_a_relative_workdir_finds_its_checkpoint(trained_workdir, monkeypatch):
  from ppgn_tf.sampling import trained_run
  from ppgn_tf.training import checkpoints
  monkeypatch.chdir(os.path.dirname(trained_workdir))
  relative = os.path.join(os.path.basename(trained_workdir), "checkpoints")
  latest = checkpoints.check_checkpoints(relative)
  assert latest and os.path.isfile(latest + ".index"), latest
  assert trained_run.load_trained(os.path.basename(trained_workdir)).generator_steps.numpy() == 2


def test_train_refuses_a_corrupt_encoder_in_the_workdir(tmp_path, small_idx_dir, capsys):
  workdir = tmp_path / "run"
  (workdir / "encoder").mkdir(parents=True)
  (workdir / "encoder" / "encoder.keras").write_bytes(b"truncated")
  before = _snapshot(workdir)
  # Only E is broken: the run would otherwise pre-train nothing and go straight to loading data.
  code = _train_main([f"--workdir={workdir}", f"--dataset=idx:{small_idx_dir}", *SAME_CONFIG])
  assert code != 0
  errors = _error_lines(capsys.readouterr().err, "train.py")
  assert len(errors) == 1 and "encoder.keras: cannot be loaded" in errors[0], errors
  assert _snapshot(workdir) == before


@pytest.mark.parametrize("args, message", [
    (["--sample_steps=-1"], "--sample_steps must be >= 0"),
    (["--checkpoint_every=-5"], "--checkpoint_every must be >= 0"),
    (["--keep_checkpoint_every=-1"], "--keep_checkpoint_every must be >= 0"),
    (["--encoder_epochs=0"], "--encoder_epochs must be >= 1"),
    (["--critic_iters_long=0"], "--critic_iters_long must be >= 1"),
    (["--generator_ema=1.0"], "--generator_ema must be in [0, 1), got 1.0"),
    (["--generator_ema=-0.1"], "--generator_ema must be in [0, 1), got -0.1"),
    # An export that would hold every training code, not asked for: refused before any training.
    (["--sampler_preset=training_digit", "--export"], "--h0=class_codes starts chains from stored training codes"),
])
def test_train_refuses_out_of_range_values(finished, small_idx_dir, encoder_dir, capsys, args, message):
  before = _snapshot(finished)
  code = _train_main([f"--workdir={finished}", f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}",
                      *SAME_CONFIG, *args])
  assert code != 0
  errors = _error_lines(capsys.readouterr().err, "train.py")
  assert len(errors) == 1 and message in errors[0], errors
  assert _snapshot(finished) == before


def test_programs_refuse_bad_input_with_one_line(tmp_path, trained_workdir):
  """export.py, ppgn_tf.sample and ppgn_tf.evaluate, each on its own bad input."""
  corrupt = str(tmp_path / "corrupt")
  shutil.copytree(trained_workdir, corrupt)
  _corrupt_checkpoint_data(corrupt)
  untrained = str(tmp_path / "untrained")
  shutil.copytree(trained_workdir, untrained)
  shutil.rmtree(os.path.join(untrained, "checkpoints"))
  a_file = tmp_path / "a_file"
  a_file.write_text("keep me")
  empty = tmp_path / "empty_model_dir"
  (empty / "1").mkdir(parents=True)  # A version directory without saved_model.pb.
  out_dir = tmp_path / "out"
  bright = tmp_path / "bright.npy"
  np.save(bright, np.full((28, 28), 2.0))
  half_mask = tmp_path / "half_mask.npy"
  np.save(half_mask, np.ones((28, 14)))
  exported = tmp_path / "export"
  from ppgn_tf.sampling import serving
  from ppgn_tf.sampling import trained_run
  from ppgn_tf.sampling.mala_sampler import SamplerConfig
  model = trained_run.load_trained(trained_workdir)
  serving.write(serving.build_archive(model.generator, model.encoder, SamplerConfig(steps=1),
                                      prior=trained_run.load_code_prior(trained_workdir, model)), str(exported))

  cases = [  # program, arguments, the text its one error line must hold
      ("export.py", [f"--workdir={corrupt}", f"--export_dir={out_dir}"], "corrupt checkpoint"),
      ("export.py", [f"--workdir={untrained}", f"--export_dir={out_dir}"], "no checkpoint"),
      ("export.py", [f"--workdir={trained_workdir}", f"--export_dir={a_file}"], "exists and is not a directory"),
      ("export.py", [f"--workdir={trained_workdir}", f"--export_dir={out_dir}", "--steps=-5"],
       "--steps must be >= 0"),
      ("sample", [f"--saved_model={empty}", f"--output_dir={out_dir}"], "no SavedModel here"),
      ("sample", [f"--workdir={corrupt}", f"--output_dir={out_dir}"], "corrupt checkpoint"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", "--epsilon3=-1"],
       "--epsilon3 must be >= 0"),
      ("evaluate", [f"--saved_model={empty}", "--dataset=mnist_offline", f"--output={out_dir}/e.json"],
       "no SavedModel here"),
      ("evaluate", [f"--workdir={trained_workdir}", "--epsilon1=-0.5", f"--output={out_dir}/e.json"],
       "--epsilon1 must be >= 0"),
      # The sampler's settings and in-painting inputs.
      ("export.py", [f"--workdir={trained_workdir}", f"--export_dir={out_dir}", "--max_batch=0"],
       "--max_batch must be >= 1"),
      ("export.py", [f"--workdir={trained_workdir}", f"--export_dir={out_dir}", "--max_steps=20", "--steps=50"],
       "--max_steps=20 is below the sampler's own --steps=50"),
      ("export.py", [f"--workdir={trained_workdir}", f"--export_dir={out_dir}", "--sampler_preset=best"],
       "--sampler_preset=best: choose from thesis, default, training_digit"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", "--h0=uniform"],
       "--h0=uniform: choose from normal, codes, class_codes, marginals, class_gaussian"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", "--step_size=-1"],
       "--step_size must be >= 0"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", "--inpaint_image=test:0",
                  "--inpaint_mask=diagonal"], "--inpaint_mask=diagonal: choose a named mask"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", f"--inpaint_image={bright}"],
       "pixels must be in [0, 1]"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", "--inpaint_image=test:0",
                  f"--inpaint_mask={half_mask}"], "expected 28x28 pixels"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", "--inpaint_image=test:0",
                  "--inpaint_preset=noisy"], "--inpaint_preset=noisy: choose from inpaint, inpaint_varied"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", "--inpaint_image=test:0",
                  "--sampler_preset=default"], "in-painting takes --inpaint_preset"),
      ("sample", [f"--workdir={trained_workdir}", f"--output_dir={out_dir}", "--inpaint_image=test:0",
                  "--start_noise=-1"], "--start_noise must be >= 0"),
      ("evaluate", [f"--workdir={trained_workdir}", "--inpaint_mask=middle", f"--output={out_dir}/e.json"],
       "--inpaint_mask=middle: choose from all, left, right, top, bottom, centre"),
      ("evaluate", [f"--saved_model={exported}", "--dataset=mnist_offline", "--h0=codes", f"--output={out_dir}/e.json"],
       "--h0 applies to --workdir only"),
  ]
  before = {w: _snapshot(w) for w in (corrupt, untrained, trained_workdir)}
  env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
  processes = []
  for program, args, _ in cases:
    command = [sys.executable, program] if program.endswith(".py") else [sys.executable, "-m", f"ppgn_tf.{program}"]
    processes.append(subprocess.Popen([*command, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
  failures = []
  for (program, args, message), process in zip(cases, processes):
    _, err = process.communicate(timeout=300)
    errors = _error_lines(err, program)
    if process.returncode == 0 or len(errors) != 1 or message not in errors[0]:
      failures.append(f"{program} {args}: exit {process.returncode}, {errors or err[-500:]}")
  assert not failures, "\n".join(failures)
  assert a_file.read_text() == "keep me"
  assert not out_dir.exists()  # Nothing written anywhere.
  assert {w: _snapshot(w) for w in before} == before
