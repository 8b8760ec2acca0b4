r"""Quantitative evaluation of a sampler by a classifier independent of E.

  python -m ppgn_tf.evaluate --workdir=runs/quickstart
  python -m ppgn_tf.evaluate --saved_model=runs/quickstart/export --per_class=50
  python -m ppgn_tf.evaluate --workdir=runs/a --eval_classifier_dir=runs/eval_classifier  # shared, trained once
  python -m ppgn_tf.evaluate --saved_model=runs/quickstart/export --inpaint_mask=all --per_class=25  # in-painting
  python -m ppgn_tf.evaluate --workdir=runs/cpu_hour --checkpoints --per_class=50  # quality against time
  python -m ppgn_tf.evaluate --workdir=runs/quickstart --condition_model=odd_even.keras  # Plug & Play

The sampler climbs E's class probability, so E's verdict on its own samples is
biased upward; a separately trained classifier of another architecture judges
them instead. Writes EVALUATION.json (metrics, real-image baselines, a per-class
table, and G's ceiling: the same metrics of G(E(x)) for the real test images,
the best a sampler can reach with this G; and the copy test: how far the samples
lie from G(E(x)) of the training images, against held-out images) and
EVALUATION_samples.png, and prints the tables.

With --condition_model (or --condition_layer and --unit; or an export conditioned
on a classifier) the chains follow that condition instead of E's classes, and the
evaluation compares them with the same chains at epsilon2 = 0: the condition's own
verdict (the classifier's probability of the requested class, the unit's
activation) and the evaluation classifier's (are they still digits). Writes
evaluation_CONDITION.json and its _samples.png (docs/conditioning.md).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys

from absl import flags

from ppgn_tf import checks
from ppgn_tf.cli import runner
from ppgn_tf.cli import sampler_flags
from ppgn_tf.data import sources
from ppgn_tf.evaluation import evaluation_plan
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import sampler_config

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "A training run's workdir (its latest checkpoint, library sampler).")
flags.DEFINE_string("saved_model", None, "An exported SavedModel: version directory or model base path.")
flags.DEFINE_integer("per_class", 100, "Chains per class.")
# With --saved_model and none of these, the export's serving_default runs, with the settings it was exported with.
sampler_flags.define_sampler_flags("MALA steps per chain.")
sampler_flags.define_condition_flags()
flags.DEFINE_string("dataset", None, "Data set of the real test images and of the evaluation classifier "
                    "(default: the workdir's, from options.json; needed for a SavedModel outside a workdir).")
flags.DEFINE_string("data_dir", None, "tfds data directory (default: the workdir's).")
flags.DEFINE_string("eval_classifier_dir", None, "Where the evaluation classifier is cached (trained there if "
                    "absent; default WORKDIR/eval_classifier or next to the SavedModel). Share one per data set.")
flags.DEFINE_string("output", None, "The JSON written (default WORKDIR/evaluation.json or next to the SavedModel).")
flags.DEFINE_integer("batch", 200, "Chains per sampler call (progress is logged after each).")
flags.DEFINE_integer("seed", 0, "Seed of the chains (the same chains as ppgn_tf.sample's).")
flags.DEFINE_integer("recon_images", 0, "Held-out test digits G reconstructs for its ceiling, as many of each "
                     "class (0: all of them, half the test set); fewer also makes every Frechet distance's sets "
                     "smaller.")
flags.DEFINE_bool("checkpoints", False, "Evaluate every checkpoint a run kept (train.py --keep_checkpoint_every) "
                  "and its latest one instead (--workdir only): writes WORKDIR/quality_vs_time.json (or --output) "
                  "and its PNG, accuracy, diversity and FD of the samples and of G(E(x_test)) against G steps "
                  "and minutes, with the thesis' GPU run as horizontal lines.")
flags.DEFINE_string("inpaint_mask", None, "Evaluate in-painting instead, for each of these named masks (comma-"
                    "separated, or all: " + ", ".join(sampler_config.NAMED_MASKS) + "; left: the left half is known, "
                    "the right half filled in): PER_CLASS test digits of each class from the second half of each "
                    "class' test digits (the first half tuned the in-painting presets), completed by the inpaint "
                    "and inpaint_varied presets (an export's signatures of those names), against the training mean "
                    "image and a chain from the sampler's own h_0; with the seed spread, class steering and a grid. "
                    "Writes WORKDIR/inpainting.json (or next to the SavedModel, or --output) and a PNG per mask.")
flags.DEFINE_integer("inpaint_steering_per_class", None, "--inpaint_mask: how many of the PER_CLASS digits of each "
                     "class are asked for every class (default: all of them).")


def main(argv):
  runner.refuse_arguments(argv)
  try:
    masks = None
    if FLAGS.inpaint_mask:
      masks = (sampler_config.NAMED_MASKS if FLAGS.inpaint_mask == "all" else
               tuple(m.strip() for m in FLAGS.inpaint_mask.split(",")))
      for name in masks:
        checks.one_of("inpaint_mask", name, ("all",) + sampler_config.NAMED_MASKS)
    if FLAGS.inpaint_steering_per_class is not None:
      checks.at_least("inpaint_steering_per_class", FLAGS.inpaint_steering_per_class, 1)
    if FLAGS.checkpoints and FLAGS.saved_model:
      raise ValueError("--checkpoints evaluates a --workdir's checkpoints (an export has none)")
    if FLAGS.checkpoints and FLAGS.inpaint_mask:
      raise ValueError("give at most one of --checkpoints and --inpaint_mask")
    spec = sampler_flags.condition_spec_from_flags()
    if spec.kind != condition_spec.ENCODER_CLASSES and (FLAGS.checkpoints or FLAGS.inpaint_mask):
      raise ValueError("--checkpoints and --inpaint_mask evaluate E's classes (give no --condition_model, "
                       "--condition_layer)")
    if spec.model_path and FLAGS.saved_model:
      raise ValueError("--condition_model applies to --workdir only (a SavedModel conditions on what it was "
                       "exported with: export.py --condition_model)")
    on_condition = spec.kind != condition_spec.ENCODER_CLASSES
    output = FLAGS.output
    if output is None and FLAGS.workdir:
      if FLAGS.inpaint_mask:
        output = os.path.join(FLAGS.workdir, "inpainting.json")
      elif FLAGS.checkpoints:
        output = os.path.join(FLAGS.workdir, "quality_vs_time.json")
      elif on_condition:
        output = os.path.join(FLAGS.workdir, f"evaluation_{spec.name}.json")
    plan = evaluation_plan.make_plan(FLAGS.workdir, FLAGS.saved_model, FLAGS.dataset, FLAGS.data_dir,
                                     FLAGS.eval_classifier_dir, output, per_class=FLAGS.per_class,
                                     batch=FLAGS.batch, recon_images=FLAGS.recon_images)
    sources.check_source(plan.dataset)
    if FLAGS.inpaint_mask and plan.saved_model is not None and FLAGS.output is None:
      plan = dataclasses.replace(plan, output=os.path.join(os.path.dirname(plan.output), "inpainting.json"))
    if plan.saved_model is not None:
      # An export conditioned on a classifier is measured against that condition.
      exported = export_layout.read_condition(plan.saved_model)["kind"]
      on_condition = on_condition or exported == condition_spec.CLASSIFIER
      config = sampler_flags.saved_model_sampler_config(plan.saved_model)
    else:
      config = sampler_flags.sampler_config_from_flags(condition=spec)
    # TensorFlow loads after the input is checked: bad input fails in about a second.
    from ppgn_tf.evaluation import condition_evaluation
    from ppgn_tf.evaluation import evaluate_lib
    from ppgn_tf.evaluation import inpaint_evaluation
    command = shlex.join(["python", "-m", "ppgn_tf.evaluate", *sys.argv[1:]])
    if on_condition:
      result = condition_evaluation.evaluate_condition(plan, config, spec, seed=FLAGS.seed, command=command)
      print(condition_evaluation.format_condition(result))
    elif FLAGS.inpaint_mask:
      result = inpaint_evaluation.evaluate_inpainting(plan, config, masks, seed=FLAGS.seed,
                                                      steering_per_class=FLAGS.inpaint_steering_per_class,
                                                      command=command)
      print(inpaint_evaluation.format_inpainting(result))
    elif FLAGS.checkpoints:
      result = evaluate_lib.evaluate_checkpoints(plan, config, seed=FLAGS.seed, command=command)
      print(evaluate_lib.format_checkpoints(result))
    else:
      result = evaluate_lib.evaluate(plan, config, seed=FLAGS.seed, command=command)
      print(evaluate_lib.format_tables(result))
  except ValueError as e:
    return runner.error("evaluate", e)
  print(plan.output)
  return 0


run = runner.runner(main)  # The console script ppgn-evaluate; python -m ppgn_tf.evaluate.

if __name__ == "__main__":
  run()
