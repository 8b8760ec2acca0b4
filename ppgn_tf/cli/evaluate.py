r"""Quantitative evaluation of a sampler by a classifier independent of E.

  python -m ppgn_tf.evaluate --workdir=runs/quickstart
  python -m ppgn_tf.evaluate --saved_model=runs/quickstart/export --per_class=50
  python -m ppgn_tf.evaluate --workdir=runs/a --eval_classifier_dir=runs/eval_classifier  # shared, trained once

The sampler climbs E's class probability, so E's verdict on its own samples is
biased upward; a separately trained classifier of another architecture judges
them instead. Writes EVALUATION.json (metrics, real-image baselines, a per-class
table, and G's ceiling: the same metrics of G(E(x)) for the real test images,
the best a sampler can reach with this G) and EVALUATION_samples.png, and
prints the tables.
"""

from __future__ import annotations

import shlex
import sys

from absl import flags

from ppgn_tf.cli import runner
from ppgn_tf.cli import sampler_flags
from ppgn_tf.data import sources
from ppgn_tf.evaluation import evaluation_plan

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "A training run's workdir (its latest checkpoint, library sampler).")
flags.DEFINE_string("saved_model", None, "An exported SavedModel: version directory or model base path.")
flags.DEFINE_integer("per_class", 100, "Chains per class.")
# With --saved_model and none of these, the export's serving_default runs, with the settings it was exported with.
sampler_flags.define_sampler_flags("MALA steps per chain.")
flags.DEFINE_string("dataset", None, "Data set of the real test images and of the evaluation classifier "
                    "(default: the workdir's, from options.json; needed for a SavedModel outside a workdir).")
flags.DEFINE_string("data_dir", None, "tfds data directory (default: the workdir's).")
flags.DEFINE_string("eval_classifier_dir", None, "Where the evaluation classifier is cached (trained there if "
                    "absent; default WORKDIR/eval_classifier or next to the SavedModel). Share one per data set.")
flags.DEFINE_string("output", None, "The JSON written (default WORKDIR/evaluation.json or next to the SavedModel).")
flags.DEFINE_integer("batch", 200, "Chains per sampler call (progress is logged after each).")
flags.DEFINE_integer("seed", 0, "Seed of the chains (the same chains as ppgn_tf.sample's).")
flags.DEFINE_integer("recon_images", 0, "Test images for the reconstruction error (0: all).")


def main(argv):
  runner.refuse_arguments(argv)
  try:
    plan = evaluation_plan.make_plan(FLAGS.workdir, FLAGS.saved_model, FLAGS.dataset, FLAGS.data_dir,
                                     FLAGS.eval_classifier_dir, FLAGS.output, per_class=FLAGS.per_class,
                                     batch=FLAGS.batch, recon_images=FLAGS.recon_images)
    sources.check_source(plan.dataset)
    if plan.saved_model is not None:
      config = sampler_flags.saved_model_sampler_config(plan.saved_model)
    else:
      config = sampler_flags.sampler_config_from_flags()
    # TensorFlow loads after the input is checked: bad input fails in about a second.
    from ppgn_tf.evaluation import evaluate_lib
    result = evaluate_lib.evaluate(plan, config, seed=FLAGS.seed,
                                   command=shlex.join(["python", "-m", "ppgn_tf.evaluate", *sys.argv[1:]]))
  except ValueError as e:
    return runner.error("evaluate", e)
  print(evaluate_lib.format_tables(result))
  print(plan.output)
  return 0


run = runner.runner(main)  # The console script ppgn-evaluate; python -m ppgn_tf.evaluate.

if __name__ == "__main__":
  run()
