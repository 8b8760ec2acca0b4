"""The benchmark in its tiny mode (so it cannot rot) and the analytic FLOP counts against hand calculations."""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys

import keras
import pytest

from ppgn_tf import hardware
from ppgn_tf import precision
from ppgn_tf.perf import bench
from ppgn_tf.perf import flops

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
  from ppgn_tf.model.generator import build_generator
  table = dict(flops.layer_table(build_generator((64,), 64)))
  assert table["deconv4"] == 2 * 13 * 13 * 7 * 7 * 256 * 256
  assert sum(table.values()) == 1_675_896_832


def test_tiny_benchmark_writes_every_key(tmp_path):
  """The default --precision=auto: bf16 where the CPU has AMX, fp32 elsewhere, logged with why; the CPU's kind printed."""
  output = tmp_path / "bench.json"
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.bench", "--config=tiny", f"--output={output}",
                           "--experiments=randomized,fc1"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "G iter s" in result.stdout and "batched" in result.stdout
  results = json.loads(output.read_text())
  for key in KEYS:
    assert isinstance(results[key], float) and math.isfinite(results[key]), key
    # The G step's share is its call's time beyond a critic iteration's: at this size, within the timing noise.
    assert results[key] > 0 or key == "generator_step_s", key
  kind = precision.cpu_kind(hardware.kernel_cpu_flags())
  expected = "bf16" if kind == "amx" else "fp32"
  assert f"CPU kind for --precision=auto: {kind} (" in result.stdout
  assert results["precisions"] == [expected] and list(results["by_precision"]) == [expected]
  assert re.search(rf"bench: precision {expected} \(auto: ", result.stderr), result.stderr[-2000:]
  peaks = results["peaks"]
  assert peaks["probe"]["fp32"]["repeats"] >= 5
  assert peaks["probe"]["fp32"]["best_flops"] >= peaks["probe"]["fp32"]["median_flops"] > 0
  assert results["cpu"]["flags"] and results["cpu"]["physical_cores"] >= 1
  if results["cpu"]["mhz"]:
    assert peaks["measured_fp32_of_theoretical"] == pytest.approx(
        peaks["measured_fp32"] / peaks["theoretical_fp32"])
  head = results["experiments"]["randomized"]
  assert head["g_iteration_of_measured_peak"] == pytest.approx(head["g_iteration_flops_per_s"] / peaks[
      f"measured_{expected}"])
  assert set(results["experiments"]) == {"randomized", "fc1"} and results["headline_experiment"] == "randomized"
  randomized, fc1_only = results["experiments"]["randomized"], results["experiments"]["fc1"]
  # Random selection trains D or D_fc1 (p = 0.5): its useful work lies between D_fc1 alone and both.
  assert fc1_only["critic_iteration_flop"] < randomized["critic_iteration_flop"]
  # The machine's load around the run, from os.getloadavg(): the benchmark itself kept a core busy for seconds.
  assert results["load_start"]["time"] <= results["load_end"]["time"]
  assert results["load_end"]["load_1m"] > 0
  # The two experiments were timed in interleaved rounds, each round's seconds kept for pairing by round.
  rounds = results["by_precision"][expected]["experiment_rounds"]
  repeats = results["bench"]["repeats"]
  assert rounds["order"] == [["randomized", "fc1"] if r % 2 == 0 else ["fc1", "randomized"] for r in range(repeats)]
  for name in ("randomized", "fc1"):
    assert len(rounds["g_iteration_s"][name]) == repeats
    assert results["experiments"][name]["g_iteration_s"] == pytest.approx(
        statistics.median(rounds["g_iteration_s"][name]))


def test_load_info_reports_the_load_averages(monkeypatch):
  monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 1.25, 2.0))
  info = bench.load_info()
  assert (info["load_1m"], info["load_5m"], info["load_15m"]) == (0.5, 1.25, 2.0)
  assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", info["time"])


def _tiny_export(base, precision, max_batch):
  """An untrained tiny G and E exported with 2 steps of the thesis' sampler."""
  from ppgn_tf.model.generator import build_generator
  from ppgn_tf.sampling import serving
  from ppgn_tf.sampling.sampler_config import SamplerConfig
  from tiny_networks import made_up_code_prior, tiny_encoder
  encoder = tiny_encoder()
  config = SamplerConfig(steps=2)
  archive = serving.build_archive(build_generator((64,), 2), encoder, config, prior=made_up_code_prior((64,)),
                                  precision=precision, max_batch=max_batch)
  return serving.write(archive, str(base))


def test_serving_mode_times_exports_and_writes_every_key(tmp_path):
  """--serving: samples per second of each export's serving_default per batch size; a batch above max_batch goes
  in requests of at most max_batch rows (not a timing assertion: the keys and the request counts)."""
  paths = [_tiny_export(tmp_path / "fp32", "fp32", 2), _tiny_export(tmp_path / "bf16", "bf16", 2)]
  output = tmp_path / "serving.json"
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.bench", "--serving", f"--saved_models={','.join(paths)}",
                           "--serving_batches=1,3", "--repeats=2", f"--output={output}"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "samples/s" in result.stdout
  results = json.loads(output.read_text())
  assert set(results["exports"]) == {"fp32", "bf16"} and results["batches"] == [1, 3]
  for label, export in results["exports"].items():
    assert export["precision"] == label and export["max_batch"] == 2 and export["settings"]["steps"] == 2
    assert [b["requests"] for b in export["by_batch"].values()] == [1, 2]  # 3 rows: requests of 2 and 1.
    for b in export["by_batch"].values():
      assert len(b["seconds"]) == 2 and b["median_s"] > 0
      assert b["samples_per_s"] == pytest.approx(b["batch"] / b["median_s"])
  assert set(results["speed_vs_fp32"]["bf16"]) == {"1", "3"}
  assert results["cpu"]["model_name"] and results["method"] and results["command"].startswith("python -m ppgn_tf.bench")
  missing = subprocess.run([sys.executable, "-m", "ppgn_tf.bench", "--serving", f"--saved_models={tmp_path / 'none'}"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
  assert missing.returncode == 1
  assert missing.stderr.strip().splitlines()[-1] == (f"bench: error: {tmp_path / 'none'}: no SavedModel here (no "
                                                      "saved_model.pb, no numbered version holding one)")


def test_peer_mode_times_the_pytorch_restatement_in_interleaved_rounds(tmp_path):
  pytest.importorskip("torch")  # An optional dependency: pip install torch.
  output = tmp_path / "bench.json"
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.bench", "--config=tiny", f"--output={output}",
                           "--experiments=vanilla", "--precision=fp32,bf16", "--peer=torch", "--repeats=3",
                           "--sampler_steps=1", "--peer_threads=0,1"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  results = json.loads(output.read_text())
  peer = results["peer"]
  assert peer["torch"] and set(peer["experiments"]) == {"vanilla"}
  for key in ("critic_iteration_s", "generator_step_s", "g_iteration_s"):
    assert math.isfinite(peer["experiments"]["vanilla"][key]) and peer["experiments"]["vanilla"][key] > 0
  assert math.isfinite(peer["experiments"]["vanilla"]["final_losses"]["g_loss"])
  # Timed with PyTorch's default thread count and with one; each quantity keeps the faster.
  assert "1" in peer["by_threads"] and len(peer["by_threads"]) in (1, 2)
  fastest = min(part["experiments"]["vanilla"]["g_iteration_s"] for part in peer["by_threads"].values())
  assert peer["experiments"]["vanilla"]["g_iteration_s"] == fastest

  # Every round timed each contestant once, in turn, each round starting one contestant later.
  rounds = results["paired_rounds"]["experiments"]["vanilla"]
  contestants = ["fp32", "bf16", *(f"peer_{n}_threads" for n in peer["by_threads"])]
  assert rounds["order"] == [contestants[r % len(contestants):] + contestants[:r % len(contestants)]
                             for r in range(3)]
  assert rounds["peer"] == f"peer_{peer['experiments']['vanilla']['threads']}_threads"
  peer_s = rounds["g_iteration_s"][rounds["peer"]]
  assert peer["experiments"]["vanilla"]["g_iteration_s"] == pytest.approx(statistics.median(peer_s))
  for p in ("fp32", "bf16"):
    ours_s = rounds["g_iteration_s"][p]
    assert len(ours_s) == len(peer_s) == 3
    assert results["by_precision"][p]["experiments"]["vanilla"]["g_iteration_s"] == pytest.approx(
        statistics.median(ours_s))
    # The ratio pairs each round's own seconds; the headline ratio is their median.
    paired = rounds["ratio_to_peer"][p]
    assert paired["per_round"] == pytest.approx([ours / theirs for ours, theirs in zip(ours_s, peer_s)])
    assert paired["median"] == pytest.approx(statistics.median(paired["per_round"]))
    assert (paired["min"], paired["max"]) == (min(paired["per_round"]), max(paired["per_round"]))
    assert results["ratio_to_peer"][p]["vanilla_g_iteration"] == paired["median"]
    assert results["ratio_to_peer"][p]["sampler_batch1"] > 0
  assert "interleaved" in results["paired_rounds"]["method"]
  assert "paired within" in results["ratio_to_peer_method"]["g_iteration"]
  assert "block-timed" in results["ratio_to_peer_method"]["sampler"]
  assert "fp32: vanilla_g_iteration" in result.stdout and "paired within interleaved rounds" in result.stdout


def test_interleaved_rounds_rotate_the_first_contestant():
  from ppgn_tf.perf import timing
  calls = []

  class Contestant:
    def __init__(self, name):
      self.name = name

    def one_round(self):
      calls.append(self.name)
      return len(calls)

  rounds, order = timing.interleave({name: Contestant(name) for name in "abc"}, repeats=4)
  assert order == [list("abc"), list("bca"), list("cab"), list("abc")]
  assert calls == [name for turn in order for name in turn]
  assert rounds == {"a": [1, 6, 8, 10], "b": [2, 4, 9, 11], "c": [3, 5, 7, 12]}


def test_paired_ratio_is_per_round():
  paired = bench.paired_ratio([1.0, 4.0, 3.0], [2.0, 2.0, 4.0])
  assert paired == {"per_round": [0.5, 2.0, 0.75], "median": 0.75, "min": 0.5, "max": 2.0}
  with pytest.raises(ValueError):  # Rounds are paired one to one.
    bench.paired_ratio([1.0, 2.0], [1.0])


def test_peer_without_torch_is_one_line_before_any_work(tmp_path):
  blocker = tmp_path / "no_torch" / "torch"  # Shadows any installed torch with one that cannot be imported.
  blocker.mkdir(parents=True)
  (blocker / "__init__.py").write_text("raise ImportError('No module named torch')\n")
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.bench", "--config=tiny", "--peer=torch"],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{REPO}"})
  assert result.returncode == 1
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert lines[-1].startswith("bench: error: --peer=torch needs PyTorch") and "pip install torch" in lines[-1]
  assert "Peak" not in result.stdout


@pytest.mark.skipif(not hardware.cpu_flags() & set(hardware.NATIVE_BF16_CPU_FLAGS),
                    reason="the refusal is for CPUs with native bf16 that ONEDNN_MAX_CPU_ISA caps away")
def test_bf16_capped_away_by_onednn_isa_exits_with_one_line():
  result = subprocess.run([sys.executable, "-m", "ppgn_tf.bench", "--config=tiny", "--precision=fp32,bf16"],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
  assert result.returncode == 1
  lines = [l for l in result.stderr.splitlines() if l.startswith("bench:")]
  assert lines == [lines[-1]] and lines[-1].startswith("bench: error: --precision=bf16 with ONEDNN_MAX_CPU_ISA=AVX2")
  assert "Peak" not in result.stdout


def test_theoretical_peak_from_cpuinfo():
  cpuinfo = "\n\n".join(
      f"processor\t: {i}\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t: {i // 2}\ncpu MHz\t\t: 2500.000\n"
      f"flags\t\t: fpu sse2 avx avx2 fma" for i in range(4))  # 2 cores with 2 hyper-threads each.
  info = bench.cpu_info(cpuinfo)
  assert info["model_name"] == "Test CPU" and info["physical_cores"] == 2 and info["logical_cpus"] == 4
  peak = bench.theoretical_peak(info)
  assert peak["fp32_flops"] == 2 * 8 * 2 * 2 * 2.5e9  # cores x AVX2 lanes x FMA units x 2 x clock.
  assert peak["bf16_flops"] is None
  amx = bench.theoretical_peak({**info, "flags": info["flags"] + ["avx512f", "avx512_bf16", "amx_bf16"]})
  assert amx["fp32_flops"] == 2 * 16 * 2 * 2 * 2.5e9 and amx["bf16_flops"] == 2 * 1024 * 2.5e9
  assert bench.theoretical_peak({**info, "mhz": None})["fp32_flops"] is None
  # ONEDNN_MAX_CPU_ISA=AVX2 on that AMX machine: AVX2's 8 lanes, no native bf16.
  capped = bench.theoretical_peak({**info, "flags": info["flags"] + ["avx512f", "avx512_bf16", "amx_bf16"]},
                                  isa_cap="AVX2")
  assert capped["fp32_flops"] == peak["fp32_flops"] and capped["bf16_flops"] is None


@pytest.mark.parametrize("args, message", [
    (["--config=tiny", "--repeats=0"], "--repeats must be >= 1"),
    (["--config=tiny", "--experiments=fancy"], "--experiments"),
    (["--config=tiny", "--output=/no/such/dir/x.json"], "no such directory"),
    (["--config=tiny", "--precision=fp16"], "--precision=fp16: choose from auto, fp32, bf16"),
    (["--config=tiny", "--peer_threads=two"], "--peer_threads: expected whole numbers"),
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


def test_rows_go_in_parts_of_at_most_the_limit():
  """batching.row_slices: how sample_lib.call_in_requests splits a batch past an export's max_batch, and how many
  requests the serving benchmark reports for it."""
  from ppgn_tf import batching
  as_ranges = lambda rows, size: [(s.start, s.stop) for s in batching.row_slices(rows, size)]
  assert as_ranges(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
  assert as_ranges(9, 3) == [(0, 3), (3, 6), (6, 9)]
  assert as_ranges(3, 16) == [(0, 3)] and as_ranges(100, None) == [(0, 100)] and as_ranges(7, 0) == [(0, 7)]
  assert as_ranges(0, 3) == [(0, 0)]  # No rows: one empty request, as a client would send.
