"""train.py as users run it, in a subprocess: start, SIGKILL after a checkpoint, finish, read checkpoints.

Shared by test_reliability.py and test_generator_ema.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

from conftest import REPO

G_STEPS = 8
# D and D_fc1, 2 critic iterations per G step after a 1-round warm-up of 3. fp32 whatever the CPU: these
# tests compare runs to each other at float32 tolerances, not the precision auto would pick.
TINY = ["--precision=fp32", "--dim=2", "--batch_size=8", "--critic_iters=2",
        "--critic_iters_long=3", "--long_rounds_until=1", "--verbose=0", "--sample_per_class=0",
        f"--max_generator_steps={G_STEPS}"]


def command(workdir, small_idx_dir, encoder_dir, *extra):
  """train.py on the tiny combined run; `extra` flags come last, so they override TINY's."""
  return [sys.executable, "train.py", "--flagfile=flags/combined.cfg", f"--workdir={workdir}",
          f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}", *TINY, *extra]


def env(**extra):
  environment = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
  environment.pop("TF_CONFIG", None)
  return {**environment, **extra}


def start(command, **extra_env):
  return subprocess.Popen(command, cwd=REPO, env=env(**extra_env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
  out, err = process.communicate(timeout=timeout)
  assert process.returncode == 0, err[-3000:]
  return out


def checkpointed_critic_step(workdir) -> int:
  """The critic step of the newest checkpoint the index names (-1: none yet)."""
  try:
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
  except Exception:  # Being replaced at this moment.
    return -1
  return int(state.model_checkpoint_path.rsplit("-", 1)[1]) if state else -1


def signal_after_checkpoint(process, workdir, critic_step, signum, extra_delay=0.0, timeout=240):
  """Sends `signum` to `process` `extra_delay` s after it checkpointed `critic_step` (or a later one);
  returns its (exit status, stderr)."""
  deadline = time.time() + timeout
  while checkpointed_critic_step(workdir) < critic_step:
    assert process.poll() is None, "the run ended before the signal: " + process.stderr.read()[-2000:]
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.02)
  time.sleep(extra_delay)
  process.send_signal(signum)
  _, err = process.communicate(timeout=timeout)
  return process.returncode, err


def start_with_prelude(command, prelude, prelude_args=(), **extra_env):
  """train.py's `command` as `python -c SCRIPT PRELUDE_ARGS... FLAGS...`: `prelude` (Python, which pops its
  arguments from sys.argv) runs in the process first, then train.py's main."""
  assert command[1] == "train.py", command
  script = f"{prelude}\nimport train\nfrom absl import app\napp.run(train.main)\n"
  return start([command[0], "-c", script, *map(str, prelude_args), *command[2:]], **extra_env)


# Sends the process SIGNUM (a real signal, through the OS, to its own handlers) right after it saved the
# checkpoint of CRITIC_STEP: the signal comes at a checkpoint event, not when a poll of the checkpoint directory
# happens to see one.
SIGNAL_ITSELF = """
import os, sys
from ppgn_tf.training import callbacks
critic_step, signum = int(sys.argv.pop(1)), int(sys.argv.pop(1))
save = callbacks.PeriodicCheckpoint._save

def save_then_signal(self):
  save(self)
  if int(self.model.critic_steps.numpy()) == critic_step:
    os.kill(os.getpid(), signum)

callbacks.PeriodicCheckpoint._save = save_then_signal
"""


def signal_at_checkpoint(command, critic_step, signum, timeout=240):
  """Runs train.py's `command`, which sends itself `signum` once it checkpointed `critic_step`; returns its (exit
  status, stderr)."""
  process = start_with_prelude(command, SIGNAL_ITSELF, (critic_step, int(signum)))
  _, err = process.communicate(timeout=timeout)
  return process.returncode, err


def kill_after_checkpoint(process, workdir, critic_step, extra_delay, timeout=240):
  """SIGKILLs `process` `extra_delay` s after it checkpointed `critic_step`: wherever it then is,
  mid-step or mid-save."""
  returncode, _ = signal_after_checkpoint(process, workdir, critic_step, signal.SIGKILL, extra_delay, timeout)
  assert returncode == -signal.SIGKILL


def checkpoint_weights(checkpoint_dir, name=None, network=None) -> dict:
  """Network weights of the newest checkpoint (or the one called `name`), by checkpoint key.

  With `network` (a checkpoint item, e.g. "generator_ema"): that network's variables. Without: the
  trained networks' weights, which Keras 3 networks expose through their optimizers in the object graph.
  """
  path = os.path.join(checkpoint_dir, name) if name else tf.train.latest_checkpoint(checkpoint_dir)
  reader = tf.train.load_checkpoint(path)
  if network:
    wanted = lambda k: k.startswith(f"{network}/") and k.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
  else:
    wanted = lambda k: "/_trainable_variables/" in k
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if wanted(k)}
