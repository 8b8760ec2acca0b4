"""The PPGN trainer: the schedule as the model runs it, random critic choice, the six
experiments' flagfiles, resuming, and multi-replica equivalence."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ppgn_tf import hardware
from ppgn_tf.data import datasets as data
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.training import ppgn
from ppgn_tf.training.critic_schedule import CriticSchedule

from conftest import REPO
from tiny_networks import tiny_encoder

EXPERIMENTS = ("vanilla", "fc1_gan_only", "fc1_full", "fc1_no_gan", "combined", "randomized")
# Tiny width, short rounds: the flagfiles' logic at a cost of seconds.
TINY = ["--dim=2", "--batch_size=8", "--critic_iters=2", "--critic_iters_long=3", "--sample_per_class=0",
        "--long_rounds_until=1", "--verbose=0", "--checkpoint_every=0"]


def _model(encoder_dir=None, **overrides) -> ppgn.PPGN:
  """A tiny PPGN; with no encoder_dir, on a tiny encoder (for tests of counting, not of quality)."""
  config = ppgn.PPGNConfig(**{"dim": 2, "batch_size": 4, **overrides})
  encoder = encoder_lib.load_encoder(encoder_dir) if encoder_dir else tiny_encoder()
  return ppgn.compile_as_configured(ppgn.PPGN(encoder, config))


def _batches(small_idx_dir, batch_size, seed=0):
  train, _ = data.load_arrays(f"idx:{small_idx_dir}")
  return iter(data.make_pipeline(train, batch_size, seed=seed, repeat=True))


def _critic_steps_per_generator_step(model, batches, generator_steps):
  """Critic iterations before each of the next `generator_steps` G steps, as train_step runs them."""
  step = tf.function(model.train_step)
  counts, count = [], 0
  target = int(model.generator_steps.numpy()) + generator_steps
  while int(model.generator_steps.numpy()) < target:
    before = int(model.generator_steps.numpy())
    step(next(batches))
    count += 1
    if int(model.generator_steps.numpy()) != before:
      counts.append(count)
      count = 0
  return counts


def test_schedule_first_30_generator_steps(small_idx_dir):
  # The thesis' structure with long rounds of 20 instead of 100 (test_critic_schedule checks the 100s):
  # the model, not the schedule's arithmetic, is under test, at a fifth of the steps.
  model = _model(latent_critics=("fc1",), image_critic=False,
                 schedule=CriticSchedule(iterations=5, long_iterations=20, warmup_generator_steps=25, long_every=500))
  counts = _critic_steps_per_generator_step(model, _batches(small_idx_dir, 4), 30)
  assert counts == [20] * 25 + [5] * 5
  assert int(model.critic_steps.numpy()) == 25 * 20 + 5 * 5


def test_schedule_around_generator_step_500(small_idx_dir):
  model = _model(latent_critics=("fc1",), image_critic=False)
  model.generator_steps.assign(498)
  counts = _critic_steps_per_generator_step(model, _batches(small_idx_dir, 4), 4)
  # Rounds before G steps 499, 500, 501, 502: a long round when the count is 500.
  assert counts == [5, 5, 100, 5]


def test_random_selection_trains_one_critic_and_g_uses_it(small_idx_dir, encoder_dir):
  # A trained encoder: an untrained tiny one can give all-zero fc1 codes for a batch (dead ReLUs), and a critic of
  # all-zero inputs has no gradient, so a trained critic would look untouched (a flaky failure, seen once).
  model = _model(encoder_dir, latent_critics=("fc1",), critic_selection="random",
                 schedule=CriticSchedule(iterations=1000, long_iterations=1000,
                                         warmup_generator_steps=1, long_every=10**6))
  model.generator_steps.assign(1)  # Past the warm-up: short (random) rounds only.
  step = tf.function(model.train_step)
  batches = _batches(small_idx_dir, 4)
  trained_counts = {"image": 0, "fc1": 0}
  for _ in range(60):
    before = {n: [w.numpy().copy() for w in c.trainable_weights] for n, c in model.critics.items()}
    step(next(batches))
    changed = [n for n, c in model.critics.items()
               if any(not np.array_equal(a, w.numpy()) for a, w in zip(before[n], c.trainable_weights))]
    assert len(changed) == 1, changed
    trained_counts[changed[0]] += 1
  assert 15 <= trained_counts["image"] <= 45, trained_counts

  # G's adversarial term comes from the critic trained last only.
  images = next(batches)[0]
  real = model.encoder(images)
  fake = model.generator(real["fc1"])
  term_image = -float(tf.reduce_mean(model.critics["image"](fake)))
  logs_image = model._generator_replica_step(images, real, tf.constant([1.0, 0.0]))
  np.testing.assert_allclose(float(logs_image["l_gan"]), term_image, rtol=1e-4, atol=1e-6)
  fake = model.generator(real["fc1"])  # G moved: recompute.
  term_fc1 = -float(tf.reduce_mean(model.critics["fc1"](model.encoder(fake)["fc1"])))
  logs_fc1 = model._generator_replica_step(images, real, tf.constant([0.0, 1.0]))
  np.testing.assert_allclose(float(logs_fc1["l_gan"]), term_fc1, rtol=1e-4, atol=1e-6)


def test_long_rounds_train_every_critic_in_random_mode(small_idx_dir, encoder_dir):
  model = _model(encoder_dir, latent_critics=("fc1",), critic_selection="random")  # Trained: see above.
  step = tf.function(model.train_step)
  batches = _batches(small_idx_dir, 4)
  before = {n: c.trainable_weights[0].numpy().copy() for n, c in model.critics.items()}
  for _ in range(3):  # Inside the first (long) round.
    step(next(batches))
  for n, c in model.critics.items():
    assert not np.array_equal(before[n], c.trainable_weights[0].numpy()), n


def _parse_and_train(argv):
  """train.py's flag parsing and training, in this process."""
  sys.path.insert(0, REPO)
  import train as train_main
  from ppgn_tf.training import train_lib
  train_main.FLAGS.unparse_flags()
  train_main.FLAGS(["train.py"] + argv)
  config, options, run_end = train_main.config_from_flags()
  return config, train_lib.train(config, options, run_end)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_flagfile_runs_two_generator_steps(experiment, tmp_path, encoder_dir, small_idx_dir):
  workdir = tmp_path / experiment
  config, summary = _parse_and_train([
      f"--flagfile={REPO}/flags/{experiment}.cfg", f"--workdir={workdir}",
      f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}",
      "--max_generator_steps=2", *TINY])
  assert summary["generator_steps"] == 2
  assert summary["critic_steps"] == 3 + 2
  on_disk = json.loads((workdir / "summary.json").read_text())
  assert on_disk["generator_steps"] == 2 and on_disk["cpu"] == hardware.cpu_model()
  assert on_disk["gpus"] == hardware.gpu_models()  # [] here: no GPU.
  assert set(on_disk["final"]) >= {"g_loss", "l_x", "l_h", "l_gan"}
  assert all(np.isfinite(v) for v in on_disk["final"].values())
  expected_critics = {"vanilla": ["image"], "combined": ["image", "fc1"], "randomized": ["image", "fc1"]}
  assert on_disk["critics"] == expected_critics.get(experiment, ["fc1"])
  for name in ("wasserstein.png", "losses.png", "history.json", "config.json",
               "reconstructions/final.png", "reconstructions/epoch_001.png"):
    assert (workdir / name).is_file(), name
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints"))
  assert any((workdir / "tensorboard" / "generator_steps").iterdir())
  history = json.loads((workdir / "history.json").read_text())
  assert [g for g, _ in history["g_loss"]] == [1, 2]
  if experiment == "fc1_gan_only":
    assert (config.beta_x, config.beta_h, config.beta_gan) == (0.0, 0.0, 1.0)
    assert on_disk["final"]["g_loss"] == pytest.approx(on_disk["final"]["l_gan"], rel=1e-5)
  if experiment == "fc1_no_gan":
    assert config.beta_gan == 0.0
    assert on_disk["final"]["l_gan"] == 0.0
    assert on_disk["final"]["w_fc1"] != 0.0  # D_fc1 is still trained and tracked.
  if experiment == "randomized":
    assert config.critic_selection == "random"


def test_rerun_continues_from_checkpoint(tmp_path, encoder_dir, small_idx_dir):
  common = [f"--flagfile={REPO}/flags/combined.cfg", f"--workdir={tmp_path / 'run'}",
            f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}", *TINY]
  _, first = _parse_and_train(common + ["--max_generator_steps=2"])
  _, second = _parse_and_train(common + ["--max_generator_steps=4"])
  assert first["generator_steps"] == 2 and second["generator_steps"] == 4
  assert second["critic_steps"] == first["critic_steps"] + 2 * 2
  history = json.loads((tmp_path / "run" / "history.json").read_text())
  assert [g for g, _ in history["l_x"]] == [1, 2, 3, 4]


def test_rerun_with_other_configuration_is_refused(tmp_path, encoder_dir, small_idx_dir):
  common = [f"--workdir={tmp_path / 'run'}", f"--dataset=idx:{small_idx_dir}",
            f"--encoder_dir={encoder_dir}", "--max_generator_steps=1", *TINY]
  _parse_and_train([f"--flagfile={REPO}/flags/vanilla.cfg", *common])
  with pytest.raises(ValueError, match="image_critic"):
    _parse_and_train([f"--flagfile={REPO}/flags/fc1_full.cfg", *common])


def test_mirrored_two_replicas_equal_single_device(tmp_path, encoder_dir, small_idx_dir):
  """Runs in a subprocess: logical CPU devices must be set before TensorFlow starts."""
  script = os.path.join(REPO, "tests", "mirrored_equivalence.py")
  out = subprocess.run([sys.executable, script, encoder_dir, small_idx_dir],
                       capture_output=True, text=True, timeout=600, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": REPO})
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["replicas"] == [1, 2]
  for key, (single, mirrored) in result["logs"].items():
    assert mirrored == pytest.approx(single, rel=1e-3, abs=1e-5), key
  # Weights moved by training, and moved the same way on both.
  assert result["generator_change"] > 0
  assert result["generator_mismatch"] < 0.05 * result["generator_change"]
  assert result["critic_mismatch"] < 0.05 * result["critic_change"]
  # G's moving average too; it is not G itself, and both devices hold the same copy of it.
  assert result["ema_change"] > 0 and result["ema_lag"] > 0
  assert result["ema_mismatch"] < 0.05 * result["ema_change"]
  assert result["ema_copy_mismatch"] == 0


def test_log_gan_loss_trains(tmp_path, encoder_dir, small_idx_dir):
  _, summary = _parse_and_train([
      f"--flagfile={REPO}/flags/combined.cfg", f"--workdir={tmp_path / 'log'}", "--gan_loss=log",
      f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}", "--max_generator_steps=1", *TINY])
  final = summary["final"]
  assert summary["generator_steps"] == 1
  # Non-saturating terms: -log D(fake) > 0 for each critic; critic losses are sums of two softplus terms.
  assert final["l_gan"] > 0
  assert final["d_loss_image"] > 0 and final["d_loss_fc1"] > 0


def test_divergence_stops_with_the_term_and_keeps_a_good_checkpoint(tmp_path, encoder_dir, small_idx_dir, capsys):
  from ppgn_tf.sampling import trained_run
  import train as train_main
  workdir = tmp_path / "nan"
  argv = [f"--flagfile={REPO}/flags/vanilla.cfg", f"--workdir={workdir}", f"--dataset=idx:{small_idx_dir}",
          f"--encoder_dir={encoder_dir}", "--max_generator_steps=50", "--learning_rate=1e30",
          *[a for a in TINY if not a.startswith("--checkpoint_every")], "--checkpoint_every=1"]
  train_main.FLAGS.unparse_flags()
  train_main.FLAGS(["train.py"] + argv)
  assert train_main.main(["train.py"]) == 1  # train.py's exit status.
  errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("train.py: error:")]
  assert len(errors) == 1, errors
  assert re.search(r"(loss term \w+ is (nan|inf|-inf)|weights \S+ became NaN or Inf) at generator step \d+",
                   errors[0]), errors[0]
  model = trained_run.load_trained(str(workdir))  # The latest checkpoint restores...
  for w in model.generator.weights + model.critics["image"].weights:
    assert np.all(np.isfinite(w.numpy())), w.path  # ...and holds no NaN or Inf.


def test_bf16_losses_follow_fp32(tmp_path, encoder_dir, small_idx_dir):
  """--precision=bf16 (mixed bfloat16 G and critics) takes the fp32 run's path, to bfloat16's precision."""
  runs = {}
  for name in ("fp32", "bf16"):
    _, summary = _parse_and_train([
        f"--flagfile={REPO}/flags/combined.cfg", f"--workdir={tmp_path / name}", f"--precision={name}",
        f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}", "--max_generator_steps=4", *TINY])
    runs[name] = json.loads((tmp_path / name / "history.json").read_text())
    assert summary["generator_steps"] == 4
  for key in ("l_x", "l_h", "w_image", "w_fc1"):
    fp32 = np.array([v for _, v in runs["fp32"][key]])
    bf16 = np.array([v for _, v in runs["bf16"][key]])
    assert np.all(np.isfinite(bf16)), key
    # bfloat16 keeps 8 bits of mantissa: per-step values within a few percent of the curve's scale.
    np.testing.assert_allclose(bf16, fp32, atol=0.05 * np.max(np.abs(fp32)) + 1e-3, err_msg=key)
  # ...and it did compute in bfloat16: the values are not fp32's to the bit.
  assert runs["bf16"]["l_x"] != runs["fp32"]["l_x"]


def test_a_log_file_gets_one_line_per_epoch_with_the_losses(tmp_path, encoder_dir, small_idx_dir):
  """Under a scheduler or `> log` (stdout not a terminal) train.py writes no progress bar: one plain line per epoch
  with every loss, not one line of carriage returns and escape codes per epoch."""
  log = tmp_path / "log"
  argv = [sys.executable, "train.py", f"--flagfile={REPO}/flags/combined.cfg", f"--workdir={tmp_path / 'run'}",
          f"--dataset=idx:{small_idx_dir}", f"--encoder_dir={encoder_dir}", "--epochs=2", "--precision=fp32",
          *[a for a in TINY if not a.startswith("--verbose")]]  # The default: as on a scheduler.
  with open(log, "w") as stdout:
    result = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=600, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO})
  assert result.returncode == 0, result.stderr[-3000:]
  text = log.read_text()
  assert "\r" not in text and "\x1b" not in text and "\b" not in text
  lines = text.splitlines()
  assert lines and max(len(l) for l in lines) < 2000
  epochs = [l for l in lines if l.startswith("epoch ")]
  assert [l.split(":")[0] for l in epochs] == ["epoch 1/2", "epoch 2/2"], lines
  for name in ("g_loss", "l_x", "l_h", "l_gan", "d_loss_image", "w_image", "gp_image", "d_loss_fc1", "w_fc1"):
    assert all(re.search(rf"\b{name} -?[0-9.]+(e[-+]\d+)?\b", l) for l in epochs), name
  # 512 images, batch 8: 64 critic iterations per epoch, the first 3 of them a long round.
  assert "critic step 64," in epochs[0] and "critic step 128," in epochs[1]
  assert f"generator step {1 + (64 - 3) // 2}," in epochs[0]


@pytest.mark.parametrize("verbose, terminal, shown", [(None, True, 1), (None, False, 2), (0, True, 0), (2, True, 2)])
def test_the_progress_bar_is_for_terminals(verbose, terminal, shown):
  from ppgn_tf.training import train_lib

  class Stdout:
    def isatty(self):
      return terminal

  assert train_lib.progress_display(verbose, Stdout()) == shown


def test_every_training_flag_defaults_to_its_dataclass_field(tmp_path):
  """train.py's flags with nothing given make exactly the dataclasses' defaults (PPGNConfig, CriticSchedule,
  RunOptions, RunEnd), and every flag of the program sets one field: a default is stated once."""
  import dataclasses

  from ppgn_tf.cli import flag_reference
  from ppgn_tf.sampling.run_end import RunEnd
  from ppgn_tf.training import train_lib
  sys.path.insert(0, REPO)
  import train as train_main
  from ppgn_tf.cli import train as program
  assert sorted(f["name"] for f in flag_reference.read_flags()["train"]) == sorted(program.FIELD_OF)
  workdir = str(tmp_path / "run")
  train_main.FLAGS.unparse_flags()
  train_main.FLAGS(["train.py", f"--workdir={workdir}"])
  config, options, run_end = train_main.config_from_flags()
  assert config == ppgn.PPGNConfig()
  assert dataclasses.replace(options, command=None) == train_lib.RunOptions(workdir=workdir)
  assert run_end == RunEnd()
  for name, (cls, field) in program.FIELD_OF.items():
    assert dataclasses.is_dataclass(cls) and field in {f.name for f in dataclasses.fields(cls)}, name


class _Counters:
  """What ProgressLog reads of a PPGN: its step counters and latest losses."""

  def __init__(self):
    self.critic_steps = tf.Variable(0, dtype=tf.int64)
    self.generator_steps = tf.Variable(0, dtype=tf.int64)
    self.latest = {"g_loss": tf.constant(1.5)}


def _progress_lines(critic_steps_per_epoch, seconds_per_critic_step, critic_steps_per_generator_step, **limits):
  """The lines ProgressLog writes over one epoch, on a clock that moves `seconds_per_critic_step` a step."""
  import io
  from ppgn_tf.training import callbacks as callbacks_lib
  clock = [0.0]
  stream = io.StringIO()
  log = callbacks_lib.ProgressLog(1, 32, stream=stream, clock=lambda: clock[0], **limits)
  model = _Counters()
  log.set_model(model)
  log.on_epoch_begin(0)
  for batch in range(critic_steps_per_epoch):
    clock[0] += seconds_per_critic_step
    model.critic_steps.assign_add(1)
    if (batch + 1) % critic_steps_per_generator_step == 0:
      model.generator_steps.assign_add(1)
    log.on_train_batch_end(batch, {"g_steps": model.generator_steps.numpy()})
  log.on_epoch_end(0)
  return stream.getvalue().splitlines()


def test_a_log_without_a_terminal_hears_from_a_long_epoch_every_minute():
  """60,000 images at batch 32: an epoch of 1,875 critic steps, 0.35 s each (11 minutes, 375 G steps at 5 critic
  steps each): a line at least every minute, not only at the epoch's end."""
  lines = _progress_lines(1875, 0.35, 5)
  progress = [l for l in lines if l.startswith("progress (epoch 1/1): ")]
  assert re.fullmatch(r"epoch 1/1: generator step 375, critic step 1875, 656\.[23] s, 91 images/s; g_loss 1\.5",
                      lines[-1]), lines[-1]
  assert len(progress) == 10, lines  # 656 s: one line every 172 critic steps (60.2 s).
  seconds = [float(re.search(r", ([0-9.]+) s,", l).group(1)) for l in progress]
  assert all(60 <= s < 60.4 for s in seconds), seconds
  assert "critic step 172," in progress[0] and "generator step 34," in progress[0]


def test_a_fast_run_logs_every_hundred_generator_steps():
  """Fast steps: a line every 100 G steps, well before a minute passes."""
  lines = _progress_lines(1875, 0.01, 5)
  progress = [l for l in lines if l.startswith("progress")]
  assert [re.search(r"generator step (\d+),", l).group(1) for l in progress] == ["100", "200", "300"], lines
  assert lines[-1].startswith("epoch 1/1: generator step 375, critic step 1875, 18.8 s")
  quiet = _progress_lines(1875, 0.01, 5, seconds=1e9, generator_steps=10**9)
  assert len(quiet) == 1 and quiet[0].startswith("epoch 1/1:")  # Only the epoch's line when neither bound is met.
