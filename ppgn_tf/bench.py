r"""Benchmark: training and sampling speed against this machine's peak, in fp32 and bf16, beside the thesis' code.

  python -m ppgn_tf.bench --config=paper --precision=fp32,bf16 --peer=torch --output=bench_paper.json
  python -m ppgn_tf.bench --config=quickstart --profile_dir=/tmp/ppgn_profile

Measures, after warm-up and as medians over `--repeats` rounds: seconds per
critic iteration, per G step and per steady-state G iteration (5 critic
iterations + 1 G step) of the chosen experiments, and seconds per 200-step
MALA sample at batch 1 and batched, once per --precision. Each is set against
its useful FLOPs (`ppgn_tf.flops`), the FLOP/s of a large convolution measured
here first (the best of several repeats), and the theoretical peak of these
cores (cores x vector lanes x FMA units x 2 x clock, from /proc/cpuinfo).

--peer=torch also times the thesis' training step and its one-chain sampler
restated in PyTorch (`ppgn_tf.bench_peer_torch`), at the same scale in the
same run, and prints this project's times as ratios of the peer's.

The sampler runs `--sampler_steps` steps and is scaled to 200 by FLOPs (each
step costs the same), so the paper configuration finishes in minutes.
Timings on a shared machine are noisy: the load average at start and end is
recorded, and ratios taken within one run are the reliable numbers.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import sys
import time

from absl import app
from absl import flags

from ppgn_tf import precision as precision_lib
from ppgn_tf.files import write_json

SAMPLE_STEPS = 200  # The thesis' chain length: what sampler seconds are reported for.
CRITIC_ITERATIONS = 5
PEAK_CONV = (32, 26, 26, 256, 3, 256)  # batch, height, width, C_in, kernel, C_out of the peak probe.
PEAK_REPEATS = 10
PEERS = ("none", "torch")
# Floating-point operations per cycle and core beyond the fp32 FMA units: AVX512_BF16's VDPBF16PS does two
# bf16 multiply-adds per fp32 lane; an AMX tile unit does a 16x32 by 32x16 bf16 product (8192 multiply-adds)
# every 16 cycles.
AMX_BF16_FLOP_PER_CYCLE = 1024


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """Scale of one benchmark."""
  dim: int
  batch_size: int
  tiny_encoder: bool  # 2 channels per encoder conv: for the self-test, not for numbers.
  repeats: int
  sampler_steps: int  # Steps actually run; results are scaled to SAMPLE_STEPS.
  sampler_batch: int
  train_images: int  # Images in the training pipeline (encoded once, as train.py does).


CONFIGS = {
    "paper": BenchConfig(dim=64, batch_size=32, tiny_encoder=False, repeats=3, sampler_steps=4,
                         sampler_batch=64, train_images=1024),
    "quickstart": BenchConfig(dim=8, batch_size=32, tiny_encoder=False, repeats=5, sampler_steps=20,
                              sampler_batch=64, train_images=1024),
    "tiny": BenchConfig(dim=2, batch_size=8, tiny_encoder=True, repeats=2, sampler_steps=2,
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
    try:
      with open("/proc/cpuinfo") as f:
        cpuinfo_text = f.read()
      allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
      cpuinfo_text = cpuinfo_text or ""
  processors, model, mhz, cores = 0, None, [], set()
  for block in cpuinfo_text.strip().split("\n\n"):
    fields = {}
    for line in block.splitlines():
      if ":" in line:
        key, value = line.split(":", 1)
        fields[key.strip()] = value.strip()
    if "processor" not in fields:
      continue
    if allowed is not None and int(fields["processor"]) not in allowed:
      continue
    processors += 1
    model = model or fields.get("model name")
    if "cpu MHz" in fields:
      mhz.append(float(fields["cpu MHz"]))
    cores.add((fields.get("physical id", "0"), fields.get("core id", fields["processor"])))
  return {"model_name": model, "flags": sorted(precision_lib.cpu_flags(cpuinfo_text)),
          "logical_cpus": processors, "physical_cores": len(cores), "mhz": max(mhz) if mhz else None}


def theoretical_peak(info: dict, fma_units: int = 2) -> dict:
  """FLOP/s these cores can issue: cores x fp32 lanes x FMA units x 2 (multiply and add) x clock.

  Lanes come from the widest vector extension (AVX-512: 16, AVX/AVX2: 8, else 4). The count of FMA units
  per core is not in /proc/cpuinfo: 2 is right for Intel cores since Haswell (server parts with AVX-512
  included) and AMD's since Zen 2; pass the right one for others. None without a clock.
  """
  flags = set(info["flags"])
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
  return bool(precision_lib.cpu_flags() & set(precision_lib.NATIVE_BF16_CPU_FLAGS))


def onednn_enabled() -> bool:
  """Whether TensorFlow runs its oneDNN kernels (decided when it was imported)."""
  from tensorflow.python.util import _pywrap_util_port
  return bool(_pywrap_util_port.IsMklEnabled())


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB.


def _median(values) -> float:
  return float(statistics.median(values))


def measure_peak_flops(dtype: str = "float32", repeats: int = PEAK_REPEATS) -> dict:
  """FLOP/s of a large 3x3 convolution: the best of `repeats` timings (what these cores sustain when nothing
  else runs) and their median (what they gave during this run)."""
  import tensorflow as tf
  b, h, w, c_in, k, c_out = PEAK_CONV
  x = tf.random.normal([b, h, w, c_in], dtype=tf.float32)
  kernel = tf.random.normal([k, k, c_in, c_out], dtype=tf.float32)
  x, kernel = tf.cast(x, dtype), tf.cast(kernel, dtype)
  conv = tf.function(lambda x, kernel: tf.reduce_sum(tf.cast(tf.nn.conv2d(x, kernel, 1, "VALID"), tf.float32)))
  conv(x, kernel).numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    conv(x, kernel).numpy()
    times.append(time.perf_counter() - start)
  flop = 2 * b * (h - k + 1) * (w - k + 1) * k * k * c_in * c_out
  return {"best_flops": flop / min(times), "median_flops": flop / _median(times), "repeats": repeats}


def _train_split(n: int, seed: int = 0):
  """`n` random digit-like images: speed does not depend on pixel values, and no data set is needed."""
  import numpy as np
  from ppgn_tf import data as data_lib
  rng = np.random.default_rng(seed)
  return data_lib.Split(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, n))


def build_model(encoder, bench: BenchConfig, experiment: dict, precision: str):
  """A PPGN with the paper's losses at the bench scale and a constant 5-iteration round."""
  import keras
  from ppgn_tf import critic_schedule, ppgn
  config = ppgn.PPGNConfig(dim=bench.dim, batch_size=bench.batch_size, **experiment,
                           schedule=critic_schedule.CriticSchedule(CRITIC_ITERATIONS, CRITIC_ITERATIONS, 1, 10**9))
  with precision_lib.policy_scope(precision):
    model = ppgn.PPGN(encoder, config)
    model.compile()
  return model


def time_training(model, split, bench: BenchConfig, profile_dir: str | None = None) -> dict:
  """Per-step seconds over `bench.repeats` rounds after two warm-up rounds."""
  from ppgn_tf import data as data_lib
  from ppgn_tf import train_lib
  features = train_lib.encode_split(model.encoder, split, model.cacheable_layers())
  dataset = data_lib.make_pipeline(split, bench.batch_size, seed=0, repeat=True, features=features)
  iterator = iter(dataset)
  train_function = model.make_train_function()

  def one_round():
    times, logs = [], None
    for _ in range(CRITIC_ITERATIONS):
      start = time.perf_counter()
      logs = train_function(iterator)
      logs = {k: float(v) for k, v in logs.items()}  # Waits for the step to finish.
      times.append(time.perf_counter() - start)
    return times, logs

  warmup_start = time.perf_counter()
  for _ in range(2):  # The first traces train_step (both branches of the G-step cond).
    one_round()
  warmup_s = time.perf_counter() - warmup_start
  critic, generator, rounds = [], [], []
  g_steps = int(model.generator_steps.numpy())
  for _ in range(bench.repeats):
    times, logs = one_round()
    g_steps += 1
    if int(logs["g_steps"]) != g_steps:
      raise RuntimeError(f"round misaligned: {logs['g_steps']} G steps, expected {g_steps}")
    critic.extend(times[:-1])
    generator.append(times[-1] - statistics.mean(times[:-1]))
    rounds.append(sum(times))
  if profile_dir:
    import tensorflow as tf
    tf.profiler.experimental.start(profile_dir)
    one_round()
    tf.profiler.experimental.stop()
  losses = {k: v for k, v in logs.items() if k != "g_steps"}
  return {"critic_iteration_s": _median(critic), "generator_step_s": _median(generator),
          "g_iteration_s": _median(rounds), "g_iteration_s_min": min(rounds), "warmup_s": warmup_s,
          "final_losses": losses}


def time_sampler(generator, encoder, batch: int, steps: int, repeats: int) -> float:
  """Seconds for one `steps`-step run of `batch` chains (median of `repeats` after a warm-up)."""
  import numpy as np
  from ppgn_tf import mala_sampler
  sampler = mala_sampler.MalaSampler(generator, encoder, mala_sampler.SamplerConfig(steps=steps))
  targets = np.arange(batch, dtype=np.int32) % 10
  seeds = np.arange(batch, dtype=np.int64)
  h0 = mala_sampler.initial_codes(seeds, sampler.code_shape)
  sampler.sample(targets, seeds, h0)["codes"].numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    sampler.sample(targets, seeds, h0)["codes"].numpy()
    times.append(time.perf_counter() - start)
  return _median(times)


def load_info() -> dict:
  one, five, fifteen = os.getloadavg()
  return {"load_1m": one, "load_5m": five, "load_15m": fifteen, "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def time_project(encoder, split, bench: BenchConfig, precision: str, experiments, profile_dir: str | None,
                 log) -> dict:
  """This project's training experiments and sampler in one precision (fp32 or bf16)."""
  import keras
  from ppgn_tf import flops
  out = {"experiments": {}}
  model = None
  for i, name in enumerate(experiments):
    log(f"Training steps, {precision}: {name} ...")
    model = build_model(encoder, bench, EXPERIMENTS[name], precision)
    net = flops.NetworkFlops.of(model.generator, model.encoder, model.critics)
    timing = time_training(model, split, bench,
                           profile_dir=os.path.join(profile_dir, precision, name) if profile_dir else None)
    shares = critic_shares(model)
    useful = {
        "critic_iteration_flop": flops.critic_iteration(net, bench.batch_size, shares=shares),
        "generator_step_flop": flops.generator_step(net, bench.batch_size),
        "g_iteration_flop": flops.generator_iteration(net, bench.batch_size, CRITIC_ITERATIONS, shares=shares),
    }
    out["experiments"][name] = {
        **timing, **useful,
        "images_per_s": CRITIC_ITERATIONS * bench.batch_size / timing["g_iteration_s"],
        "g_iteration_flops_per_s": useful["g_iteration_flop"] / timing["g_iteration_s"],
        "critic_iteration_flops_per_s": useful["critic_iteration_flop"] / timing["critic_iteration_s"],
        "forward_flop_per_example": {"generator": net.generator, "encoder": net.encoder, **{
            f"critic_{k}": v for k, v in net.critics.items()}},
        "peak_rss_mb_so_far": peak_rss_mb(),
    }
    if i < len(experiments) - 1:
      del model
      keras.backend.clear_session()

  log(f"Sampler, {precision} ...")
  generator = precision_lib.in_precision(model.generator, precision)
  sampler_encoder = precision_lib.in_precision(model.encoder, precision)
  net = flops.NetworkFlops.of(model.generator, model.encoder, {})
  flop = flops.sampler_per_chain(net, SAMPLE_STEPS)
  scale = flop / flops.sampler_per_chain(net, bench.sampler_steps)
  out["sampler"] = {}
  for key, batch in (("batch1", 1), ("batched", bench.sampler_batch)):
    seconds = time_sampler(generator, sampler_encoder, batch, bench.sampler_steps, bench.repeats)
    per_sample = seconds * scale / batch
    out["sampler"][key] = {"batch": batch, "measured_steps": bench.sampler_steps, "measured_s": seconds,
                           "s_per_sample": per_sample, "flop_per_sample": flop, "flops_per_s": flop / per_sample}
  if profile_dir:
    import tensorflow as tf
    tf.profiler.experimental.start(os.path.join(profile_dir, precision, "sampler"))
    time_sampler(generator, sampler_encoder, bench.sampler_batch, bench.sampler_steps, 1)
    tf.profiler.experimental.stop()
  return out


def time_peer(bench: BenchConfig, experiments, split, log, thread_counts=(0,)) -> dict:
  """The thesis' code restated in PyTorch (`bench_peer_torch`) on the experiments it has, at this scale.

  Each of `thread_counts` (0: PyTorch's default) is timed in turn and every quantity keeps the fastest: on
  a machine other jobs load, PyTorch's OpenMP threads can wait for each other far longer than they compute.
  """
  from ppgn_tf import bench_peer_torch as peer
  from ppgn_tf import encoder as encoder_lib
  from ppgn_tf import flops
  from ppgn_tf.generator import build_generator
  torch = peer.import_torch()
  default_threads = torch.get_num_threads()
  widths = (2, 2, 2) if bench.tiny_encoder else (64, 128, 256)
  encoder = encoder_lib.build_tiny_encoder() if bench.tiny_encoder else encoder_lib.build_encoder()
  net = flops.NetworkFlops.of(build_generator((64,), bench.dim), encoder, {})
  scale = flops.sampler_per_chain(net, SAMPLE_STEPS) / flops.sampler_per_chain(net, bench.sampler_steps)
  out = {**peer.versions(), "by_threads": {}}
  for threads in thread_counts:
    torch.set_num_threads(threads or default_threads)
    part, trainer = {"experiments": {}}, None
    for name in experiments:
      if name not in peer.CRITICS_OF:
        log(f"Peer: {name} is not restated in PyTorch (only {', '.join(peer.CRITICS_OF)}); skipped")
        continue
      log(f"Peer (PyTorch, {torch.get_num_threads()} threads) training steps: {name} ...")
      trainer = peer.PeerTrainer(bench.dim, bench.batch_size, widths, peer.CRITICS_OF[name], split.images)
      part["experiments"][name] = peer.time_training(trainer, CRITIC_ITERATIONS, bench.repeats)
    if trainer is None:
      trainer = peer.PeerTrainer(bench.dim, bench.batch_size, widths, ("image",), split.images)
    log(f"Peer (PyTorch, {torch.get_num_threads()} threads) sampler, one chain ...")
    seconds = peer.time_sampler(trainer, bench.sampler_steps, bench.repeats)
    part["sampler"] = {"batch1": {"batch": 1, "measured_steps": bench.sampler_steps, "measured_s": seconds,
                                  "s_per_sample": seconds * scale}}
    out["by_threads"][str(torch.get_num_threads())] = part
  torch.set_num_threads(default_threads)
  parts = list(out["by_threads"].items())
  fastest = lambda get: min(parts, key=lambda kv: get(kv[1]))
  out["experiments"] = {}
  for name in parts[0][1]["experiments"]:
    threads, part = fastest(lambda p: p["experiments"][name]["g_iteration_s"])
    out["experiments"][name] = {**part["experiments"][name], "threads": int(threads)}
  threads, part = fastest(lambda p: p["sampler"]["batch1"]["s_per_sample"])
  out["sampler"] = {"batch1": {**part["sampler"]["batch1"], "threads": int(threads)}}
  return out


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


def ratios_to_peer(results: dict) -> dict:
  """This project's seconds divided by the peer's, per precision and experiment (< 1: faster than the peer)."""
  peer = results["peer"]
  out = {}
  for p, part in results["by_precision"].items():
    r = {f"{name}_g_iteration": e["g_iteration_s"] / peer["experiments"][name]["g_iteration_s"]
         for name, e in part["experiments"].items() if name in peer["experiments"]}
    one_chain = peer["sampler"]["batch1"]["s_per_sample"]
    r["sampler_batch1"] = part["sampler"]["batch1"]["s_per_sample"] / one_chain
    r["sampler_batched"] = part["sampler"]["batched"]["s_per_sample"] / one_chain
    out[p] = r
  return out


def run(config_name: str, precisions=("fp32",), experiments=("vanilla", "combined"), repeats: int | None = None,
        sampler_steps: int | None = None, sampler_batch: int | None = None, profile_dir: str | None = None,
        peer: str = "none", fma_units: int = 2, peer_threads=(0,), log=print) -> dict:
  """The whole benchmark; returns the JSON-ready results (see the module docstring).

  `precisions` are resolved (fp32, bf16); the first gives the headline keys.
  """
  import keras
  import tensorflow as tf
  from ppgn_tf import encoder as encoder_lib

  bench = CONFIGS[config_name]
  bench = dataclasses.replace(bench, **{k: v for k, v in (("repeats", repeats), ("sampler_steps", sampler_steps),
                                                          ("sampler_batch", sampler_batch)) if v})
  info = cpu_info()
  results = {"config": config_name, "precision": precisions[0], "precisions": list(precisions),
             "bench": dataclasses.asdict(bench), "cpu": info, "cpu_count": os.cpu_count(),
             "native_bf16": has_native_bf16(), "tensorflow": tf.__version__, "onednn": onednn_enabled(),
             "load_start": load_info()}
  start = time.perf_counter()
  log(f"Peak of a large convolution, best of {PEAK_REPEATS} ...")
  theory = theoretical_peak(info, fma_units)
  probe = {"fp32": measure_peak_flops("float32")}
  if has_native_bf16() or "bf16" in precisions:
    probe["bf16"] = measure_peak_flops("bfloat16")
  peaks = {"theoretical": theory, "probe": probe, "probe_shape_bhwcin_k_cout": list(PEAK_CONV)}
  for p in ("fp32", "bf16"):
    peaks[f"measured_{p}"] = probe[p]["best_flops"] if p in probe else None
    peaks[f"theoretical_{p}"] = theory[f"{p}_flops"]
    if p in probe and theory[f"{p}_flops"]:
      peaks[f"measured_{p}_of_theoretical"] = probe[p]["best_flops"] / theory[f"{p}_flops"]
  results["peaks"] = peaks
  results["peak_fp32_flops"] = probe["fp32"]["best_flops"]
  results["peak_bf16_flops"] = probe["bf16"]["best_flops"] if "bf16" in probe else None

  keras.utils.set_random_seed(0)
  encoder = encoder_lib.build_tiny_encoder() if bench.tiny_encoder else encoder_lib.build_encoder()
  encoder.trainable = False
  split = _train_split(bench.train_images)
  results["by_precision"] = {}
  for p in precisions:
    part = time_project(encoder, split, bench, p, experiments, profile_dir, log)
    with_fractions(part, peaks, p)
    results["by_precision"][p] = part
    keras.backend.clear_session()
  if peer == "torch":
    results["peer"] = time_peer(bench, experiments, split, log, peer_threads)
    results["ratio_to_peer"] = ratios_to_peer(results)

  head_precision = results["by_precision"][precisions[0]]
  head = head_precision["experiments"][experiments[0]]
  sampler = head_precision["sampler"]
  results.update({
      "experiments": head_precision["experiments"],
      "sampler": sampler,
      "headline_experiment": experiments[0],
      "critic_iteration_s": head["critic_iteration_s"],
      "generator_step_s": head["generator_step_s"],
      "g_iteration_s": head["g_iteration_s"],
      "g_iteration_flop_fraction": head["g_iteration_of_measured_peak"],
      "g_iteration_of_theoretical_peak": head["g_iteration_of_theoretical_peak"],
      "sampler_s_per_sample_batch1": sampler["batch1"]["s_per_sample"],
      "sampler_s_per_sample_batched": sampler["batched"]["s_per_sample"],
      "sampler_flop_fraction": sampler["batched"]["sampler_of_measured_peak"],
      "peak_rss_mb": peak_rss_mb(),
      "wall_s": time.perf_counter() - start,
      "load_end": load_info(),
  })
  return results


def format_top_ops(profile_dir: str, parts) -> str:
  lines = []
  for part in parts:
    ops = top_ops(os.path.join(profile_dir, part))
    total = sum(ms for _, ms in ops) or 1.0
    lines.append(f"top ops, {part} (ms in the traced run, share of the listed):")
    lines += [f"  {op:<28} {ms:>10.1f} {ms / total:>6.1%}" for op, ms in ops]
  return "\n".join(lines)


def _fraction(value) -> str:
  return "-" if value is None else f"{value:.0%}"


def _gflops(value) -> str:
  return "-" if value is None else f"{value / 1e9:.0f}"


def format_table(results: dict) -> str:
  """The console table: the peaks, then per precision one row per experiment and per sampler batch, the peer."""
  cpu, peaks = results["cpu"], results["peaks"]
  theory = peaks["theoretical"]
  onednn = "on" if results["onednn"] else "off"
  native = [f for f in precision_lib.NATIVE_BF16_CPU_FLAGS if f in cpu["flags"]]
  lines = [f"CPU: {cpu['model_name']}, {theory['cores']} cores at {cpu['mhz']} MHz (cpuinfo), "
           f"{theory['fp32_lanes']} fp32 lanes, native bf16: {', '.join(native) or 'none'}",
           f"config={results['config']} oneDNN {onednn}, load {results['load_start']['load_1m']:.2f} -> "
           f"{results['load_end']['load_1m']:.2f}, peak RSS {results['peak_rss_mb']:.0f} MB"]
  for p in ("fp32", "bf16"):
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
    lines.append("this project's seconds / the peer's (below 1: faster than the thesis' code):")
    for p, r in results["ratio_to_peer"].items():
      lines.append(f"  {p}: " + ", ".join(f"{k} {v:.2f}x" for k, v in r.items()))
  return "\n".join(lines)


def top_ops(profile_dir: str, limit: int = 15) -> list[tuple[str, float]]:
  """(op type, total ms) of the TensorFlow ops in the newest trace under `profile_dir`, longest first."""
  import glob
  from tensorflow.tsl.profiler.protobuf import xplane_pb2
  paths = sorted(glob.glob(os.path.join(profile_dir, "plugins", "profile", "*", "*.xplane.pb")))
  if not paths:
    return []
  space = xplane_pb2.XSpace()
  with open(paths[-1], "rb") as f:
    space.ParseFromString(f.read())
  totals: dict[str, float] = {}
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):  # The executor threads; ops are "scope/name:OpType".
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ":" in name and "::" not in name:
          op_type = name.rsplit(":", 1)[1]
          totals[op_type] = totals.get(op_type, 0.0) + event.duration_ps / 1e9
  return sorted(totals.items(), key=lambda kv: -kv[1])[:limit]


FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_enum("config", "paper", list(CONFIGS), "Scale: paper (DIM 64, batch 32), quickstart (DIM 8) "
                    "or tiny (DIM 2, a self-test).")
  flags.DEFINE_string("output", None, "Write the results as JSON here.")
  flags.DEFINE_list("precision", ["auto"], "Comma-separated, each timed in turn: fp32, bf16 (mixed bfloat16 for "
                    "G and the critics; E stays fp32 in training as in train.py, and bf16 in the sampler), or auto "
                    "(bf16 where the CPU or GPU computes bfloat16 natively, else fp32). The first gives the "
                    "headline keys.")
  flags.DEFINE_enum("peer", "none", list(PEERS), "torch: also time the thesis' training step and one-chain sampler "
                    "restated in PyTorch (needs torch), and print the ratios.")
  flags.DEFINE_list("peer_threads", ["0"], "PyTorch thread counts the peer is timed with, each in turn (0: "
                    "PyTorch's default); each quantity keeps the fastest. On a loaded machine try 0,1.")
  flags.DEFINE_list("experiments", ["vanilla", "combined"], f"Which of {', '.join(EXPERIMENTS)}; the first "
                    "gives the headline keys.")
  flags.DEFINE_integer("repeats", None, "Timed rounds (default: the config's).")
  flags.DEFINE_integer("sampler_steps", None, "MALA steps actually run, scaled to 200 (default: the config's).")
  flags.DEFINE_integer("sampler_batch", None, "Chains of the batched sampler (default: the config's).")
  flags.DEFINE_integer("fma_units", 2, "FMA units per core for the theoretical peak (not in /proc/cpuinfo; 2 for "
                       "Intel since Haswell and AMD since Zen 2).")
  flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads (0: TensorFlow's default).")
  flags.DEFINE_bool("onednn", True, "Run TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS=1). TensorFlow turns "
                    "them on by default only on AVX-512 CPUs; elsewhere its Eigen kernels run, built without "
                    "AVX2/FMA, about 2x slower. Set before TensorFlow is imported.")
  flags.DEFINE_string("profile_dir", None, "Also trace one round per experiment and one sampler run with the "
                      "TensorFlow profiler here, and print the top ops.")


def _error(message: str) -> int:
  print(f"bench: error: {message}", file=sys.stderr)
  return 1


def main(argv):
  if len(argv) > 1:
    return _error(f"unexpected arguments: {' '.join(argv[1:])}")
  unknown = [e for e in FLAGS.experiments if e not in EXPERIMENTS]
  if unknown or not FLAGS.experiments:
    return _error(f"--experiments: choose from {', '.join(EXPERIMENTS)}, got {','.join(FLAGS.experiments)}")
  bad = [p for p in FLAGS.precision if p not in precision_lib.CHOICES]
  if bad or not FLAGS.precision:
    return _error(f"--precision: choose from {', '.join(precision_lib.CHOICES)}, got {','.join(FLAGS.precision)}")
  for name in ("repeats", "sampler_steps", "sampler_batch", "fma_units"):
    if getattr(FLAGS, name) is not None and getattr(FLAGS, name) < 1:
      return _error(f"--{name} must be >= 1, got {getattr(FLAGS, name)}")
  if FLAGS.inter_op_threads < 0:
    return _error(f"--inter_op_threads must be >= 0, got {FLAGS.inter_op_threads}")
  if FLAGS.output and not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.output))):
    return _error(f"--output={FLAGS.output}: no such directory")
  try:
    peer_threads = tuple(int(n) for n in FLAGS.peer_threads)
  except ValueError:
    peer_threads = ()
  if not peer_threads or min(peer_threads) < 0:
    return _error(f"--peer_threads: expected whole numbers >= 0, got {','.join(FLAGS.peer_threads)}")
  if FLAGS.peer == "torch":
    from ppgn_tf import bench_peer_torch
    try:
      bench_peer_torch.import_torch()
    except bench_peer_torch.PeerUnavailable as e:
      return _error(str(e))
  if "tensorflow" not in sys.modules:  # The kernel choice is made when TensorFlow loads.
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if FLAGS.onednn else "0"
  import tensorflow as tf
  if FLAGS.inter_op_threads:
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
  precisions = tuple(dict.fromkeys(precision_lib.resolve(p, "bench") for p in FLAGS.precision))
  results = run(FLAGS.config, precisions, tuple(FLAGS.experiments), FLAGS.repeats, FLAGS.sampler_steps,
                FLAGS.sampler_batch, FLAGS.profile_dir, FLAGS.peer, FLAGS.fma_units, peer_threads)
  results["inter_op_threads"] = FLAGS.inter_op_threads
  results["command"] = " ".join(["python -m ppgn_tf.bench", *sys.argv[1:]])
  print(format_table(results))
  if FLAGS.profile_dir:
    parts = [os.path.join(p, part) for p in precisions for part in [*FLAGS.experiments, "sampler"]]
    print("\n" + format_top_ops(FLAGS.profile_dir, parts))
  if FLAGS.output:
    write_json(FLAGS.output, results)
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
