"""The benchmark's scales, experiments and machine: configurations, /proc/cpuinfo, the theoretical peak, the
console table. No TensorFlow: the program reads these before --onednn decides how TensorFlow loads.

The timings themselves are in `ppgn_tf.perf.timing`; the program is `ppgn_tf/cli/bench.py`.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time

from ppgn_tf import hardware
from ppgn_tf import precision as precision_lib

SAMPLE_STEPS = 200  # The thesis' chain length: what sampler seconds are reported for.
CRITIC_ITERATIONS = 5
PEAK_CONV = (32, 26, 26, 256, 3, 256)  # batch, height, width, C_in, kernel, C_out of the peak probe.
PEAK_REPEATS = 10
PEERS = ("none", "torch")
# How --peer=torch times training, said in the JSON beside the rounds and the ratios.
PAIRED_ROUNDS_METHOD = (
    "interleaved rounds: every contestant (this project in each precision, the peer with each thread count) was "
    "built and warmed up first; then each round timed one G iteration of each contestant in turn, starting one "
    "contestant later every round. Each precision's ratio to the peer is paired within a round (its seconds over "
    "the same round's peer seconds, with the peer's fastest thread count by median), and ratio_to_peer gives the "
    "median over rounds")
RATIO_TO_PEER_METHOD = {
    "g_iteration": "median over interleaved rounds of the ratio paired within each round (see paired_rounds)",
    "sampler": "block-timed: this project's median over the peer's, each timed in its own block",
}
# Floating-point operations per cycle and core beyond the fp32 FMA units: AVX512_BF16's VDPBF16PS does two
# bf16 multiply-adds per fp32 lane; an AMX tile unit does a 16x32 by 32x16 bf16 product (8192 multiply-adds)
# every 16 cycles.
AMX_BF16_FLOP_PER_CYCLE = 1024


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """Scale of one benchmark."""
  dim: int
  batch_size: int
  repeats: int
  sampler_steps: int  # Steps actually run; results are scaled to SAMPLE_STEPS.
  sampler_batch: int
  train_images: int  # Images in the training pipeline (encoded once, as train.py does).
  # Channels of E's conv1..3; None: the spec's (encoder.CONV_WIDTHS). Narrow ones for the self-test, not for numbers.
  encoder_widths: tuple[int, int, int] | None = None


CONFIGS = {
    "paper": BenchConfig(dim=64, batch_size=32, repeats=3, sampler_steps=4,
                         sampler_batch=64, train_images=1024),
    # flags/quickstart.cfg's width (and flags/cpu_hour.cfg's and flags/hour_scale.cfg's).
    "quickstart": BenchConfig(dim=16, batch_size=32, repeats=5, sampler_steps=20,
                              sampler_batch=64, train_images=1024),
    # flags/cpu_scale.cfg's width: the small-scale reproduction.
    "cpu_scale": BenchConfig(dim=8, batch_size=32, repeats=5, sampler_steps=20,
                             sampler_batch=64, train_images=1024),
    "tiny": BenchConfig(dim=2, batch_size=8, encoder_widths=(2, 2, 2), repeats=2, sampler_steps=2,
                        sampler_batch=8, train_images=64),
}
# The experiments by what sets the cost of a step: which critics there are and how they are chosen.
EXPERIMENTS = {
    "vanilla": {"image_critic": True, "latent_critics": ()},  # 3a
    "fc1": {"image_critic": False, "latent_critics": ("fc1",)},  # 3b, 3c, 3d: D_fc1 alone
    "combined": {"image_critic": True, "latent_critics": ("fc1",)},  # 3e
    "randomized": {"image_critic": True, "latent_critics": ("fc1",), "critic_selection": "random"},  # 3f
    "three_critics": {"image_critic": True, "latent_critics": ("fc1", "conv3")},  # more than two critics
}


def critic_shares(model) -> dict | None:
  """Expected share of iterations each critic is trained in (None: all, every iteration)."""
  c = model.config
  if c.critic_selection != "random":
    return None
  names = model.critic_names
  return {n: c.random_p if k == 0 else (1 - c.random_p) / (len(names) - 1) for k, n in enumerate(names)}


def cpu_info(cpuinfo_text: str | None = None) -> dict:
  """Model name, flags, physical cores, logical CPUs and clock (MHz) from /proc/cpuinfo (or `cpuinfo_text`).

  Cores are distinct (physical id, core id) pairs among the CPUs this process may run on: hyper-threads
  share one core's FMA units. The clock is the highest 'cpu MHz' listed (a virtual machine often lists
  its nominal clock; turbo can exceed it).
  """
  allowed = None  # Given text describes some other machine: every processor in it counts.
  if cpuinfo_text is None:
    cpuinfo_text = hardware.read_cpuinfo()
    if cpuinfo_text is None:
      cpuinfo_text = ""
    else:
      try:
        allowed = os.sched_getaffinity(0)
      except (AttributeError, OSError):
        pass  # No affinity to read here: every processor listed counts.
  processors, model, mhz, cores = 0, None, [], set()
  for fields in hardware.cpuinfo_blocks(cpuinfo_text):
    if "processor" not in fields:
      continue
    if allowed is not None and int(fields["processor"]) not in allowed:
      continue
    processors += 1
    model = model or fields.get("model name")
    if "cpu MHz" in fields:
      mhz.append(float(fields["cpu MHz"]))
    cores.add((fields.get("physical id", "0"), fields.get("core id", fields["processor"])))
  return {"model_name": model, "flags": sorted(hardware.cpu_flags(cpuinfo_text)),
          "logical_cpus": processors, "physical_cores": len(cores), "mhz": max(mhz) if mhz else None}


def theoretical_peak(info: dict, fma_units: int = 2, isa_cap: str | None = None) -> dict:
  """FLOP/s these cores can issue: cores x fp32 lanes x FMA units x 2 (multiply and add) x clock.

  Lanes come from the widest vector extension oneDNN may use (AVX-512: 16, AVX/AVX2: 8, else 4; `isa_cap` is
  ONEDNN_MAX_CPU_ISA). The count of FMA units per core is not in /proc/cpuinfo: 2 is right for Intel cores
  since Haswell (server parts with AVX-512 included) and AMD's since Zen 2; pass the right one for others.
  None without a clock.
  """
  flags = hardware.usable_cpu_flags(info["flags"], isa_cap)
  lanes = 16 if "avx512f" in flags else 8 if flags & {"avx", "avx2"} else 4
  per_core_fp32 = lanes * fma_units * 2
  per_core_bf16 = per_core_fp32 * (2 if "avx512_bf16" in flags else 0)
  if "amx_bf16" in flags:
    per_core_bf16 = max(per_core_bf16, AMX_BF16_FLOP_PER_CYCLE)
  hz = info["mhz"] * 1e6 if info.get("mhz") else None
  cores = info["physical_cores"]
  return {"fp32_lanes": lanes, "fma_units": fma_units, "cores": cores, "clock_hz": hz,
          "fp32_flop_per_cycle_per_core": per_core_fp32, "bf16_flop_per_cycle_per_core": per_core_bf16 or None,
          "fp32_flops": cores * per_core_fp32 * hz if hz else None,
          "bf16_flops": cores * per_core_bf16 * hz if hz and per_core_bf16 else None}


def has_native_bf16() -> bool:
  """bfloat16 arithmetic in hardware (AVX512-BF16 or AMX); elsewhere oneDNN emulates it, slower than fp32."""
  return bool(hardware.kernel_cpu_flags() & set(hardware.NATIVE_BF16_CPU_FLAGS))


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB.


def load_info() -> dict:
  one, five, fifteen = os.getloadavg()
  return {"load_1m": one, "load_5m": five, "load_15m": fifteen, "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def with_fractions(part: dict, peaks: dict, precision: str) -> None:
  """Adds each rate's fraction of the measured (best-of) peak and of the theoretical peak, same precision."""
  measured, theory = peaks.get(f"measured_{precision}"), peaks.get(f"theoretical_{precision}")
  rates = [(e, "g_iteration_flops_per_s", "g_iteration") for e in part["experiments"].values()]
  rates += [(e, "critic_iteration_flops_per_s", "critic_iteration") for e in part["experiments"].values()]
  rates += [(s, "flops_per_s", "sampler") for s in part["sampler"].values()]
  for entry, key, what in rates:
    if key not in entry:
      continue
    entry[f"{what}_of_measured_peak"] = entry[key] / measured if measured else None
    entry[f"{what}_of_theoretical_peak"] = entry[key] / theory if theory else None


def paired_ratio(ours_s, peer_s) -> dict:
  """This project's seconds over the peer's, round by round (each pair timed back to back in one interleaved
  round): every round's ratio, their median, least and greatest."""
  per_round = [ours / peer for ours, peer in zip(ours_s, peer_s, strict=True)]
  return {"per_round": per_round, "median": float(statistics.median(per_round)), "min": min(per_round),
          "max": max(per_round)}


def ratios_to_peer(results: dict) -> dict:
  """This project's seconds divided by the peer's, per precision (< 1: faster than the peer).

  G iterations: the median of the ratios paired within interleaved rounds (results["paired_rounds"]). The
  samplers: block-timed medians, this project's batch 1 and batched against the peer's one chain.
  """
  peer, paired = results["peer"], results["paired_rounds"]["experiments"]
  out = {}
  for p, part in results["by_precision"].items():
    r = {f"{name}_g_iteration": paired[name]["ratio_to_peer"][p]["median"]
         for name in part["experiments"] if name in paired}
    one_chain = peer["sampler"]["batch1"]["s_per_sample"]
    r["sampler_batch1"] = part["sampler"]["batch1"]["s_per_sample"] / one_chain
    r["sampler_batched"] = part["sampler"]["batched"]["s_per_sample"] / one_chain
    out[p] = r
  return out


def _fraction(value) -> str:
  return "-" if value is None else f"{value:.0%}"


def _gflops(value) -> str:
  return "-" if value is None else f"{value / 1e9:.0f}"


def format_table(results: dict) -> str:
  """The console table: the peaks, then per precision one row per experiment and per sampler batch, the peer."""
  cpu, peaks = results["cpu"], results["peaks"]
  theory = peaks["theoretical"]
  onednn = {True: "on", False: "off"}.get(results["onednn"], "as TensorFlow's default")
  cap = results.get("onednn_max_cpu_isa")
  usable = hardware.usable_cpu_flags(cpu["flags"], cap)
  native = [f for f in hardware.NATIVE_BF16_CPU_FLAGS if f in usable]
  kind = precision_lib.cpu_kind(usable)
  lines = [f"CPU: {cpu['model_name']}, {theory['cores']} cores at {cpu['mhz']} MHz (cpuinfo), "
           f"{theory['fp32_lanes']} fp32 lanes, native bf16: {', '.join(native) or 'none'}"
           + (f" (ONEDNN_MAX_CPU_ISA={cap})" if cap else ""),
           f"CPU kind for --precision=auto: {kind} ({precision_lib.CPU_KINDS[kind]})",
           f"config={results['config']} oneDNN {onednn}, load {results['load_start']['load_1m']:.2f} -> "
           f"{results['load_end']['load_1m']:.2f}, peak RSS {results['peak_rss_mb']:.0f} MB"]
  for p in (precision_lib.FP32, precision_lib.BF16):
    if peaks.get(f"measured_{p}"):
      lines.append(f"peak {p}: measured {_gflops(peaks[f'measured_{p}'])} GFLOP/s (3x3 conv, best of "
                   f"{peaks['probe'][p]['repeats']}; median {_gflops(peaks['probe'][p]['median_flops'])}), "
                   f"theoretical {_gflops(peaks[f'theoretical_{p}'])} GFLOP/s "
                   f"({theory['cores']} cores x {theory[f'{p}_flop_per_cycle_per_core']} FLOP/cycle x "
                   f"{(theory['clock_hz'] or 0) / 1e9:.2f} GHz): {_fraction(peaks.get(f'measured_{p}_of_theoretical'))}")
  for p, part in results["by_precision"].items():
    lines += ["", f"[{p}] {'experiment':<13} {'critic it s':>11} {'G step s':>9} {'G iter s':>9} {'img/s':>7} "
              f"{'TFLOP/G it':>10} {'GFLOP/s':>8} {'of meas.':>8} {'of theor.':>9}"]
    for name, e in part["experiments"].items():
      lines.append(f"[{p}] {name:<13} {e['critic_iteration_s']:>11.3f} {e['generator_step_s']:>9.3f} "
                   f"{e['g_iteration_s']:>9.3f} {e['images_per_s']:>7.1f} {e['g_iteration_flop'] / 1e12:>10.3f} "
                   f"{e['g_iteration_flops_per_s'] / 1e9:>8.1f} {_fraction(e['g_iteration_of_measured_peak']):>8} "
                   f"{_fraction(e['g_iteration_of_theoretical_peak']):>9}")
    lines.append(f"[{p}] {'sampler':<13} {'batch':>5} {'s/sample (200 steps)':>21} {'GFLOP/sample':>13} "
                 f"{'GFLOP/s':>8} {'of meas.':>8} {'of theor.':>9}")
    for key, s in part["sampler"].items():
      lines.append(f"[{p}] {key:<13} {s['batch']:>5} {s['s_per_sample']:>21.3f} {s['flop_per_sample'] / 1e9:>13.1f} "
                   f"{s['flops_per_s'] / 1e9:>8.1f} {_fraction(s['sampler_of_measured_peak']):>8} "
                   f"{_fraction(s['sampler_of_theoretical_peak']):>9}")
  if "peer" in results:
    peer = results["peer"]
    lines += ["", f"[peer: the thesis' training step and one-chain sampler in PyTorch {peer['torch']}, fp32; "
              f"the fastest of {', '.join(peer['by_threads'])} threads]"]
    for name, e in peer["experiments"].items():
      lines.append(f"[peer] {name:<12} critic it {e['critic_iteration_s']:.3f} s, G step {e['generator_step_s']:.3f} s, "
                   f"G iteration {e['g_iteration_s']:.3f} s ({e['threads']} threads)")
    for threads, part in peer["by_threads"].items():
      lines.append(f"[peer, {threads} threads] " + ", ".join(
          f"{name} G iteration {e['g_iteration_s']:.3f} s" for name, e in part["experiments"].items()) +
          f"; sampler {part['sampler']['batch1']['s_per_sample']:.3f} s per sample")
    lines.append(f"[peer] sampler, one chain: {peer['sampler']['batch1']['s_per_sample']:.3f} s per 200-step sample "
                 f"({peer['sampler']['batch1']['threads']} threads)")
    for name, record in results["paired_rounds"]["experiments"].items():
      ratios = [f"{p} {r['median']:.2f}x (rounds {r['min']:.2f}x to {r['max']:.2f}x)"
                for p, r in record["ratio_to_peer"].items()]
      lines.append(f"[paired] {name}, {len(record['order'])} interleaved rounds against {record['peer']}: "
                   + ", ".join(ratios))
    lines.append("this project's seconds / the peer's (below 1: faster than the thesis' code; G iterations: median "
                 "of ratios paired within interleaved rounds, samplers: block-timed medians):")
    for p, r in results["ratio_to_peer"].items():
      lines.append(f"  {p}: " + ", ".join(f"{k} {v:.2f}x" for k, v in r.items()))
  return "\n".join(lines)
