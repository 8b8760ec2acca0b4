"""The sampler's settings and --precision as flags, shared by the export, sample, evaluate and report programs.

Each program calls define_sampler_flags() once when it is imported; the functions below turn the parsed
flags into the library's SamplerConfig.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from ppgn_tf import precision
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
  flags.DEFINE_string("sampler_preset", "default",
                      "Named sampler settings: default (new digits, chosen by python -m ppgn_tf.sweep, see "
                      "docs/reports/sampler.md), thesis (Eq. 8 with the thesis' values) or training_digit (chains "
                      "start at a training digit's code: near-reconstructions, not new digits). The flags below "
                      "override single settings.")
  for name, (kind, help_text) in SAMPLER_FLAGS.items():
    help_text = f"{steps_help or help_text} (default: the preset's)" if name == "steps" else \
        f"{help_text} (default: the preset's)"
    # Values are checked by SamplerConfig.validate, so every bad value gives one error line.
    getattr(flags, f"DEFINE_{kind}")(name, None, help_text)


def define_precision_flag(help_text: str) -> None:
  """--precision, a string the library checks (precision.check_choice) with the rest of the input."""
  flags.DEFINE_string("precision", precision.AUTO, f"One of {', '.join(precision.CHOICES)}; auto: bf16 only where it "
                      f"runs faster than fp32 (a CPU with AMX or a bf16 GPU), else fp32. {help_text}")


def sampler_overrides_from_flags() -> dict:
  """The sampler settings given on the command line (not left to the preset)."""
  return {name: FLAGS[name].value for name in SAMPLER_FLAGS if FLAGS[name].present}


def sampler_config_from_flags(base=None):
  """A validated SamplerConfig: --sampler_preset's settings (or `base`, unless the preset was given
  explicitly) with the given flags over them. Raises ValueError."""
  if base is None or FLAGS["sampler_preset"].present:
    base = sampler_config.preset(FLAGS.sampler_preset)
  config = dataclasses.replace(base, **sampler_overrides_from_flags())
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
