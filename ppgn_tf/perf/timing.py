"""The benchmark's measurements: the peak probe, this project's training steps and sampler per precision,
the PyTorch peer (its training timed against this project's in interleaved rounds), and run() that makes the
results JSON. What each number means is the program's help (ppgn_tf/cli/bench.py, python -m ppgn_tf.bench
--help). Imports TensorFlow: the program loads it after --onednn.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from ppgn_tf import hardware
from ppgn_tf import precision as precision_lib
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.model.generator import build_generator
from ppgn_tf.perf import bench as bench_lib
from ppgn_tf.perf import bench_peer_torch
from ppgn_tf.perf import flops
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.training import critic_schedule
from ppgn_tf.training import ppgn
from ppgn_tf.training import train_lib


def onednn_enabled() -> bool | None:
  """Whether TensorFlow runs its oneDNN kernels: it decides when imported, from TF_ENABLE_ONEDNN_OPTS (which the
  program sets from --onednn before importing it). None when unset: TensorFlow's default for this CPU, which no
  public API reports."""
  value = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
  return {"1": True, "true": True, "0": False, "false": False}.get(value)


def _median(values) -> float:
  return float(statistics.median(values))


def measure_peak_flops(dtype: str = "float32", repeats: int = bench_lib.PEAK_REPEATS) -> dict:
  """FLOP/s of a large 3x3 convolution: the best of `repeats` timings (what these cores sustain when nothing
  else runs) and their median (what they gave during this run)."""
  b, h, w, c_in, k, c_out = bench_lib.PEAK_CONV
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
  rng = random_streams.numpy_generator(seed, random_streams.BENCH_IMAGES)
  return data_lib.Split(rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8), rng.integers(0, NUM_CLASSES, n))


def build_model(encoder, bench: bench_lib.BenchConfig, experiment: dict, precision: str):
  """A PPGN with the paper's losses at the bench scale and a constant 5-iteration round."""
  config = ppgn.PPGNConfig(dim=bench.dim, batch_size=bench.batch_size, **experiment,
                           schedule=critic_schedule.CriticSchedule(bench_lib.CRITIC_ITERATIONS,
                                                                   bench_lib.CRITIC_ITERATIONS, 1, 10**9))
  with precision_lib.policy_scope(precision):
    model = ppgn.compile_as_configured(ppgn.PPGN(encoder, config))
  return model


WARMUP_ROUNDS = 2  # This project's first round traces train_step (both branches of the G-step cond).


@dataclasses.dataclass(frozen=True)
class Round:
  """One timed G iteration: CRITIC_ITERATIONS critic iterations, the last carrying the G step."""
  critic_s: list  # The critic iterations timed on their own.
  generator_s: float  # The G step's seconds.
  g_iteration_s: float  # The whole round.
  losses: dict  # After the round.


def summarize_rounds(rounds: list) -> dict:
  """Medians over `rounds`, in the benchmark's keys."""
  totals = [r.g_iteration_s for r in rounds]
  return {"critic_iteration_s": _median([s for r in rounds for s in r.critic_s]),
          "generator_step_s": _median([r.generator_s for r in rounds]), "g_iteration_s": _median(totals),
          "g_iteration_s_min": min(totals), "final_losses": rounds[-1].losses}


class ProjectRounds:
  """This project's model, timed one round at a time on an input pipeline of `split`."""

  def __init__(self, model, split, bench: bench_lib.BenchConfig):
    features = train_lib.encode_split(model.encoder, split, model.cacheable_layers())
    self._iterator = iter(data_lib.make_pipeline(split, bench.batch_size, seed=0, repeat=True, features=features))
    # What fit() calls once per batch: Keras' train function (train_step in its tf.function) on a tf.data iterator.
    model.make_train_function()
    self._train_function = model.train_function
    self.model = model
    self.warmup_s = None
    self._g_steps = None

  def warm_up(self) -> None:
    start = time.perf_counter()
    for _ in range(WARMUP_ROUNDS):
      self._run_round()
    self.warmup_s = time.perf_counter() - start
    self._g_steps = int(self.model.generator_steps.numpy())

  def _run_round(self):
    times, logs = [], None
    for _ in range(bench_lib.CRITIC_ITERATIONS):
      start = time.perf_counter()
      logs = self._train_function(self._iterator)
      logs = {k: float(v) for k, v in logs.items()}  # Waits for the step to finish.
      times.append(time.perf_counter() - start)
    return times, logs

  def one_round(self) -> Round:
    times, logs = self._run_round()
    self._g_steps += 1
    if int(logs["g_steps"]) != self._g_steps:
      raise RuntimeError(f"round misaligned: {logs['g_steps']} G steps, expected {self._g_steps}")
    # The G step runs inside the last critic iteration's call: its share is that call beyond a critic iteration.
    return Round(critic_s=times[:-1], generator_s=times[-1] - statistics.mean(times[:-1]),
                 g_iteration_s=sum(times), losses={k: v for k, v in logs.items() if k != "g_steps"})

  def profile_round(self, profile_dir: str) -> None:
    tf.profiler.experimental.start(profile_dir)
    self.one_round()
    tf.profiler.experimental.stop()


def time_sampler(generator, encoder, batch: int, steps: int, repeats: int) -> float:
  """Seconds for one `steps`-step run of `batch` chains (median of `repeats` after a warm-up)."""
  sampler = mala_sampler.MalaSampler(generator, encoder, mala_sampler.SamplerConfig(steps=steps))
  targets = np.arange(batch, dtype=np.int32) % NUM_CLASSES
  seeds = random_streams.chain_seeds(0, batch)
  h0 = mala_sampler.initial_codes(seeds, sampler.code_shape)
  sampler.sample(targets, seeds, h0)["codes"].numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    sampler.sample(targets, seeds, h0)["codes"].numpy()
    times.append(time.perf_counter() - start)
  return _median(times)


def with_useful_flops(model, timing: dict, bench: bench_lib.BenchConfig) -> dict:
  """An experiment's entry: `timing` with the useful FLOPs of its steps and the rates they give."""
  net = flops.NetworkFlops.of(model.generator, model.encoder, model.critics)
  shares = bench_lib.critic_shares(model)
  useful = {
      "critic_iteration_flop": flops.critic_iteration(net, bench.batch_size, shares=shares),
      "generator_step_flop": flops.generator_step(net, bench.batch_size),
      "g_iteration_flop": flops.generator_iteration(net, bench.batch_size, bench_lib.CRITIC_ITERATIONS,
                                                    shares=shares),
  }
  return {
      **timing, **useful,
      "images_per_s": bench_lib.CRITIC_ITERATIONS * bench.batch_size / timing["g_iteration_s"],
      "g_iteration_flops_per_s": useful["g_iteration_flop"] / timing["g_iteration_s"],
      "critic_iteration_flops_per_s": useful["critic_iteration_flop"] / timing["critic_iteration_s"],
      "forward_flop_per_example": {"generator": net.generator, "encoder": net.encoder, **{
          f"critic_{k}": v for k, v in net.critics.items()}},
      "peak_rss_mb_so_far": bench_lib.peak_rss_mb(),
  }


def time_project(encoder, split, bench: bench_lib.BenchConfig, precision: str, experiments, profile_dir: str | None,
                 log, timed: dict | None = None) -> dict:
  """This project's training experiments and sampler in one precision (fp32 or bf16).

  Experiments in `timed` (name: entry) were already timed against the peer (`time_with_peer`) and are taken as
  they are. The others are built and warmed up first, then timed in interleaved rounds (one G iteration of each
  in turn, `interleave`), so that comparisons between them see the same machine however its load drifts; each
  round's seconds are kept under "experiment_rounds" for seed-like pairing by round.
  """
  timed = timed or {}
  out = {"experiments": {}}
  names = [name for name in experiments if name not in timed]
  models, contestants = {}, {}
  for name in names:
    log(f"Building and warming up, {precision}: {name} ...")
    models[name] = build_model(encoder, bench, bench_lib.EXPERIMENTS[name], precision)
    contestants[name] = ProjectRounds(models[name], split, bench)
    contestants[name].warm_up()
  if names:
    log(f"Training steps, {precision}: {', '.join(names)} in {bench.repeats} interleaved rounds ...")
    rounds, order = interleave(contestants, bench.repeats)
    for name in names:
      timing = {**summarize_rounds(rounds[name]), "warmup_s": contestants[name].warmup_s}
      out["experiments"][name] = with_useful_flops(models[name], timing, bench)
      if profile_dir:
        contestants[name].profile_round(os.path.join(profile_dir, precision, name))
    out["experiment_rounds"] = {"method": INTERLEAVED_EXPERIMENTS_METHOD, "order": order,
                                "g_iteration_s": {n: [r.g_iteration_s for r in rounds[n]] for n in names}}
  for name in experiments:
    if name in timed:
      out["experiments"][name] = timed[name]
  out["experiments"] = {name: out["experiments"][name] for name in experiments}  # In the order asked.
  # The sampler's speed does not depend on the weights: the last experiment's G and E.
  model = models[names[-1]] if names else build_model(encoder, bench, bench_lib.EXPERIMENTS[experiments[0]],
                                                      precision)
  out["sampler"] = time_project_sampler(model, bench, precision, profile_dir, log)
  return out


INTERLEAVED_EXPERIMENTS_METHOD = (
    "every experiment was built and warmed up first; then each round timed one G iteration (5 critic iterations "
    "and a G step) of each experiment in turn, starting one experiment later every round; g_iteration_s lists "
    "each experiment's seconds by round, so two experiments compare round by round")


def time_project_sampler(model, bench: bench_lib.BenchConfig, precision: str, profile_dir: str | None, log) -> dict:
  """The sampler on `model`'s G and E, one chain and batched, per 200-step sample."""
  log(f"Sampler, {precision} ...")
  generator = precision_lib.in_precision(model.generator, precision)
  sampler_encoder = precision_lib.in_precision(model.encoder, precision)
  net = flops.NetworkFlops.of(model.generator, model.encoder, {})
  flop = flops.sampler_per_chain(net, bench_lib.SAMPLE_STEPS)
  scale = flop / flops.sampler_per_chain(net, bench.sampler_steps)
  out = {}
  for key, batch in (("batch1", 1), ("batched", bench.sampler_batch)):
    seconds = time_sampler(generator, sampler_encoder, batch, bench.sampler_steps, bench.repeats)
    per_sample = seconds * scale / batch
    out[key] = {"batch": batch, "measured_steps": bench.sampler_steps, "measured_s": seconds,
                "s_per_sample": per_sample, "flop_per_sample": flop, "flops_per_s": flop / per_sample}
  if profile_dir:
    tf.profiler.experimental.start(os.path.join(profile_dir, precision, "sampler"))
    time_sampler(generator, sampler_encoder, bench.sampler_batch, bench.sampler_steps, 1)
    tf.profiler.experimental.stop()
  return out


class PeerRounds:
  """The thesis' step in PyTorch (a PeerTrainer), timed one round at a time with `threads` PyTorch threads."""

  def __init__(self, trainer, threads: int):
    self.trainer, self.threads = trainer, threads

  def warm_up(self) -> None:
    for _ in range(WARMUP_ROUNDS):
      self.one_round()

  def one_round(self) -> Round:
    self.trainer.torch.set_num_threads(self.threads)  # Every round: the peer with another count may have run since.
    critic_s, generator_s, logs = self.trainer.one_round(bench_lib.CRITIC_ITERATIONS)
    return Round(critic_s=critic_s, generator_s=generator_s, g_iteration_s=sum(critic_s) + generator_s, losses=logs)


def peer_contestant(threads: int) -> str:
  """The peer's name among the contestants of interleaved rounds (this project's are its precisions)."""
  return f"peer_{threads}_threads"


def encoder_widths(bench: bench_lib.BenchConfig) -> tuple[int, int, int]:
  """E's conv widths at this scale, the same for this project and the peer."""
  return bench.encoder_widths or encoder_lib.CONV_WIDTHS


def _peer_trainer(bench: bench_lib.BenchConfig, split, critics):
  return bench_peer_torch.PeerTrainer(bench.dim, bench.batch_size, encoder_widths(bench), critics, split.images)


def interleave(contestants: dict, repeats: int) -> tuple[dict, list]:
  """`repeats` rounds of one `one_round()` per contestant in turn, each round starting one contestant later.

  Contestants timed back to back see about the same machine, however its speed drifts; rotating the start keeps
  any one from always running right after the same other. Returns each contestant's Rounds and each round's order.
  """
  names = list(contestants)
  rounds, order = {name: [] for name in names}, []
  for r in range(repeats):
    turn = names[r % len(names):] + names[:r % len(names)]
    for name in turn:
      rounds[name].append(contestants[name].one_round())
    order.append(turn)
  return rounds, order


def time_experiment_with_peer(encoder, split, bench: bench_lib.BenchConfig, name: str, precisions, threads,
                              profile_dir: str | None, log) -> tuple[dict, dict, dict, int]:
  """One experiment in interleaved rounds: this project in every precision, the peer with every thread count.

  All are built and warmed up first. Returns this project's entries by precision, the peer's by thread count,
  and the rounds' record: their order, every round's seconds per contestant, and per precision the ratios to
  the peer's fastest thread count (lowest median), each round's own pair; and that thread count.
  """
  models = {p: build_model(encoder, bench, bench_lib.EXPERIMENTS[name], p) for p in precisions}
  contestants = {p: ProjectRounds(model, split, bench) for p, model in models.items()}
  for n in threads:
    contestants[peer_contestant(n)] = PeerRounds(_peer_trainer(bench, split, bench_peer_torch.CRITICS_OF[name]), n)
  log(f"Training steps in interleaved rounds, {name}: {', '.join(contestants)} ...")
  for contestant in contestants.values():
    contestant.warm_up()
  rounds, order = interleave(contestants, bench.repeats)
  ours = {}
  for p, model in models.items():
    ours[p] = with_useful_flops(model, {**summarize_rounds(rounds[p]), "warmup_s": contestants[p].warmup_s}, bench)
    if profile_dir:
      contestants[p].profile_round(os.path.join(profile_dir, p, name))
  peer = {n: summarize_rounds(rounds[peer_contestant(n)]) for n in threads}
  fastest_threads = min(threads, key=lambda n: peer[n]["g_iteration_s"])
  fastest = peer_contestant(fastest_threads)
  seconds = {c: [r.g_iteration_s for r in timed] for c, timed in rounds.items()}
  record = {"order": order, "g_iteration_s": seconds, "peer": fastest,
            "ratio_to_peer": {p: bench_lib.paired_ratio(seconds[p], seconds[fastest]) for p in precisions}}
  return ours, peer, record, fastest_threads


def time_with_peer(encoder, split, bench: bench_lib.BenchConfig, precisions, experiments, thread_counts,
                   profile_dir: str | None, log) -> dict:
  """The experiments the PyTorch peer (`bench_peer_torch`) restates, timed against it in interleaved rounds, and
  the peer's one-chain sampler, in a block per thread count.

  Each of `thread_counts` (0: PyTorch's default) is a contestant of its own and the ratios are taken against the
  fastest: on a machine other jobs load, PyTorch's OpenMP threads can wait for each other far longer than they
  compute. Returns {"ours": {precision: {experiment: entry}}, "peer": its section, "paired_rounds": the rounds}.
  """
  torch = bench_peer_torch.import_torch()
  default_threads = torch.get_num_threads()
  threads = tuple(dict.fromkeys(n or default_threads for n in thread_counts))
  peer = {**bench_peer_torch.versions(), "by_threads": {str(n): {"experiments": {}} for n in threads},
          "experiments": {}}
  out = {"ours": {p: {} for p in precisions}, "peer": peer,
         "paired_rounds": {"method": bench_lib.PAIRED_ROUNDS_METHOD, "experiments": {}}}
  for name in experiments:
    if name not in bench_peer_torch.CRITICS_OF:
      log(f"Peer: {name} is not restated in PyTorch (only {', '.join(bench_peer_torch.CRITICS_OF)}); skipped")
      continue
    ours, by_threads, record, fastest = time_experiment_with_peer(encoder, split, bench, name, precisions,
                                                                  threads, profile_dir, log)
    keras.backend.clear_session()  # This experiment's models are gone; the next one builds its own.
    for p in precisions:
      out["ours"][p][name] = ours[p]
    for n in threads:
      peer["by_threads"][str(n)]["experiments"][name] = by_threads[n]
    peer["experiments"][name] = {**by_threads[fastest], "threads": fastest}
    out["paired_rounds"]["experiments"][name] = record

  net = flops.NetworkFlops.of(build_generator((64,), bench.dim), encoder, {})
  scale = flops.sampler_per_chain(net, bench_lib.SAMPLE_STEPS) / flops.sampler_per_chain(net, bench.sampler_steps)
  trainer = _peer_trainer(bench, split, ("image",))  # The sampler runs its G and E only.
  for n in threads:
    torch.set_num_threads(n)
    log(f"Peer (PyTorch, {n} threads) sampler, one chain ...")
    seconds = bench_peer_torch.time_sampler(trainer, bench.sampler_steps, bench.repeats)
    peer["by_threads"][str(n)]["sampler"] = {"batch1": {"batch": 1, "measured_steps": bench.sampler_steps,
                                                        "measured_s": seconds, "s_per_sample": seconds * scale}}
  torch.set_num_threads(default_threads)
  fastest = min(threads, key=lambda n: peer["by_threads"][str(n)]["sampler"]["batch1"]["s_per_sample"])
  peer["sampler"] = {"batch1": {**peer["by_threads"][str(fastest)]["sampler"]["batch1"], "threads": fastest}}
  return out


def run(config_name: str, precisions=(precision_lib.FP32,), experiments=("vanilla", "combined"),
        repeats: int | None = None,
        sampler_steps: int | None = None, sampler_batch: int | None = None, profile_dir: str | None = None,
        peer: str = "none", fma_units: int = 2, peer_threads=(0,), log=print) -> dict:
  """The whole benchmark; returns the JSON-ready results (see the module docstring).

  `precisions` are resolved (fp32, bf16); the first gives the headline keys.
  """

  bench = bench_lib.CONFIGS[config_name]
  bench = dataclasses.replace(bench, **{k: v for k, v in (("repeats", repeats), ("sampler_steps", sampler_steps),
                                                          ("sampler_batch", sampler_batch)) if v})
  info = bench_lib.cpu_info()
  isa_cap = hardware.onednn_isa_cap()  # Kernels limited to older instructions: peaks and bf16 follow.
  results = {"config": config_name, "precision": precisions[0], "precisions": list(precisions),
             "bench": dataclasses.asdict(bench), "cpu": info, "cpu_count": os.cpu_count(),
             "onednn_max_cpu_isa": isa_cap, "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"),
             "native_bf16": bench_lib.has_native_bf16(), "tensorflow": tf.__version__, "onednn": onednn_enabled(),
             "load_start": bench_lib.load_info()}
  start = time.perf_counter()
  log(f"Peak of a large convolution, best of {bench_lib.PEAK_REPEATS} ...")
  theory = bench_lib.theoretical_peak(info, fma_units, isa_cap)
  probe = {precision_lib.FP32: measure_peak_flops("float32")}
  if bench_lib.has_native_bf16() or precision_lib.BF16 in precisions:
    probe[precision_lib.BF16] = measure_peak_flops("bfloat16")
  peaks = {"theoretical": theory, "probe": probe, "probe_shape_bhwcin_k_cout": list(bench_lib.PEAK_CONV)}
  for p in (precision_lib.FP32, precision_lib.BF16):
    peaks[f"measured_{p}"] = probe[p]["best_flops"] if p in probe else None
    peaks[f"theoretical_{p}"] = theory[f"{p}_flops"]
    if p in probe and theory[f"{p}_flops"]:
      peaks[f"measured_{p}_of_theoretical"] = probe[p]["best_flops"] / theory[f"{p}_flops"]
  results["peaks"] = peaks
  results["peak_fp32_flops"] = probe[precision_lib.FP32]["best_flops"]
  results["peak_bf16_flops"] = probe[precision_lib.BF16]["best_flops"] if precision_lib.BF16 in probe else None

  random_streams.seed_keras(0, random_streams.NETWORK_INITIALISATION)
  encoder = encoder_lib.build_encoder(conv_widths=encoder_widths(bench))
  encoder.trainable = False
  split = _train_split(bench.train_images)
  paired = None
  if peer == "torch":
    paired = time_with_peer(encoder, split, bench, precisions, experiments, peer_threads, profile_dir, log)
  results["by_precision"] = {}
  for p in precisions:
    part = time_project(encoder, split, bench, p, experiments, profile_dir, log,
                        timed=paired["ours"][p] if paired else None)
    bench_lib.with_fractions(part, peaks, p)
    results["by_precision"][p] = part
    keras.backend.clear_session()
  if paired:
    results["peer"], results["paired_rounds"] = paired["peer"], paired["paired_rounds"]
    results["ratio_to_peer"] = bench_lib.ratios_to_peer(results)
    results["ratio_to_peer_method"] = bench_lib.RATIO_TO_PEER_METHOD

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
      "peak_rss_mb": bench_lib.peak_rss_mb(),
      "wall_s": time.perf_counter() - start,
      "load_end": bench_lib.load_info(),
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


def top_ops(profile_dir: str, limit: int = 15) -> list[tuple[str, float]]:
  """(op type, total ms) of the TensorFlow ops in the newest trace under `profile_dir`, longest first."""
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
