r"""Class-conditional samples as pictures: a grid with one row per class and a GIF of the chains.

  python -m ppgn_tf.sample --workdir=runs/quickstart
  python -m ppgn_tf.sample --saved_model=runs/quickstart/export --output_dir=/tmp/samples
  python -m ppgn_tf.sample --workdir=runs/quickstart --inpaint_image=test:7 --inpaint_mask=right
  python -m ppgn_tf.sample --workdir=runs/quickstart --condition_model=odd_even.keras  # Plug & Play
  python -m ppgn_tf.sample --workdir=runs/quickstart --condition_layer=fc1 --unit=5

In-painting (--inpaint_image, --inpaint_mask) keeps the known pixels of one image
and fills in the rest for every class: inpaint.png has one row per class, the
masked input first, then --per_class completions with --inpaint_preset=inpaint_varied
(each seed its own), or the one completion of the deterministic default
--inpaint_preset=inpaint.

From a workdir the library sampler runs (every setting is a flag); from an
exported SavedModel (a version directory, or a base path: its newest version)
the `sample` signature runs, so only TensorFlow is needed.

Plug & Play: --condition_model conditions the chains on the classes of a
classifier of your own (one row per class), --condition_layer with --unit on one
unit of E (one row); an export conditions on what it was exported with (--unit:
its sample_unit signature). samples.json then holds the condition's verdict.
See docs/conditioning.md.
"""

from __future__ import annotations

import os

from absl import flags
from absl import logging

from ppgn_tf import checks
from ppgn_tf import precision as precision_lib
from ppgn_tf.cli import runner
from ppgn_tf.cli import sampler_flags
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import inpaint_inputs
from ppgn_tf.sampling import sampler_config
from ppgn_tf.training import run_files

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "A training run's workdir (uses its latest checkpoint).")
flags.DEFINE_string("saved_model", None, "An exported SavedModel: version directory or model base path.")
flags.DEFINE_string("output_dir", None, "Where to write samples.png, chains.gif, samples.json "
                    "(default: WORKDIR/samples, or SAVED_MODEL/../samples).")
flags.DEFINE_integer("per_class", 10, "Chains per class (columns of the grid).")
flags.DEFINE_integer("seed", 0, "Seed of the chains (h_0 and noise).")
sampler_flags.define_sampler_flags()
sampler_flags.define_condition_flags()
sampler_flags.define_precision_flag("With --workdir: what G and E compute in (the chain state h stays float32). "
                                    "A SavedModel computes in the precision it was exported with.")
flags.DEFINE_integer("gif_frames", sampler_config.GIF_FRAMES, "Frames of chains.gif (0: no GIF).")
flags.DEFINE_string("inpaint_image", None, "In-paint this image instead of sampling: a 28x28 grayscale .png, a "
                    ".npy of pixels in [0, 1], or test:N (test image N of the run's data set).")
sampler_flags.define_inpaint_preset_flag()
flags.DEFINE_string("inpaint_mask", "right", "Known pixels for --inpaint_image: a named mask (left, right, top, "
                    "bottom: that half is known; centre: the border is known) or a .png/.npy of 0 (fill in) "
                    "and 1 (known).")


def main(argv):
  runner.refuse_arguments(argv)
  try:
    if (FLAGS.workdir is None) == (FLAGS.saved_model is None):
      raise ValueError("give exactly one of --workdir and --saved_model")
    checks.at_least("per_class", FLAGS.per_class, 1)
    precision_lib.check_choice(FLAGS.precision)
    checks.at_least("gif_frames", FLAGS.gif_frames, 0)
    spec = sampler_flags.condition_spec_from_flags()
    on_classes_of_e = spec.kind == condition_spec.ENCODER_CLASSES
    if FLAGS.inpaint_image and not on_classes_of_e:
      raise ValueError("--inpaint_image conditions on E's classes (give no --condition_model, --condition_layer)")
    # Conditioned grids go beside the class grid, not over it.
    samples_dir = run_files.SAMPLES_DIR if on_classes_of_e else f"{run_files.SAMPLES_DIR}_{spec.name}"
    if FLAGS.inpaint_image:
      checks.one_of("inpaint_preset", FLAGS.inpaint_preset, tuple(sampler_config.INPAINT_PRESETS))
    if FLAGS.workdir:
      config = (sampler_flags.inpaint_config_from_flags() if FLAGS.inpaint_image else
                sampler_flags.sampler_config_from_flags(condition=spec))
      run_files.check_workdir(FLAGS.workdir)
      options = run_files.read_options(FLAGS.workdir) if FLAGS.inpaint_image else {}
      output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, samples_dir)
    else:
      if FLAGS["precision"].present and FLAGS.precision != "auto":
        raise ValueError("--precision applies to --workdir only (a SavedModel computes in the precision it was "
                         "exported with: export.py --precision)")
      path = export_layout.newest_version(FLAGS.saved_model)
      if spec.model_path:
        raise ValueError("--condition_model applies to --workdir only (a SavedModel conditions on what it was "
                         "exported with: export.py --condition_model)")
      if spec.unit is not None:
        exported_layer = (export_layout.read_unit_condition(path) or {}).get("layer")
        if spec.layer != exported_layer:
          raise ValueError(f"--condition_layer={spec.layer}: {path} conditions on units of "
                           f"{exported_layer or 'no layer'} (export with --condition_layer={spec.layer})")
        if sampler_flags.sampler_overrides_from_flags() or FLAGS["sampler_preset"].present:
          raise ValueError("with --saved_model and --unit, sample_unit runs the settings it was exported with")
      if FLAGS.inpaint_image:
        if sampler_flags.sampler_overrides_from_flags() or FLAGS["sampler_preset"].present:
          raise ValueError("with --saved_model, in-painting runs the settings it was exported with "
                           "(choose its signature with --inpaint_preset)")
        recorded = export_layout.read_inpaint_settings(path)
        if FLAGS.inpaint_preset not in recorded:
          raise ValueError(f"--inpaint_preset={FLAGS.inpaint_preset}: {path} has no such in-painting signature "
                           "(exported before it was added: export it again)")
        config = sampler_config.from_json(recorded[FLAGS.inpaint_preset])
        options = export_layout.find_workdir_options(path)
      else:
        config = sampler_flags.saved_model_sampler_config(path)
      output_dir = FLAGS.output_dir or os.path.join(os.path.dirname(os.path.abspath(path)), samples_dir)
    inpaint = None
    if FLAGS.inpaint_image:
      # Columns of each class' row: one per seed when seeds change the completion; else the one completion.
      columns = FLAGS.per_class if config.inpaint_varies else 1
      inpaint = inpaint_inputs.read_inpaint_inputs(FLAGS.inpaint_image, FLAGS.inpaint_mask, options.get("dataset"),
                                                   options.get("data_dir"))
    # TensorFlow loads after the input is checked: bad input fails in about a second.
    from ppgn_tf.sampling import condition_model
    from ppgn_tf.sampling import sample_lib
    from ppgn_tf.sampling import trained_run
    if FLAGS.workdir:
      model = trained_run.load_trained(FLAGS.workdir)
      condition = condition_model.resolve(spec, model.encoder)  # Checked before any chain runs.
      prior = trained_run.load_code_prior(FLAGS.workdir, model) if config.needs_code_prior else None
      precision = precision_lib.resolve(FLAGS.precision, "sample")
      if inpaint is not None:
        grid, probs = sample_lib.inpaint_from_model(model, config, inpaint, columns, FLAGS.seed, prior, precision)
        title = f"{FLAGS.workdir}: in-painting ({FLAGS.inpaint_preset}), {config.steps} MALA steps"
      else:
        images, frames, outputs = sample_lib.sample_grid_from_model(model, config, FLAGS.per_class, FLAGS.seed,
                                                                    FLAGS.gif_frames, prior, precision, condition)
        title = f"{FLAGS.workdir}: generator step {int(model.generator_steps.numpy())}, {config.steps} MALA steps"
        record = condition.record()
    elif inpaint is not None:
      grid, probs = sample_lib.inpaint_from_saved_model(path, inpaint, columns, FLAGS.seed, FLAGS.inpaint_preset)
      title = f"{path}: in-painting ({FLAGS.inpaint_preset})"
    else:
      record = sample_lib.saved_model_condition(path, spec.unit)
      images, frames, outputs = sample_lib.sample_grid_from_saved_model(path, config, FLAGS.per_class, FLAGS.seed,
                                                                        FLAGS.gif_frames, spec.unit)
      title = f"{path}: {(config or export_layout.read_export_settings(path)).steps} MALA steps"
    if inpaint is None and record["kind"] != condition_spec.ENCODER_CLASSES:
      title += f", conditioned on {condition_spec.describe(record)}"
  except ValueError as e:
    return runner.error("sample", e)
  if inpaint is not None:
    stats = sample_lib.write_inpaint_outputs(grid, probs, output_dir, columns, title)
    logging.info("Wrote %s/inpaint.png; encoder's own accuracy on the completions %.3f", output_dir,
                 stats["encoder_accuracy"])
    print(os.path.join(output_dir, "inpaint.png"))
    return 0
  stats = sample_lib.write_outputs(images, frames, outputs, output_dir, FLAGS.per_class, title, record)
  verdict = {condition_spec.ENCODER_CLASSES: ("encoder's own accuracy on the samples", "encoder_accuracy"),
             condition_spec.CLASSIFIER: ("the condition classifier's mean probability of the requested class",
                                         "mean_requested_probability"),
             condition_spec.UNIT: ("the unit's mean activation", "mean_activation")}[record["kind"]]
  logging.info("Wrote %s/%s%s; %s %.3f", output_dir, run_files.SAMPLES_GRID, " and chains.gif" if frames else "",
               verdict[0], stats[verdict[1]])
  print(os.path.join(output_dir, run_files.SAMPLES_GRID))
  return 0


run = runner.runner(main)  # The console script ppgn-sample; python -m ppgn_tf.sample.

if __name__ == "__main__":
  run()
