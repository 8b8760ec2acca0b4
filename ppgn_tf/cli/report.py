r"""A markdown report across training runs: metrics, sample grids (Fig. 3), Wasserstein curves (Fig. 4).

  python -m ppgn_tf.report runs/repro/3a_vanilla runs/repro/3e_combined    # -> runs/repro/3a_vanilla/report.md
  python -m ppgn_tf.report runs/repro/3* --evaluate --eval_classifier_dir=runs/repro/eval_classifier

Each WORKDIR needs summary.json (a finished run) and evaluation.json (from
ppgn_tf.evaluate; --evaluate runs it where missing). Pictures are copied, not
linked, into an images directory beside the markdown, so the report stands alone.

Runs that differ only in seed (config.json without its seed, the same data and bounds) form one group,
named after the runs (`3a_vanilla/seed0`, `3a_vanilla_s0` -> `3a_vanilla`). Each metric of a group is given as
its mean over seeds with a 95% t interval, each seed's value in the per-run table and in OUTPUT_STEM.json;
Fig. 4 shows each group's mean Wasserstein estimates with that interval as a band; and the thesis' claims
(groups named 3a..3g) are decided from seed-paired differences (`ppgn_tf/evaluation/seed_statistics.py`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from absl import flags
from absl import logging

from ppgn_tf.cli import runner
from ppgn_tf.cli import sampler_flags
from ppgn_tf.evaluation import evaluation_plan
from ppgn_tf.evaluation import report_lib

FLAGS = flags.FLAGS

flags.DEFINE_string("output", None, "The markdown written (numbers in OUTPUT_STEM.json, pictures in OUTPUT_STEM_images/; "
                    "default: report.md in the first WORKDIR).")
DEFAULT_OUTPUT = "report.md"  # In the first workdir: never over a report the repository ships unless --output names it.

flags.DEFINE_string("title", "PPGN runs", "Its title.")
flags.DEFINE_string("notes", None, "A markdown file placed after the title (conclusions drawn from the numbers).")
flags.DEFINE_string("images_dir", None, "Where pictures are copied (default: OUTPUT_STEM_images beside it).")
flags.DEFINE_string("beside_evaluation", None, "The file name of a second evaluation in each WORKDIR (e.g. "
                    "evaluation_default.json) whose figures are shown beside evaluation.json's, which decides the "
                    "claims.")
flags.DEFINE_string("bench", None, "A python -m ppgn_tf.bench JSON (--output) whose interleaved rounds decide the "
                    "timing claims (paired by round) instead of the runs' wall times.")
flags.DEFINE_bool("evaluate", False, "Run ppgn_tf.evaluate for workdirs without evaluation.json.")
flags.DEFINE_integer("per_class", 100, "With --evaluate: chains per class.")
flags.DEFINE_integer("batch", 200, "With --evaluate: chains per sampler call.")
flags.DEFINE_string("eval_classifier_dir", None, "With --evaluate: a shared evaluation classifier directory "
                    "(default: each workdir's own).")
sampler_flags.define_sampler_flags("With --evaluate: MALA steps per chain.")


def _evaluate_command(workdir: str, config) -> str:
  """The ppgn_tf.evaluate command equivalent to what --evaluate runs, for the record."""
  args = [f"--workdir={workdir}", f"--per_class={FLAGS.per_class}", f"--sampler_preset={FLAGS.sampler_preset}"]
  args += [f"--{name}={value}" for name, value in sampler_flags.sampler_overrides_from_flags().items()]
  if FLAGS.eval_classifier_dir:
    args.append(f"--eval_classifier_dir={FLAGS.eval_classifier_dir}")
  return shlex.join(["python", "-m", "ppgn_tf.evaluate", *args])


def main(argv):
  workdirs = argv[1:]
  output = FLAGS.output or os.path.join(workdirs[0] if workdirs else ".", DEFAULT_OUTPUT)
  try:
    notes = None
    if FLAGS.notes:
      if not os.path.isfile(FLAGS.notes):
        raise ValueError(f"--notes={FLAGS.notes}: no such file")
      with open(FLAGS.notes) as f:
        notes = f.read()
    report_lib.check_workdirs(workdirs, FLAGS.evaluate)
    bench = None
    if FLAGS.bench:
      if not os.path.isfile(FLAGS.bench):
        raise ValueError(f"--bench={FLAGS.bench}: no such file")
      with open(FLAGS.bench) as f:
        bench = json.load(f)
      report_lib.bench_rounds(bench)  # Refuses a benchmark without interleaved rounds before any work.
    if FLAGS.evaluate:
      config = sampler_flags.sampler_config_from_flags()
      plans = [evaluation_plan.make_plan(workdir=w, eval_classifier_dir=FLAGS.eval_classifier_dir,
                                         per_class=FLAGS.per_class, batch=FLAGS.batch)
               for w in workdirs if not os.path.isfile(os.path.join(w, evaluation_plan.EVALUATION_FILE))]
      if plans:
        # TensorFlow loads after the input is checked, and only when a run needs evaluating.
        from ppgn_tf.evaluation import evaluate_lib
      for plan in plans:
        logging.info("Evaluating %s", plan.workdir)
        evaluate_lib.evaluate(plan, config, command=_evaluate_command(plan.workdir, config))
    report_lib.build_report(workdirs, output, FLAGS.title, FLAGS.images_dir,
                            command=shlex.join(["python", "-m", "ppgn_tf.report", *sys.argv[1:]]), notes=notes,
                            beside=FLAGS.beside_evaluation, bench=bench)
  except ValueError as e:
    return runner.error("report", e)
  print(output)
  return 0


run = runner.runner(main)  # The console script ppgn-report; python -m ppgn_tf.report.

if __name__ == "__main__":
  run()
