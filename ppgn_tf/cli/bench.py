r"""Benchmark: training and sampling speed against this machine's peak, in fp32 and bf16, beside the thesis' code.

  python -m ppgn_tf.bench --config=paper --precision=fp32,bf16 --peer=torch --output=bench_paper.json
  python -m ppgn_tf.bench --config=quickstart --profile_dir=/tmp/ppgn_profile
  python -m ppgn_tf.bench --serving --saved_models=/tmp/qs_fp32,/tmp/qs_bf16 --output=serving.json

Measures, after warm-up and as medians over `--repeats` rounds: seconds per
critic iteration, per G step and per steady-state G iteration (5 critic
iterations + 1 G step) of the chosen experiments, timed in interleaved rounds
(one G iteration of each in turn; each round's seconds are in the JSON's
experiment_rounds, so two experiments compare round by round on a loaded
machine), and seconds per 200-step
MALA sample at batch 1 and batched, once per --precision. Each is set against
its useful FLOPs (`ppgn_tf.perf.flops`), the FLOP/s of a large convolution measured
here first (the best of several repeats), and the theoretical peak of these
cores (cores x vector lanes x FMA units x 2 x clock, from /proc/cpuinfo).

--peer=torch also times the thesis' training step and its one-chain sampler
restated in PyTorch (`ppgn_tf.perf.bench_peer_torch`), at the same scale in the
same run, and prints this project's times as ratios of the peer's. The G
iterations of the experiments the peer has are timed in interleaved rounds:
this project in each precision and the peer with each --peer_threads count are
built and warmed up first, then each round times one G iteration of each in
turn, starting one later every round. A ratio is the median over rounds of the
round's own ours/peer pair (against the peer's fastest thread count), so a
machine whose speed drifts moves both sides of each pair alike. The sampler
ratios are of medians timed in separate blocks.

The sampler runs `--sampler_steps` steps and is scaled to 200 by FLOPs (each
step costs the same), so the paper configuration finishes in minutes.
Timings on a shared machine are noisy: the load average at start and end is
recorded, and ratios taken within one run are the reliable numbers.

--serving times exported samplers instead (`ppgn_tf.perf.serving_bench`): samples
per second of each export's serving_default at --serving_batches rows (default 1,
10 and 100), the exports in interleaved rounds (e.g. an fp32 and a bf16 export of
one run). A batch above an export's max_batch is split into requests of at most
max_batch rows, as a client must send it.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from ppgn_tf import checks
from ppgn_tf import precision as precision_lib
from ppgn_tf.cli import runner
from ppgn_tf.files import write_json
from ppgn_tf.perf import bench as bench_lib
from ppgn_tf.perf import bench_peer_torch
from ppgn_tf.sampling import export_layout

FLAGS = flags.FLAGS

flags.DEFINE_enum("config", "paper", list(bench_lib.CONFIGS), "Scale: paper (DIM 64, batch 32), quickstart "
                  "(DIM 16: flags/quickstart.cfg, cpu_hour.cfg and hour_scale.cfg), cpu_scale (DIM 8: "
                  "flags/cpu_scale.cfg) or tiny (DIM 2, a self-test).")
flags.DEFINE_string("output", None, "Write the results as JSON here.")
flags.DEFINE_list("precision", ["auto"], "Comma-separated, each timed in turn: fp32, bf16 (mixed bfloat16 for "
                  "G and the critics; E stays fp32 in training as in train.py, and bf16 in the sampler), or auto "
                  "(bf16 only where it runs faster than fp32: a CPU with AMX or a bf16 GPU; else fp32). The first gives the "
                  "headline keys.")
flags.DEFINE_enum("peer", "none", list(bench_lib.PEERS), "torch: also time the thesis' training step and "
                  "one-chain sampler restated in PyTorch (needs torch), and print the ratios.")
flags.DEFINE_list("peer_threads", ["0"], "PyTorch thread counts the peer is timed with, each a contestant of "
                  "the interleaved rounds (0: PyTorch's default); each quantity keeps the fastest. On a loaded "
                  "machine try 0,1.")
flags.DEFINE_list("experiments", ["vanilla", "combined"], f"Which of {', '.join(bench_lib.EXPERIMENTS)}; the "
                  "first gives the headline keys.")
flags.DEFINE_integer("repeats", None, "Timed rounds, interleaved with the peer's under --peer (default: the "
                     "config's).")
flags.DEFINE_integer("sampler_steps", None, "MALA steps actually run, scaled to 200 (default: the config's).")
flags.DEFINE_integer("sampler_batch", None, "Chains of the batched sampler (default: the config's).")
flags.DEFINE_integer("fma_units", 2, "FMA units per core for the theoretical peak (not in /proc/cpuinfo; 2 for "
                     "Intel since Haswell and AMD since Zen 2).")
flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads (0: TensorFlow's default).")
flags.DEFINE_bool("onednn", True, "Run TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS=1). TensorFlow turns "
                  "them on by default only on AVX-512 CPUs; elsewhere its Eigen kernels run, built without "
                  "AVX2/FMA, about 2x slower. Set before TensorFlow is imported.")
flags.DEFINE_bool("serving", False, "Time exported samplers (--saved_models) instead of training and the library "
                  "sampler: samples per second of serving_default at --serving_batches rows.")
flags.DEFINE_list("saved_models", [], "--serving: the exports to time (version directories or base paths), e.g. "
                  "an fp32 and a bf16 export of one run; each is labelled by its precision.")
flags.DEFINE_list("serving_batches", ["1", "10", "100"], "--serving: rows per batch; a batch above an export's "
                  "max_batch is sent in requests of at most max_batch rows.")
flags.DEFINE_string("profile_dir", None, "Also trace one round per experiment and one sampler run with the "
                    "TensorFlow profiler here, and print the top ops.")


def _check_serving_flags() -> tuple[int, ...]:
  """--serving's flags; raises ValueError (one line); returns the batch sizes."""
  if not FLAGS.saved_models:
    raise ValueError("--serving needs --saved_models (comma-separated exports to time)")
  for path in FLAGS.saved_models:
    export_layout.newest_version(path)
  batches = checks.whole_numbers("serving_batches", FLAGS.serving_batches, 1)
  if FLAGS.repeats is not None:
    checks.at_least("repeats", FLAGS.repeats, 1)
  _check_output()
  return batches


def _check_output() -> None:
  """--output's folder must exist (the JSON is written at the end, after minutes of timing)."""
  if FLAGS.output and not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.output))):
    raise ValueError(f"--output={FLAGS.output}: no such directory")


def _check_flags() -> tuple[int, ...]:
  """Raises ValueError (one line) on bad flags; returns the peer's thread counts."""
  experiments = bench_lib.EXPERIMENTS
  if not FLAGS.experiments or any(e not in experiments for e in FLAGS.experiments):
    raise ValueError(f"--experiments: choose from {', '.join(experiments)}, got {','.join(FLAGS.experiments)}")
  if not FLAGS.precision:
    raise ValueError(f"--precision: choose one or more of {', '.join(precision_lib.CHOICES)}")
  for requested in FLAGS.precision:
    precision_lib.check_choice(requested)
  for name in ("repeats", "sampler_steps", "sampler_batch", "fma_units"):
    if getattr(FLAGS, name) is not None:
      checks.at_least(name, getattr(FLAGS, name), 1)
  checks.at_least("inter_op_threads", FLAGS.inter_op_threads, 0)
  _check_output()
  return checks.whole_numbers("peer_threads", FLAGS.peer_threads, 0)


def main(argv):
  try:
    if len(argv) > 1:  # Not runner.refuse_arguments: bench reports stray arguments as its other errors, one line.
      raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.serving:
      batches = _check_serving_flags()
    else:
      peer_threads = _check_flags()
    if FLAGS.peer == "torch" and not FLAGS.serving:
      bench_peer_torch.import_torch()
  except (ValueError, bench_peer_torch.PeerUnavailable) as e:
    return runner.error("bench", e)
  if "tensorflow" not in sys.modules:  # The kernel choice is made when TensorFlow loads.
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if FLAGS.onednn else "0"
  # Imported here, not at the top, on purpose: TensorFlow must load after TF_ENABLE_ONEDNN_OPTS is set from
  # --onednn (tests/test_imports.py lists these function-level imports with their reasons).
  import tensorflow as tf
  from ppgn_tf.perf import timing
  if FLAGS.inter_op_threads:
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
  if FLAGS.serving:
    from ppgn_tf.perf import serving_bench
    results = serving_bench.run(FLAGS.saved_models, batches, FLAGS.repeats or serving_bench.DEFAULT_REPEATS)
    results["onednn"] = FLAGS.onednn
    results["command"] = " ".join(["python -m ppgn_tf.bench", *sys.argv[1:]])
    print(serving_bench.format_table(results))
    if FLAGS.output:
      write_json(FLAGS.output, results)
    return 0
  try:
    precisions = tuple(dict.fromkeys(precision_lib.resolve(p, "bench") for p in FLAGS.precision))
  except ValueError as e:  # bf16 where ONEDNN_MAX_CPU_ISA caps it away.
    return runner.error("bench", e)
  results = timing.run(FLAGS.config, precisions, tuple(FLAGS.experiments), FLAGS.repeats, FLAGS.sampler_steps,
                FLAGS.sampler_batch, FLAGS.profile_dir, FLAGS.peer, FLAGS.fma_units, peer_threads)
  results["inter_op_threads"] = FLAGS.inter_op_threads
  results["command"] = " ".join(["python -m ppgn_tf.bench", *sys.argv[1:]])
  print(bench_lib.format_table(results))
  if FLAGS.profile_dir:
    parts = [os.path.join(p, part) for p in precisions for part in [*FLAGS.experiments, "sampler"]]
    print("\n" + timing.format_top_ops(FLAGS.profile_dir, parts))
  if FLAGS.output:
    write_json(FLAGS.output, results)
  return 0


run = runner.runner(main)  # The console script ppgn-bench; python -m ppgn_tf.bench.

if __name__ == "__main__":
  run()
