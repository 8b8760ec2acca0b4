"""The sampler's settings, its condition and --precision as flags, shared by the export, sample, evaluate and report
programs.

Each program calls define_sampler_flags() (and define_condition_flags()) once when it is imported; the functions
below turn the parsed flags into the library's SamplerConfig and ConditionSpec.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from ppgn_tf import precision
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import sampler_config

FLAGS = flags.FLAGS

# The sampler's settings as flags: name -> (kind, help). Each defaults to the chosen --sampler_preset's value.
SAMPLER_FLAGS = {
    "steps": ("integer", "Steps of each chain."),
    "epsilon1": ("float", "Weight of the prior term R_h(h) - h."),
    "epsilon2": ("float", "Weight of the class-conditioning gradient."),
    "epsilon3": ("float", "Standard deviation of the noise "
                          "(the thesis: 1e-15; larger values let chains mix)."),
    "epsilon4": ("float", "In-painting: weight of the gradient pulling G(h) "
                          "towards the known pixels."),
    "start_noise": ("float", "In-painting: standard deviation of the noise added to the masked image's code where "
                             "each chain starts (0: every seed starts at the same code)."),
    "inpaint_start": ("string", "In-painting: where each chain starts: masked_image (E's code of the masked image, "
                                "its unknown pixels at the data's mean: the original PPGN) or h0_fill (its unknown "
                                "pixels drawn by G from --h0's code of the requested class)."),
    "h0": ("string", "Where chains start: " + "; ".join(f"{name} ({what})" for name, what in
                                                          sampler_config.H0_HELP.items()) + "."),
    "h0_components": ("integer", "--h0=class_gaussian: Gaussians per class, a mixture fitted by k-means "
                                 "(1: one Gaussian per class)."),
    "clip_min": ("float", "Clip codes to at least this value after each step."),
    "clip_max": ("float", "Clip codes to at most this value after each step."),
    "clip_percentile": ("float", "Clip each unit to the [p, 100-p] percentile range "
                                 "of the training codes."),
    "normalize_step": ("bool", "Divide each step by its mean absolute value (the original PPGN sampler)."),
    "step_size": ("float", "Step size lr multiplying every step "
                           "(1: Eq. 8 as written)."),
    "step_size_end": ("float", "Step size at the last step, linear from --step_size "
                               "(default: constant)."),
    "reset_every": ("integer", "Restart each chain from a fresh h_0 every N steps (0: never)."),
    "stop_probability": ("float", "A chain stops moving once E gives the requested class this probability "
                                  "(default: never)."),
}


def define_sampler_flags(steps_help: str | None = None) -> None:
  """--sampler_preset and the sampler's settings as flags."""
  flags.DEFINE_string("sampler_preset", sampler_config.DEFAULT_PRESET,
                      "Named sampler settings: default (new digits, chosen by python -m ppgn_tf.sweep, see "
                      "docs/reports/sampler.md), thesis (Eq. 8 with the thesis' values) or training_digit (chains "
                      "start at a training digit's code: near-reconstructions, not new digits). The flags below "
                      "override single settings.")
  for name, (kind, help_text) in SAMPLER_FLAGS.items():
    help_text = f"{steps_help or help_text} (default: the preset's)" if name == "steps" else \
        f"{help_text} (default: the preset's)"
    # Values are checked by SamplerConfig.validate, so every bad value gives one error line.
    getattr(flags, f"DEFINE_{kind}")(name, None, help_text)


def define_condition_flags(export: bool = False) -> None:
  """--condition_model, --condition_layer and --unit: what the chains are conditioned on (default: E's classes)."""
  flags.DEFINE_string("condition_model", None, "Plug & Play: condition on the classes of a classifier of your own "
                      "instead of E's: a Keras model file (.keras) or a SavedModel directory (its serving_default "
                      "is called) mapping [N, 28, 28, 1] images with pixels in [0, 1] to the logits or "
                      "probabilities of its K >= 2 classes. The chains' prior term stays E(G(h))."
                      + (" Baked into the export, and named in assets.extra/sampler.json; class_id then ranges over "
                         "[0, K)." if export else " The classes 0..K-1 take the rows of the grid."))
  if export:
    flags.DEFINE_string("condition_layer", None, "Also export a sample_unit signature (inputs unit and seed, one "
                        "unit per row) whose chains are conditioned on that unit of this layer of E (conv1, conv2, "
                        "conv3, fc1, fc2; a conv layer's units are its output flattened: row, column, channel).")
    flags.DEFINE_integer("unit", None, "Not for an export: its sample_unit signature takes the unit with each "
                         "request (give --condition_layer alone).")
  else:
    flags.DEFINE_string("condition_layer", None, "Condition on one unit (--unit) of this layer of E instead of a "
                        "class: conv1, conv2, conv3, fc1 or fc2. The preset's --stop_probability (a class "
                        "probability) is off for a unit.")
    flags.DEFINE_integer("unit", None, "With --condition_layer: the unit to condition on (a conv layer's units are "
                         "its output flattened: row, column, channel).")


def condition_spec_from_flags(export: bool = False) -> condition_spec.ConditionSpec:
  """The condition the flags name, checked (one line naming the flag); for an export --unit is refused."""
  spec = condition_spec.ConditionSpec(FLAGS.condition_model, FLAGS.condition_layer, FLAGS.unit)
  spec.validate(unit_per_row=export)
  return spec


def define_precision_flag(help_text: str) -> None:
  """--precision, a string the library checks (precision.check_choice) with the rest of the input."""
  flags.DEFINE_string("precision", precision.AUTO, f"One of {', '.join(precision.CHOICES)}; auto: bf16 only where it "
                      f"runs faster than fp32 (a CPU with AMX or a bf16 GPU), else fp32. {help_text}")


def define_inpaint_preset_flag() -> None:
  """--inpaint_preset: the in-painting settings (sampler_config.INPAINT_PRESETS), and the export's signature."""
  flags.DEFINE_string("inpaint_preset", "inpaint", "In-painting settings: inpaint (deterministic: one completion "
                      "per image and class, the original PPGN's chain; the default) or inpaint_varied (noise at the "
                      "start and in each step: each seed completes differently). With --saved_model, the export's "
                      "signature of that name runs. The sampler flags override single settings (--workdir only).")


def inpaint_config_from_flags():
  """A validated SamplerConfig for in-painting: --inpaint_preset's settings with the given sampler flags over them;
  --sampler_preset (free sampling's) is refused. Raises ValueError."""
  if FLAGS["sampler_preset"].present:
    raise ValueError("in-painting takes --inpaint_preset (inpaint or inpaint_varied), not --sampler_preset")
  return sampler_config_from_flags(sampler_config.inpaint_preset(FLAGS.inpaint_preset))


def sampler_overrides_from_flags() -> dict:
  """The sampler settings given on the command line (not left to the preset)."""
  return {name: FLAGS[name].value for name in SAMPLER_FLAGS if FLAGS[name].present}


def sampler_config_from_flags(base=None, condition: condition_spec.ConditionSpec | None = None):
  """A validated SamplerConfig: --sampler_preset's settings (or `base`, unless the preset was given
  explicitly) with the given flags over them; for chains conditioned on a unit (`condition`), without the
  preset's stop_probability (`sampler_config.for_unit_condition`). Raises ValueError."""
  if base is None or FLAGS["sampler_preset"].present:
    base = sampler_config.preset(FLAGS.sampler_preset)
  config = dataclasses.replace(base, **sampler_overrides_from_flags())
  config.validate()
  if condition is not None and condition.kind == condition_spec.UNIT:
    if FLAGS["stop_probability"].present:
      raise ValueError(sampler_config.STOP_PROBABILITY_NEEDS_CLASSES)
    config = sampler_config.for_unit_condition(config)
    config.validate()
  return config


def saved_model_sampler_config(path: str):
  """For a SavedModel source: None (run its serving_default) when no setting was given; else the export's
  settings with the given ones over them. Only the `sample` signature's inputs can change."""
  overrides = sampler_overrides_from_flags()
  if FLAGS["sampler_preset"].present:
    raise ValueError("--sampler_preset applies to --workdir only (a SavedModel has the settings it was "
                     "exported with; --steps and --epsilon1..3 can change)")
  fixed = sorted(set(overrides) - set(export_layout.SIGNATURE_SETTINGS))
  if fixed:
    raise ValueError(f"--{fixed[0]} applies to --workdir only (a SavedModel has the settings it was exported "
                     f"with; only {', '.join('--' + n for n in export_layout.SIGNATURE_SETTINGS)} can change)")
  if not overrides:
    return None
  return sampler_config_from_flags(export_layout.read_export_settings(path))
