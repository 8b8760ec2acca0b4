"""Preemption, determinism and several hosts, through train.py as users run it.

Every run here is a real train.py process on train_process.TINY's tiny configuration:
killed with SIGKILL, stopped with SIGTERM or SIGINT, rerun, or run as two workers with TF_CONFIG.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf.sampling import trained_run
from train_process import (G_STEPS, checkpoint_weights, checkpointed_critic_step, command, finish,
                           kill_after_checkpoint, signal_after_checkpoint, signal_at_checkpoint, start,
                           start_with_prelude)

# What history.json records that is not a function of the seed.
UNTIMED = lambda history: {k: v for k, v in history.items() if k != "images_per_second"}


def _read(workdir, name):
  with open(os.path.join(workdir, name)) as f:
    return json.load(f)


def _stop_line(stderr, text):
  lines = [l for l in stderr.splitlines() if text in l]
  assert len(lines) == 1, stderr[-3000:]
  return lines[0]


def test_deterministic_runs_agree_and_an_interrupted_run_resumes_the_same_trajectory(tmp_path, small_idx_dir,
                                                                                     encoder_dir):
  # A checkpoint every critic iteration: kills hit saves. With G's moving average (--generator_ema), which a
  # resumed run must restore too.
  det = ["--deterministic", "--checkpoint_every=1", "--generator_ema=0.9"]
  first, killed = (str(tmp_path / n) for n in ("first", "killed"))
  # One uninterrupted run, and meanwhile one stopped three times in 17 critic iterations, then rerun to the end:
  # SIGKILL, then real SIGTERM and SIGINT as schedulers and users send them. The stopped run is four processes,
  # each started afresh, so its equality with the uninterrupted run is also two deterministic runs agreeing.
  runs = [start(command(first, small_idx_dir, encoder_dir, *det))]
  kill_after_checkpoint(start(command(killed, small_idx_dir, encoder_dir, *det)), killed, 4, 0.0)
  assert checkpointed_critic_step(killed) >= 4  # The index still names a whole checkpoint.

  # SIGTERM, arriving once the checkpoint of critic step 6 is written: the step after it finishes, its checkpoint
  # and history.json are written, one line, status 143.
  status, err = signal_at_checkpoint(command(killed, small_idx_dir, encoder_dir, *det), 6, signal.SIGTERM)
  assert status == 143, err[-3000:]
  line = _stop_line(err, "SIGTERM: stopped after critic step")
  critic_step, g_step = (int(n) for n in re.search(r"critic step (\d+) \(generator step (\d+)\)", line).groups())
  assert critic_step == 7 and checkpointed_critic_step(killed) == critic_step, line
  assert f"ckpt-{critic_step} and history.json" in line
  assert max(g for g, _ in _read(killed, "history.json")["g_loss"]) == g_step
  assert not os.path.exists(os.path.join(killed, "summary.json"))  # The end-of-run work is the rerun's.

  # SIGINT past --preemption_grace_s (0: at once, mid-step or mid-save): status 130, the last complete
  # checkpoint in charge.
  status, err = signal_at_checkpoint(command(killed, small_idx_dir, encoder_dir, *det, "--preemption_grace_s=0"),
                                     critic_step + 2, signal.SIGINT)
  assert status == 130, err[-3000:]
  line = _stop_line(err, "SIGINT: the current step and its checkpoint did not finish within --preemption_grace_s=0")
  last = checkpointed_critic_step(killed)
  assert f"ckpt-{last} stays in charge" in line
  assert os.path.isfile(os.path.join(killed, "checkpoints", f"ckpt-{last}.index"))
  runs.append(start(command(killed, small_idx_dir, encoder_dir, *det)))
  for r in runs:
    finish(r)

  reference = _read(first, "summary.json")
  assert reference["generator_steps"] == G_STEPS
  summary = _read(killed, "summary.json")
  assert (summary["generator_steps"], summary["critic_steps"]) == (G_STEPS, reference["critic_steps"])

  # The stopped run logged every G step exactly once and continued the same trajectory: with op determinism,
  # the same losses at every G step, bit for bit.
  history = UNTIMED(_read(first, "history.json"))
  resumed = UNTIMED(_read(killed, "history.json"))
  assert set(resumed) == set(history)
  for key, points in history.items():
    assert [g for g, _ in resumed[key]] == [g for g, _ in points], key
    np.testing.assert_array_equal([v for _, v in resumed[key]], [v for _, v in points], err_msg=key)
  reference_weights = checkpoint_weights(os.path.join(first, "checkpoints"))
  assert reference_weights
  for name, value in checkpoint_weights(os.path.join(killed, "checkpoints")).items():
    np.testing.assert_allclose(value, reference_weights[name], rtol=1e-6, atol=1e-7, err_msg=name)
  # G's moving average resumed to the same values too.
  reference_ema = checkpoint_weights(os.path.join(first, "checkpoints"), network="generator_ema")
  resumed_ema = checkpoint_weights(os.path.join(killed, "checkpoints"), network="generator_ema")
  assert len(reference_ema) == 10 and set(resumed_ema) == set(reference_ema)  # 5 layers, kernel and bias each.
  for name, value in resumed_ema.items():
    np.testing.assert_allclose(value, reference_ema[name], rtol=1e-6, atol=1e-7, err_msg=name)
  # load_trained restores the average: saved again, it holds the checkpoint's values under the same keys...
  model = trained_run.load_trained(killed)
  assert model.sampling_generator is model.generator_ema
  saved = tf.train.Checkpoint(generator_ema=model.generator_ema).save(str(tmp_path / "reloaded" / "ckpt"))
  reloaded = checkpoint_weights(os.path.dirname(saved), network="generator_ema")
  assert set(reloaded) == set(resumed_ema)
  for name, value in reloaded.items():
    np.testing.assert_array_equal(value, resumed_ema[name], err_msg=name)
  # ...and it is not G.
  assert any(not np.array_equal(e.numpy(), g.numpy())
             for e, g in zip(model.generator_ema.weights, model.generator.weights))


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
  # Its first checkpoint (critic step 1, before the first G step) holds G's initial weights. It runs beside the
  # workers, which spend much of their time waiting for each other.
  single_run = start(command(single, small_idx_dir, encoder_dir, "--max_generator_steps=6", "--checkpoint_every=1",
                             "--keep_checkpoints=100", "--strategy=default"))

  workdir = str(tmp_path / "multi")  # Shared by both workers, as a GCS or NFS path would be.
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  workers = [start(command(workdir, small_idx_dir, encoder_dir, *steps, "--strategy=multi_worker"),
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
             for i in range(2)]
  for process in (*workers, single_run):
    finish(process, timeout=400)

  summary = _read(workdir, "summary.json")  # Written by the chief only.
  assert summary["replicas"] == 2 and summary["generator_steps"] == 6
  assert not os.path.exists(os.path.join(workdir, ".worker_tmp", "0"))
  chief = checkpoint_weights(os.path.join(workdir, "checkpoints"))
  other = checkpoint_weights(os.path.join(workdir, ".worker_tmp", "1"))
  alone = checkpoint_weights(os.path.join(single, "checkpoints"))
  assert set(chief) == set(other) == set(alone)
  for name in chief:  # All-reduced gradients: the workers hold the same weights.
    np.testing.assert_allclose(other[name], chief[name], rtol=1e-5, atol=1e-6, err_msg=name)
  # The same global batch, sharded: the single-process result up to float summation order.
  initial = checkpoint_weights(os.path.join(single, "checkpoints"), "ckpt-1")
  generator = [k for k in alone if k.startswith("generator_optimizer/")]
  change = sum(float(np.sum((alone[k] - initial[k]) ** 2)) for k in generator)
  mismatch = sum(float(np.sum((chief[k] - alone[k]) ** 2)) for k in generator)
  assert change > 0
  assert mismatch < 0.05 ** 2 * change, (mismatch, change)
  single_final = _read(single, "summary.json")["final"]
  for key, value in summary["final"].items():
    assert value == pytest.approx(single_final[key], rel=1e-3, abs=1e-5), key



# Removes keras_workaround's override from PPGN, so fit() runs Keras' own build step.
WITHOUT_THE_WORKAROUND = """
from ppgn_tf.training import keras_workaround
del keras_workaround.BuiltBeforeFit._maybe_symbolic_build
"""
KERAS_BUILD_FAILURE = "Attempt to convert a value (PerReplica"


def test_two_workers_fail_in_keras_build_step_without_the_workaround(tmp_path, small_idx_dir, encoder_dir):
  """keras_workaround.BuiltBeforeFit exists because Keras 3's fit() under MultiWorkerMirroredStrategy first
  all-reduces one batch eagerly to build the model, which fails on PPGN's batch. Two workers run train.py with
  the override removed and must fail so. The day this test fails, Keras fit() works without the override:
  delete keras_workaround.BuiltBeforeFit (and test_keras_hooks' pins of it)."""
  workdir = str(tmp_path / "multi")
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  workers = [start_with_prelude(command(workdir, small_idx_dir, encoder_dir, "--max_generator_steps=2",
                                        "--checkpoint_every=0", "--strategy=multi_worker"),
                                WITHOUT_THE_WORKAROUND,
                                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
             for i in range(2)]
  # A worker whose peer failed may wait for it in a collective: stop the other once one has failed.
  deadline = time.time() + 400
  while all(w.poll() is None for w in workers) and time.time() < deadline:
    time.sleep(0.5)
  errors = []
  for w in workers:
    try:
      errors.append(w.communicate(timeout=30)[1])
    except subprocess.TimeoutExpired:
      w.kill()
      errors.append(w.communicate()[1])
  statuses = [w.returncode for w in workers]
  assert any(status not in (0, None) for status in statuses), (
      "fit() ran on two workers without keras_workaround's override: delete the workaround", statuses)
  assert any(KERAS_BUILD_FAILURE in err for err in errors), [err[-2000:] for err in errors]
  assert not os.path.exists(os.path.join(workdir, "summary.json"))


def test_a_sigterm_to_one_worker_stops_every_worker_at_the_same_checkpoint(tmp_path, small_idx_dir, encoder_dir):
  """Schedulers may signal one host of several: both workers stop after the same step and both write that
  checkpoint (a save is collective). (Resuming from it is resuming from any checkpoint: tested above for one
  process; here it would cost two more worker start-ups.)"""
  run = ["--max_generator_steps=12", "--checkpoint_every=2", "--strategy=multi_worker"]
  workdir = str(tmp_path / "multi")
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}

  chief, other = (start(command(workdir, small_idx_dir, encoder_dir, *run),
                         TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
                   for i in range(2))
  status, other_err = signal_after_checkpoint(other, workdir, 2, signal.SIGTERM, timeout=400)
  chief_err = chief.communicate(timeout=400)[1]
  assert (status, chief.returncode) == (143, 143), other_err[-2000:] + chief_err[-2000:]
  line = _stop_line(chief_err, "SIGTERM: stopped after critic step")  # The chief learned it from its peer.
  _stop_line(other_err, "SIGTERM: stopped after critic step")
  critic_step = int(re.search(r"critic step (\d+)", line).group(1))
  assert checkpointed_critic_step(workdir) == critic_step
  worker_copy = tf.train.get_checkpoint_state(os.path.join(workdir, ".worker_tmp", "1"))
  assert worker_copy.model_checkpoint_path.endswith(f"ckpt-{critic_step}")
  assert critic_step < 3 + 2 * 11 and not os.path.exists(os.path.join(workdir, "summary.json"))  # Mid-run.
