"""The benchmark in its tiny mode (so it cannot rot) and the analytic FLOP counts against hand calculations."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import keras
import pytest

from ppgn_tf import flops

from conftest import REPO

KEYS = ("critic_iteration_s", "generator_step_s", "g_iteration_s", "sampler_s_per_sample_batch1",
        "sampler_s_per_sample_batched", "peak_fp32_flops", "g_iteration_flop_fraction", "sampler_flop_fraction",
        "peak_rss_mb")


def test_layer_flops_match_hand_counts():
  x = keras.Input((5, 5, 2))
  conv = keras.layers.Conv2D(3, 2, name="conv")(x)  # 4x4x3 outputs, each 2*2*2 multiply-adds.
  deconv = keras.layers.Conv2DTranspose(4, 3, name="deconv")(conv)  # 4x4x3 inputs, each scatters 3*3*4.
  dense = keras.layers.Dense(7, name="dense")(keras.layers.Flatten()(deconv))  # 6*6*4 = 144 -> 7.
  model = keras.Model(x, dense)
  assert dict(flops.layer_table(model)) == {
      "conv": 2 * (4 * 4) * (2 * 2 * 2) * 3,
      "deconv": 2 * (4 * 4) * (3 * 3 * 3) * 4,
      "dense": 2 * 144 * 7,
  }
  assert flops.forward_flops(model) == 768 + 3456 + 2016


def test_algorithm_counts_compose_forward_counts():
  net = flops.NetworkFlops(generator=10, encoder=3, critics={"image": 5, "fc1": 1})
  # Per example: G forward, E forward (a latent critic), each critic 2 * TRAIN + GP = 10 forwards.
  assert flops.critic_iteration(net, batch=2) == 2 * (10 + 3 + 10 * 5 + 10 * 1)
  assert flops.generator_step(net, batch=2) == 2 * (3 * 10 + 2 * 3 + 2 * 5 + 2 * 1)
  assert flops.generator_iteration(net, batch=2) == 5 * 146 + 96 - 2 * 13
  assert flops.sampler_per_chain(net, steps=200) == 401 * 13
  vanilla = flops.NetworkFlops(generator=10, encoder=3, critics={"image": 5})
  assert flops.critic_iteration(vanilla, batch=1) == 10 + 50  # No encoder pass without a latent critic.


def test_paper_generator_forward_flops():
  """G at DIM 64: deconv4 alone is 13*13 inputs * 7*7 * 256 * 256 multiply-adds."""
  from ppgn_tf.generator import build_generator
  table = dict(flops.layer_table(build_generator((64,), 64)))
  assert table["deconv4"] == 2 * 13 * 13 * 7 * 7 * 256 * 256
  assert sum(table.values()) == 1_675_896_832


def test_tiny_benchmark_writes_every_key(tmp_path):
  output = tmp_path / "bench.json"
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.bench", "--config=tiny", f"--output={output}",
                           "--experiments=randomized,fc1"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "G iter s" in result.stdout and "batched" in result.stdout
  results = json.loads(output.read_text())
  for key in KEYS:
    assert isinstance(results[key], float) and math.isfinite(results[key]) and results[key] > 0, key
  assert set(results["experiments"]) == {"randomized", "fc1"} and results["headline_experiment"] == "randomized"
  randomized, fc1_only = results["experiments"]["randomized"], results["experiments"]["fc1"]
  # Random selection trains D or D_fc1 (p = 0.5): its useful work lies between D_fc1 alone and both.
  assert fc1_only["critic_iteration_flop"] < randomized["critic_iteration_flop"]
  assert results["load_start"]["load_1m"] >= 0


@pytest.mark.parametrize("args, message", [
    (["--config=tiny", "--repeats=0"], "--repeats must be >= 1"),
    (["--config=tiny", "--experiments=fancy"], "--experiments"),
    (["--config=tiny", "--output=/no/such/dir/x.json"], "no such directory"),
])
def test_bad_flags_exit_with_one_line(args, message):
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.bench", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith("bench: error: ")
  assert message in result.stderr


def test_random_selection_counts_each_critic_by_its_share():
  net = flops.NetworkFlops(generator=100, encoder=10, critics={"image": 7, "fc1": 3})
  # Every critic: G(E(x)) and E(G(E(x))) once, then 10 F per critic (2 x train 3F + penalty 4F).
  assert flops.critic_iteration(net, 2) == 2 * (110 + 10 * 7 + 10 * 3)
  assert flops.critic_iteration(net, 2, shares={"image": 0.5, "fc1": 0.5}) == 2 * (110 + 5 * 7 + 5 * 3)
