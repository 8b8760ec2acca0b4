r"""A grid of sampler settings on one trained run, judged as `ppgn_tf.evaluate` judges, written up as markdown.

  python -m ppgn_tf.sweep --workdir=runs/quickstart --output=docs/reports/sampler.md
  python -m ppgn_tf.sweep --workdir=runs/quickstart --grid=thesis,codes_clip --per_class=50

Every setting samples the same chains (seeds) per class with the run's G (the
averaged G when the run keeps one). The markdown holds a table (accuracy, mean p,
Fréchet distance, diversity, each beside G's ceiling: its reconstructions G(E(x))
of the test images), a plot of those figures for every setting, sample grids for
the best few settings with the thesis' settings as the first row, and the choice
rule's pick. The sampler's `default` preset is that pick on the quick start.
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import flags

from ppgn_tf import checks
from ppgn_tf import files
from ppgn_tf.cli import runner
from ppgn_tf.evaluation import evaluation_plan
from ppgn_tf.evaluation.sweep_grid import GRID

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "A finished training run's workdir.")
flags.DEFINE_list("grid", list(GRID), f"Settings to try, by name: {', '.join(GRID)}.")
flags.DEFINE_integer("per_class", 20, "Chains per class for every setting.")
flags.DEFINE_integer("seed", 0, "Seed of the chains.")
flags.DEFINE_integer("batch", 200, "Chains per sampler call.")
flags.DEFINE_float("min_accuracy", 0.95, "The choice rule's accuracy threshold.")
flags.DEFINE_float("min_diversity_ratio", 0.85, "The choice rule's diversity threshold, as a share of the "
                   "diversity of G's reconstructions G(E(x)).")
flags.DEFINE_float("min_real_diversity_ratio", 0.4, "The choice rule's other diversity threshold, as a share "
                   "of the real test digits' diversity.")
DEFAULT_OUTPUT = "sweep.md"  # In the workdir: never over a report the repository ships unless --output names it.

flags.DEFINE_integer("best", 4, "Settings shown as sample grids besides the thesis'.")
flags.DEFINE_string("eval_classifier_dir", None, "Evaluation classifier (default WORKDIR/eval_classifier).")
flags.DEFINE_string("output", None, "The markdown written (pictures in OUTPUT_STEM_images/, numbers in OUTPUT_STEM.json; "
                    "default WORKDIR/sweep.md).")


def main(argv):
  runner.refuse_arguments(argv)
  try:
    if not FLAGS.workdir:
      raise ValueError("--workdir is required")
    unknown = [n for n in FLAGS.grid if n not in GRID]
    if unknown:
      raise ValueError(f"--grid: unknown setting {unknown[0]} (choose from {', '.join(GRID)})")
    plan = evaluation_plan.make_plan(workdir=FLAGS.workdir, eval_classifier_dir=FLAGS.eval_classifier_dir,
                                     per_class=FLAGS.per_class, batch=FLAGS.batch)  # Sizes first, then files.
    checks.in_interval("min_accuracy", FLAGS.min_accuracy, 0, 1)
    for name in ("min_diversity_ratio", "min_real_diversity_ratio"):
      checks.at_least(name, FLAGS[name].value, 0)
    output = FLAGS.output or os.path.join(FLAGS.workdir, DEFAULT_OUTPUT)
    command = shlex.join(["python", "-m", "ppgn_tf.sweep", *sys.argv[1:]])
    # TensorFlow loads after the input is checked: bad input fails in about a second.
    from ppgn_tf.evaluation import sweep_lib
    result = sweep_lib.run_sweep(plan, FLAGS.grid, FLAGS.seed, FLAGS.min_accuracy, FLAGS.min_diversity_ratio,
                                 FLAGS.min_real_diversity_ratio)
    sweep_lib.write_report(result, output, FLAGS.best, command)
    files.write_json(os.path.splitext(output)[0] + ".json",
                     {k: v for k, v in result.items() if k != "grids"})
  except ValueError as e:
    return runner.error("sweep", e)
  print(output)
  return 0


run = runner.runner(main)  # The console script ppgn-sweep; python -m ppgn_tf.sweep.

if __name__ == "__main__":
  run()
