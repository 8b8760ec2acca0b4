"""Preemption, determinism and several hosts, through train.py as users run it.

Every run here is a real train.py process on the tiny configuration below:
killed with SIGKILL, rerun, run twice, or run as two workers with TF_CONFIG.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO

G_STEPS = 8
# D and D_fc1, 2 critic iterations per G step after a 1-round warm-up of 3.
TINY = ["--dim=2", "--batch_size=8", "--critic_iters=2",
        "--critic_iters_long=3", "--long_rounds_until=1", "--verbose=0", "--sample_per_class=0",
        f"--max_generator_steps={G_STEPS}"]
# What history.json records that is not a function of the seed.
UNTIMED = lambda history: {k: v for k, v in history.items() if k != "images_per_second"}


def _command(workdir, small_idx_dir, encoder_dir, *extra):
  return [sys.executable, "train.py", "--flagfile=flags/combined.cfg", f"--workdir={workdir}", f"--dataset=idx:{small_idx_dir}",
          f"--encoder_dir={encoder_dir}", *TINY, *extra]


def _env(**extra):
  env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
  env.pop("TF_CONFIG", None)
  return {**env, **extra}


def _start(command, **env):
  return subprocess.Popen(command, cwd=REPO, env=_env(**env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _finish(process, timeout=300):
  out, err = process.communicate(timeout=timeout)
  assert process.returncode == 0, err[-3000:]
  return out


def _checkpointed_critic_step(workdir) -> int:
  """The critic step of the newest checkpoint the index names (-1: none yet)."""
  try:
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
  except Exception:  # Being replaced at this moment.
    return -1
  return int(state.model_checkpoint_path.rsplit("-", 1)[1]) if state else -1


def _kill_after_checkpoint(process, workdir, critic_step, extra_delay, timeout=240):
  """SIGKILLs `process` `extra_delay` s after it checkpointed `critic_step`: wherever it then is,
  mid-step or mid-save."""
  deadline = time.time() + timeout
  while _checkpointed_critic_step(workdir) < critic_step:
    assert process.poll() is None, "the run ended before it could be killed: " + process.stderr.read()[-2000:]
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.02)
  time.sleep(extra_delay)
  process.send_signal(signal.SIGKILL)
  process.communicate()
  assert process.returncode == -signal.SIGKILL


def _read(workdir, name):
  with open(os.path.join(workdir, name)) as f:
    return json.load(f)


def _weights(checkpoint_dir, name=None) -> dict:
  """Network weights of the newest checkpoint (or the one called `name`), by checkpoint key."""
  path = os.path.join(checkpoint_dir, name) if name else tf.train.latest_checkpoint(checkpoint_dir)
  reader = tf.train.load_checkpoint(path)
  # Keras 3 networks are reached through their optimizers in the object graph.
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "/_trainable_variables/" in k}


def test_deterministic_runs_agree_and_a_killed_run_resumes_the_same_trajectory(tmp_path, small_idx_dir,
                                                                               encoder_dir):
  det = ["--deterministic", "--checkpoint_every=1"]  # A checkpoint every critic iteration: kills hit saves.
  first, second, killed = (str(tmp_path / n) for n in ("first", "second", "killed"))
  # Two uninterrupted runs, and meanwhile one killed twice (after the 4th and the 10th of 17 critic
  # iterations, at different points of a step), then rerun to the end.
  runs = [_start(_command(w, small_idx_dir, encoder_dir, *det)) for w in (first, second)]
  for critic_step, delay in ((4, 0.0), (10, 0.013)):
    _kill_after_checkpoint(_start(_command(killed, small_idx_dir, encoder_dir, *det)), killed, critic_step, delay)
    assert _checkpointed_critic_step(killed) >= critic_step  # The index still names a whole checkpoint.
  runs.append(_start(_command(killed, small_idx_dir, encoder_dir, *det)))
  for r in runs:
    _finish(r)

  reference = _read(first, "summary.json")
  assert reference["generator_steps"] == G_STEPS
  for workdir in (second, killed):
    summary = _read(workdir, "summary.json")
    assert (summary["generator_steps"], summary["critic_steps"]) == (G_STEPS, reference["critic_steps"])

  # Two uninterrupted deterministic runs: identical losses at every G step.
  history = UNTIMED(_read(first, "history.json"))
  assert UNTIMED(_read(second, "history.json")) == history
  # The killed run logged every G step exactly once and continued the same trajectory. Tolerance:
  # exact up to float32 rounding (rel 1e-6); op determinism makes it bit-identical here.
  resumed = UNTIMED(_read(killed, "history.json"))
  assert set(resumed) == set(history)
  for key, points in history.items():
    assert [g for g, _ in resumed[key]] == [g for g, _ in points], key
    np.testing.assert_allclose([v for _, v in resumed[key]], [v for _, v in points], rtol=1e-6, err_msg=key)
  reference_weights = _weights(os.path.join(first, "checkpoints"))
  assert reference_weights
  for name, value in _weights(os.path.join(killed, "checkpoints")).items():
    np.testing.assert_allclose(value, reference_weights[name], rtol=1e-6, atol=1e-7, err_msg=name)


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_match_each_other_and_a_single_process(tmp_path, small_idx_dir, encoder_dir):
  steps = ["--max_generator_steps=6", "--checkpoint_every=0"]
  single = str(tmp_path / "single")
  # Its first checkpoint (critic step 1, before the first G step) holds G's initial weights.
  _finish(_start(_command(single, small_idx_dir, encoder_dir, "--max_generator_steps=6", "--checkpoint_every=1",
                          "--keep_checkpoints=100", "--strategy=default")))

  workdir = str(tmp_path / "multi")  # Shared by both workers, as a GCS or NFS path would be.
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  workers = [_start(_command(workdir, small_idx_dir, encoder_dir, *steps, "--strategy=multi_worker"),
                    TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
             for i in range(2)]
  for w in workers:
    _finish(w, timeout=400)

  summary = _read(workdir, "summary.json")  # Written by the chief only.
  assert summary["replicas"] == 2 and summary["generator_steps"] == 6
  assert not os.path.exists(os.path.join(workdir, ".worker_tmp", "0"))
  chief = _weights(os.path.join(workdir, "checkpoints"))
  other = _weights(os.path.join(workdir, ".worker_tmp", "1"))
  alone = _weights(os.path.join(single, "checkpoints"))
  assert set(chief) == set(other) == set(alone)
  for name in chief:  # All-reduced gradients: the workers hold the same weights.
    np.testing.assert_allclose(other[name], chief[name], rtol=1e-5, atol=1e-6, err_msg=name)
  # The same global batch, sharded: the single-process result up to float summation order.
  initial = _weights(os.path.join(single, "checkpoints"), "ckpt-1")
  generator = [k for k in alone if k.startswith("generator_optimizer/")]
  change = sum(float(np.sum((alone[k] - initial[k]) ** 2)) for k in generator)
  mismatch = sum(float(np.sum((chief[k] - alone[k]) ** 2)) for k in generator)
  assert change > 0
  assert mismatch < 0.05 ** 2 * change, (mismatch, change)
  single_final = _read(single, "summary.json")["final"]
  for key, value in summary["final"].items():
    assert value == pytest.approx(single_final[key], rel=1e-3, abs=1e-5), key
