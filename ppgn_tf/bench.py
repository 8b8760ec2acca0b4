r"""Benchmark: training and sampling speed against this machine's measured peak.

  python -m ppgn_tf.bench --config=paper --output=bench_paper.json
  python -m ppgn_tf.bench --config=quickstart --profile_dir=/tmp/ppgn_profile

Measures, after warm-up and as medians over `--repeats` rounds: seconds per
critic iteration, per G step and per steady-state G iteration (5 critic
iterations + 1 G step) of the vanilla and combined experiments, and seconds
per 200-step MALA sample at batch 1 and batched. Each is set against its
useful FLOPs (`ppgn_tf.flops`) and the FLOP/s of a large convolution measured
here first, so the fractions say how close the code runs to what the CPU can do.

The sampler runs `--sampler_steps` steps and is scaled to 200 by FLOPs (each
step costs the same), so the paper configuration finishes in minutes.
Timings on a shared machine are noisy: the load average at start and end is
recorded, and ratios taken within one run are the reliable numbers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import statistics
import sys
import time

from absl import app
from absl import flags

SAMPLE_STEPS = 200  # The thesis' chain length: what sampler seconds are reported for.
CRITIC_ITERATIONS = 5
# The thesis' own PyTorch implementation on this machine (paper configuration, fp32, batch 32).
THESIS_PYTORCH = {"critic_iteration_s": 2.3, "generator_step_s": 3.5, "g_iteration_s": 15.0,
                  "sampler_s_per_sample": 10.9}
PEAK_CONV = (32, 26, 26, 256, 3, 256)  # batch, height, width, C_in, kernel, C_out of the peak probe.


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


def cpu_flags() -> set[str]:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def has_native_bf16() -> bool:
  """bfloat16 arithmetic in hardware (AVX512-BF16 or AMX); elsewhere oneDNN emulates it, slower than fp32."""
  return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def onednn_enabled() -> bool:
  """Whether TensorFlow runs its oneDNN kernels (decided when it was imported)."""
  from tensorflow.python.util import _pywrap_util_port
  return bool(_pywrap_util_port.IsMklEnabled())


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB.


def _median(values) -> float:
  return float(statistics.median(values))


def measure_peak_flops(dtype: str = "float32", repeats: int = 5) -> float:
  """FLOP/s of a large 3x3 convolution (the best of `repeats`): what these cores sustain."""
  import tensorflow as tf
  b, h, w, c_in, k, c_out = PEAK_CONV
  x = tf.random.normal([b, h, w, c_in], dtype=tf.float32)
  kernel = tf.random.normal([k, k, c_in, c_out], dtype=tf.float32)
  x, kernel = tf.cast(x, dtype), tf.cast(kernel, dtype)
  conv = tf.function(lambda x, kernel: tf.reduce_sum(tf.nn.conv2d(x, kernel, 1, "VALID")))
  conv(x, kernel).numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    conv(x, kernel).numpy()
    times.append(time.perf_counter() - start)
  flop = 2 * b * (h - k + 1) * (w - k + 1) * k * k * c_in * c_out
  return flop / min(times)


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
  keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
  try:
    model = ppgn.PPGN(encoder, config)
    model.compile()
  finally:
    keras.mixed_precision.set_global_policy("float32")
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
          "g_iteration_s": _median(rounds), "warmup_s": warmup_s, "final_losses": losses}


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


def run(config_name: str, precision: str = "fp32", experiments=("vanilla", "combined"), repeats: int | None = None,
        sampler_steps: int | None = None, sampler_batch: int | None = None, profile_dir: str | None = None,
        log=print) -> dict:
  """The whole benchmark; returns the JSON-ready results (see the module docstring)."""
  import keras
  import tensorflow as tf
  from ppgn_tf import encoder as encoder_lib
  from ppgn_tf import flops

  bench = CONFIGS[config_name]
  bench = dataclasses.replace(bench, **{k: v for k, v in (("repeats", repeats), ("sampler_steps", sampler_steps),
                                                          ("sampler_batch", sampler_batch)) if v})
  results = {"config": config_name, "precision": precision, "bench": dataclasses.asdict(bench),
             "cpu_count": os.cpu_count(), "native_bf16": has_native_bf16(),
             "tensorflow": tf.__version__, "onednn": onednn_enabled(), "load_start": load_info()}
  start = time.perf_counter()
  log("Measuring the peak FLOP/s of a large fp32 convolution ...")
  peak = measure_peak_flops("float32")
  results["peak_fp32_flops"] = peak
  results["peak_bf16_flops"] = measure_peak_flops("bfloat16") if has_native_bf16() else None

  keras.utils.set_random_seed(0)
  encoder = encoder_lib.build_tiny_encoder() if bench.tiny_encoder else encoder_lib.build_encoder()
  encoder.trainable = False
  split = _train_split(bench.train_images)
  results["experiments"] = {}
  model = None
  for i, name in enumerate(experiments):
    log(f"Training steps: {name} ...")
    model = build_model(encoder, bench, EXPERIMENTS[name], precision)
    net = flops.NetworkFlops.of(model.generator, model.encoder, model.critics)
    timing = time_training(model, split, bench, profile_dir=os.path.join(profile_dir, name) if profile_dir else None)
    shares = critic_shares(model)
    useful = {
        "critic_iteration_flop": flops.critic_iteration(net, bench.batch_size, shares=shares),
        "generator_step_flop": flops.generator_step(net, bench.batch_size),
        "g_iteration_flop": flops.generator_iteration(net, bench.batch_size, CRITIC_ITERATIONS, shares=shares),
    }
    achieved = useful["g_iteration_flop"] / timing["g_iteration_s"]
    results["experiments"][name] = {
        **timing, **useful,
        "images_per_s": CRITIC_ITERATIONS * bench.batch_size / timing["g_iteration_s"],
        "g_iteration_flops_per_s": achieved,
        "g_iteration_flop_fraction": achieved / peak,
        "critic_iteration_flop_fraction": useful["critic_iteration_flop"] / timing["critic_iteration_s"] / peak,
        "forward_flop_per_example": {"generator": net.generator, "encoder": net.encoder, **{
            f"critic_{k}": v for k, v in net.critics.items()}},
        "peak_rss_mb_so_far": peak_rss_mb(),
    }
    if i < len(experiments) - 1:
      del model
      keras.backend.clear_session()

  log("Sampler ...")
  net = flops.NetworkFlops.of(model.generator, model.encoder, {})
  sampler = {}
  for key, batch in (("batch1", 1), ("batched", bench.sampler_batch)):
    seconds = time_sampler(model.generator, model.encoder, batch, bench.sampler_steps, bench.repeats)
    scale = flops.sampler_per_chain(net, SAMPLE_STEPS) / flops.sampler_per_chain(net, bench.sampler_steps)
    per_sample = seconds * scale / batch
    flop = flops.sampler_per_chain(net, SAMPLE_STEPS)
    sampler[key] = {"batch": batch, "measured_steps": bench.sampler_steps, "measured_s": seconds,
                    "s_per_sample": per_sample, "flop_per_sample": flop,
                    "flop_fraction": flop / per_sample / peak}
  if profile_dir:
    tf.profiler.experimental.start(os.path.join(profile_dir, "sampler"))
    time_sampler(model.generator, model.encoder, bench.sampler_batch, bench.sampler_steps, 1)
    tf.profiler.experimental.stop()
  results["sampler"] = sampler

  head = results["experiments"][experiments[0]]
  results.update({
      "headline_experiment": experiments[0],
      "critic_iteration_s": head["critic_iteration_s"],
      "generator_step_s": head["generator_step_s"],
      "g_iteration_s": head["g_iteration_s"],
      "g_iteration_flop_fraction": head["g_iteration_flop_fraction"],
      "sampler_s_per_sample_batch1": sampler["batch1"]["s_per_sample"],
      "sampler_s_per_sample_batched": sampler["batched"]["s_per_sample"],
      "sampler_flop_fraction": sampler["batched"]["flop_fraction"],
      "peak_rss_mb": peak_rss_mb(),
      "wall_s": time.perf_counter() - start,
      "load_end": load_info(),
  })
  if config_name == "paper":
    results["thesis_pytorch"] = THESIS_PYTORCH
  return results


def format_top_ops(profile_dir: str, parts) -> str:
  lines = []
  for part in parts:
    ops = top_ops(os.path.join(profile_dir, part))
    total = sum(ms for _, ms in ops) or 1.0
    lines.append(f"top ops, {part} (ms in the traced run, share of the listed):")
    lines += [f"  {op:<28} {ms:>10.1f} {ms / total:>6.1%}" for op, ms in ops]
  return "\n".join(lines)


def format_table(results: dict) -> str:
  """The console table: one row per experiment and per sampler batch."""
  peak = results["peak_fp32_flops"]
  onednn = "on" if results["onednn"] else "off"
  lines = [f"config={results['config']} precision={results['precision']} oneDNN {onednn}, "
           f"peak fp32 {peak / 1e9:.0f} GFLOP/s (3x3 conv), load {results['load_start']['load_1m']:.2f} -> "
           f"{results['load_end']['load_1m']:.2f}, peak RSS {results['peak_rss_mb']:.0f} MB",
           "",
           f"{'experiment':<13} {'critic it s':>11} {'G step s':>9} {'G iter s':>9} {'img/s':>7} "
           f"{'TFLOP/G it':>10} {'GFLOP/s':>8} {'of peak':>8}"]
  for name, e in results["experiments"].items():
    lines.append(f"{name:<13} {e['critic_iteration_s']:>11.3f} {e['generator_step_s']:>9.3f} "
                 f"{e['g_iteration_s']:>9.3f} {e['images_per_s']:>7.1f} {e['g_iteration_flop'] / 1e12:>10.3f} "
                 f"{e['g_iteration_flops_per_s'] / 1e9:>8.1f} {e['g_iteration_flop_fraction']:>8.1%}")
  lines += ["", f"{'sampler':<13} {'batch':>5} {'s/sample (200 steps)':>21} {'GFLOP/sample':>13} {'GFLOP/s':>8} "
            f"{'of peak':>8}"]
  for key, s in results["sampler"].items():
    lines.append(f"{key:<13} {s['batch']:>5} {s['s_per_sample']:>21.3f} {s['flop_per_sample'] / 1e9:>13.1f} "
                 f"{s['flop_per_sample'] / s['s_per_sample'] / 1e9:>8.1f} {s['flop_fraction']:>8.1%}")
  if "thesis_pytorch" in results:
    ref = results["thesis_pytorch"]
    lines += ["", "thesis PyTorch on this machine: critic it {critic_iteration_s} s, G step {generator_step_s} s, "
              "G iteration {g_iteration_s} s, sample {sampler_s_per_sample} s".format(**ref),
              f"speed-up vs thesis: G iteration x{ref['g_iteration_s'] / results['g_iteration_s']:.2f}, "
              f"batched sampler x{ref['sampler_s_per_sample'] / results['sampler_s_per_sample_batched']:.2f}"]
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
  flags.DEFINE_enum("precision", "fp32", ["fp32", "bf16"], "fp32, or mixed bfloat16 (G and critics; E stays "
                    "fp32 as in train.py).")
  flags.DEFINE_list("experiments", ["vanilla", "combined"], f"Which of {', '.join(EXPERIMENTS)}; the first "
                    "gives the headline keys.")
  flags.DEFINE_integer("repeats", None, "Timed rounds (default: the config's).")
  flags.DEFINE_integer("sampler_steps", None, "MALA steps actually run, scaled to 200 (default: the config's).")
  flags.DEFINE_integer("sampler_batch", None, "Chains of the batched sampler (default: the config's).")
  flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads (0: TensorFlow's default).")
  flags.DEFINE_bool("onednn", True, "Run TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS=1). TensorFlow turns "
                    "them on by default only on AVX-512 CPUs; elsewhere its Eigen kernels run, built without "
                    "AVX2/FMA, about 2x slower. Set before TensorFlow is imported.")
  flags.DEFINE_string("profile_dir", None, "Also trace one round per experiment and one sampler run with the "
                      "TensorFlow profiler here, and print the top ops.")


def main(argv):
  if len(argv) > 1:
    print(f"bench: error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
    return 1
  unknown = [e for e in FLAGS.experiments if e not in EXPERIMENTS]
  if unknown or not FLAGS.experiments:
    print(f"bench: error: --experiments: choose from {', '.join(EXPERIMENTS)}, got {','.join(FLAGS.experiments)}",
          file=sys.stderr)
    return 1
  for name in ("repeats", "sampler_steps", "sampler_batch"):
    if getattr(FLAGS, name) is not None and getattr(FLAGS, name) < 1:
      print(f"bench: error: --{name} must be >= 1, got {getattr(FLAGS, name)}", file=sys.stderr)
      return 1
  if FLAGS.inter_op_threads < 0:
    print(f"bench: error: --inter_op_threads must be >= 0, got {FLAGS.inter_op_threads}", file=sys.stderr)
    return 1
  if FLAGS.output and not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.output))):
    print(f"bench: error: --output={FLAGS.output}: no such directory", file=sys.stderr)
    return 1
  if FLAGS.precision == "bf16" and not has_native_bf16():
    print("bench: warning: this CPU has no native bfloat16 (no avx512_bf16/amx_bf16 flag); bf16 is emulated",
          file=sys.stderr)
  if "tensorflow" not in sys.modules:  # The kernel choice is made when TensorFlow loads.
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if FLAGS.onednn else "0"
  import tensorflow as tf
  if FLAGS.inter_op_threads:
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
  results = run(FLAGS.config, FLAGS.precision, tuple(FLAGS.experiments), FLAGS.repeats, FLAGS.sampler_steps,
                FLAGS.sampler_batch, FLAGS.profile_dir)
  results["inter_op_threads"] = FLAGS.inter_op_threads
  print(format_table(results))
  if FLAGS.profile_dir:
    print("\n" + format_top_ops(FLAGS.profile_dir, [*FLAGS.experiments, "sampler"]))
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(results, f, indent=2)
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
