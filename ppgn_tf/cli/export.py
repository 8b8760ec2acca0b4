r"""Exports a trained run's MALA-approx sampler as a standalone SavedModel.

  python export.py --workdir=runs/quickstart --export_dir=exported/ppgn

writes exported/ppgn/N/ (TensorFlow Serving's layout, N one above the highest
existing version unless --version is given). An existing version is never
touched. The SavedModel needs TensorFlow only, not this package.

  python export.py --workdir=runs/quickstart --export_dir=exported/odd_even --condition_model=odd_even.keras
  python export.py --workdir=runs/quickstart --export_dir=exported/units --condition_layer=fc1

Plug & Play: --condition_model bakes a classifier of your own into the graph, and
the class signatures condition on its K classes (class_id in [0, K)) instead of
E's; --condition_layer adds a sample_unit signature (unit, seed) conditioned on
the units of that layer of E. See docs/conditioning.md.
"""

from __future__ import annotations

import sys

from absl import flags
from absl import logging

from ppgn_tf import files
from ppgn_tf import precision as precision_lib
from ppgn_tf.cli import runner
from ppgn_tf.cli import sampler_flags
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import sampler_config
from ppgn_tf.training import run_files

flags.DEFINE_string("workdir", None, "Workdir of a finished (or checkpointed) training run.")
flags.DEFINE_string("export_dir", None, "Model base path; the SavedModel goes to EXPORT_DIR/VERSION/.")
flags.DEFINE_integer("version", None, "Version number (default: one above the highest existing).")
sampler_flags.define_sampler_flags("MALA steps of the serving_default signature.")  # Also inpaint's settings.
sampler_flags.define_condition_flags(export=True)
sampler_flags.define_precision_flag("What the exported G and E compute in, whatever precision trained them; "
                                    "inputs and outputs are float32 either way and a bf16 export runs on any CPU "
                                    "(emulated, slower, where it lacks bfloat16: export with fp32 for such a serving "
                                    "machine).")
flags.DEFINE_bool("export_training_codes", False, "Embed the stored training codes in the graph, which the h_0 "
                  "modes codes, class_codes and marginals need: anyone with the SavedModel can then decode G's "
                  "picture of every training digit. Recorded in assets.extra/sampler.json. Without it such "
                  "settings are refused; the default h_0 (class_gaussian) embeds summary statistics only.")
flags.DEFINE_integer("max_batch", export_layout.DEFAULT_MAX_BATCH, "The most rows one request may send to any "
                     "signature; more is refused with InvalidArgument before any work.")
flags.DEFINE_integer("max_steps", export_layout.DEFAULT_MAX_STEPS, "The most MALA steps one `sample` request may "
                     "ask for; more is refused with InvalidArgument before any work.")
flags.mark_flags_as_required(["workdir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
  runner.refuse_arguments(argv)
  try:
    config = sampler_flags.sampler_config_from_flags()
    precision_lib.check_choice(FLAGS.precision)
    condition = sampler_flags.condition_spec_from_flags(export=True)
    sampler_config.check_export_embedding(config, FLAGS.export_training_codes)
    export_layout.check_limits(FLAGS.max_batch, FLAGS.max_steps, config.steps)
    version = export_layout.check_export_dir(FLAGS.export_dir, FLAGS.version)
    run_files.check_workdir(FLAGS.workdir)
    # TensorFlow loads after the input is checked: bad input fails in about a second.
    from ppgn_tf.sampling import condition_model
    from ppgn_tf.sampling import trained_run
    # The classifier first: a file the sampler cannot use fails before the run is loaded.
    classifier = condition_model.load_classifier(condition.model_path) if condition.model_path else None
    model = trained_run.load_trained(FLAGS.workdir)
    prior = trained_run.load_code_prior(FLAGS.workdir, model)  # The in-painting signatures read its statistics.
    precision = precision_lib.resolve(FLAGS.precision, "export")
    path = trained_run.export_sampler(model, config, FLAGS.export_dir, prior, precision,
                                      embed_training_codes=FLAGS.export_training_codes, version=version,
                                      max_batch=FLAGS.max_batch, max_steps=FLAGS.max_steps,
                                      condition_model=classifier, unit_layer=condition.layer)
  except (ValueError, files.StorageError) as e:
    print(f"export.py: error: {e}", file=sys.stderr)
    return 1
  logging.info("Exported the sampler of %s (generator step %d) to %s", FLAGS.workdir,
               int(model.generator_steps.numpy()), path)
  print(path)
  return 0


run = runner.runner(main)  # The console script ppgn-export.


if __name__ == "__main__":
  run()
