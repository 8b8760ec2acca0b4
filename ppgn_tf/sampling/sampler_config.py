"""The sampler's settings (SamplerConfig) and its named presets; no TensorFlow here, so programs can
define their flags from it before TensorFlow starts."""

from __future__ import annotations

import dataclasses

import numpy as np

from ppgn_tf import checks
from ppgn_tf.data.idx_format import IMAGE_SHAPE

H0_NORMAL = "normal"  # h_0 ~ N(0, 1) (the thesis).
H0_CODES = "codes"  # h_0 = the code E(x) of a random training image of any class.
H0_CLASS_CODES = "class_codes"  # h_0 = the code E(x) of a random training image of the requested class.
H0_MARGINALS = "marginals"  # Each unit of h_0 from that unit's values over the training codes, independently.
# h_0 ~ N(mean, covariance) of the training codes of the requested class, kept in the codes' per-unit range: a
# code no training digit has, drawn from summary statistics alone.
H0_CLASS_GAUSSIAN = "class_gaussian"
# h_0 = the mean of the training codes of the requested class (from the same statistics): one start per class,
# whatever the seed.
H0_CLASS_MEAN = "class_mean"
H0_MODES = (H0_NORMAL, H0_CODES, H0_CLASS_CODES, H0_MARGINALS, H0_CLASS_GAUSSIAN, H0_CLASS_MEAN)
# The modes that read the codes' summary statistics (CodeStatistics), not rows of codes.
H0_FROM_STATISTICS = (H0_CLASS_GAUSSIAN, H0_CLASS_MEAN)
# The modes that start chains from stored training codes (one row per training example): an export with one of
# them holds those codes, so it is refused unless asked for (--export_training_codes).
H0_FROM_TRAINING_CODES = (H0_CODES, H0_CLASS_CODES, H0_MARGINALS)
MIN_CODES_PER_COMPONENT = 20
DEFAULT_PRESET = "default"  # The preset a program's --sampler_preset names unless told otherwise (PRESETS).
GIF_FRAMES = 10  # Frames of a sample grid's chains GIF (ppgn_tf.sample's --gif_frames, a run's end-of-run samples).
H0_HELP = {
    H0_NORMAL: "N(0, 1), the thesis",
    H0_CODES: "the code E(x) of a random training digit of any class: near-reconstructions of training digits",
    H0_CLASS_CODES: "the code E(x) of a random training digit of the requested class: near-reconstructions of "
                    "training digits",
    H0_MARGINALS: "each unit drawn from that unit's values over the training codes, independently",
    H0_CLASS_GAUSSIAN: "a Gaussian (or, with --h0_components, a mixture) fitted to the training codes of the "
                       "requested class (means and covariances only), kept in the codes' per-unit range: new codes",
    H0_CLASS_MEAN: "the mean of the training codes of the requested class: the same start for every seed",
}
# Where an in-painting chain starts (SamplerConfig.inpaint_start): E's code of the masked image with its unknown
# pixels at the data's mean intensity (the original PPGN's start), or with them drawn by G from the settings' h_0
# (a code of the requested class, with h0=class_mean or class_gaussian), so the start already holds the class.
INPAINT_START_MASKED = "masked_image"
INPAINT_START_H0_FILL = "h0_fill"
INPAINT_STARTS = (INPAINT_START_MASKED, INPAINT_START_H0_FILL)


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """The sampler's settings; the defaults are the thesis' Eq. 8 (Sec. 4.1)."""
  steps: int = 200
  epsilon1: float = 1e-2  # Weight of the prior term R_h(h) - h.
  epsilon2: float = 1.0  # Weight of the conditioning gradient.
  epsilon3: float = 1e-15  # Standard deviation of the noise.
  epsilon4: float = 1.0  # In-painting only: weight of the known pixels' gradient.
  # In-painting only: the standard deviation of N(0, s^2) noise added to the start (the masked image's code), drawn
  # from each row's seed: 0 starts every chain of one image at the same code.
  start_noise: float = 0.0
  inpaint_start: str = INPAINT_START_MASKED  # In-painting only: one of INPAINT_STARTS.
  h0: str = H0_NORMAL  # One of H0_MODES.
  clip_min: float | None = None  # Clip h to [clip_min, clip_max] after each step.
  clip_max: float | None = None
  clip_percentile: float | None = None  # Clip each unit to [p, 100 - p] percentiles of the real codes.
  normalize_step: bool = False  # The original PPGN's step / mean|step|.
  step_size: float = 1.0  # lr_0: multiplies the whole step.
  step_size_end: float | None = None  # lr at the last step, linear in between (None: constant).
  reset_every: int = 0  # Restart each chain from a fresh h_0 every N steps (0: never).
  # Class conditioning only: a chain stops moving once E gives its class this probability (None: never). Chains
  # that start from real codes then move no further than they must, which keeps the variety of those codes.
  stop_probability: float | None = None
  keep_every: int = 0  # Keep every N-th state of each chain (0: none).
  # h0=class_gaussian: Gaussians per class, a mixture fitted by k-means (1: one Gaussian per class). Each
  # component has at least MIN_CODES_PER_COMPONENT codes, so its mean is no training code.
  h0_components: int = 1

  def validate(self) -> None:
    """Raises ValueError, one line naming the flag.

    Called where a config is made (the programs' flags, RunOptions) and at the library's entries (MalaSampler,
    serving.build_archive). Not on construction: the export's `sample` signature fills some fields with tensors,
    which its graph checks itself.
    """
    for name in ("steps", "epsilon1", "epsilon2", "epsilon3", "epsilon4", "start_noise", "step_size", "keep_every",
                 "reset_every"):
      checks.at_least(name, getattr(self, name), 0)
    if self.step_size_end is not None:
      checks.at_least("step_size_end", self.step_size_end, 0)
    checks.one_of("h0", self.h0, H0_MODES)
    checks.one_of("inpaint_start", self.inpaint_start, INPAINT_STARTS)
    checks.at_least("h0_components", self.h0_components, 1)
    if self.clip_min is not None and self.clip_max is not None and self.clip_min > self.clip_max:
      raise ValueError(f"--clip_min ({self.clip_min}) is above --clip_max ({self.clip_max})")
    if self.stop_probability is not None:
      checks.in_interval("stop_probability", self.stop_probability, 0, 1, low_open=True)
    if self.clip_percentile is not None:
      checks.in_interval("clip_percentile", self.clip_percentile, 0, 50, high_open=True)

  @property
  def inpaint_varies(self) -> bool:
    """Whether in-painting chains with these settings differ from seed to seed (noise at the start or in the steps,
    or a start drawn at random)."""
    drawn_start = self.inpaint_start == INPAINT_START_H0_FILL and self.h0 != H0_CLASS_MEAN
    return self.epsilon3 > 0 or self.start_noise > 0 or drawn_start

  @property
  def needs_code_prior(self) -> bool:
    """Whether these settings read the real codes (CodePrior)."""
    return self.h0 != H0_NORMAL or self.clip_percentile is not None

  @property
  def needs_code_labels(self) -> bool:
    """Whether these settings read the classes of the real codes (h_0 from codes of the requested class)."""
    return self.h0 in (H0_CLASS_CODES, *H0_FROM_STATISTICS)

  @property
  def reads_training_codes(self) -> bool:
    """Whether chains start from stored training codes (rows of real examples), not from their statistics."""
    return self.h0 in H0_FROM_TRAINING_CODES


# The named settings. `thesis` is Eq. 8 with the thesis' values; `default` is the choice of `python -m ppgn_tf.sweep`
# on the quick start (docs/reports/sampler.md), whose rule admits only settings that draw new digits;
# `training_digit` is the old default, kept for comparison and never exported by default.
PRESETS = {
    "thesis": SamplerConfig(),
    # docs/reports/sampler.md: a new code from a mixture of 4 Gaussians fitted to the requested class' codes, kept in
    # the real codes' range, then at most 25 steps of Eq. 8, which stop once E gives the class probability 0.999: the
    # draws that already show their class keep the mixture's variety, the others are pulled into the class.
    DEFAULT_PRESET: SamplerConfig(h0=H0_CLASS_GAUSSIAN, h0_components=4, clip_percentile=1.0, stop_probability=0.999,
                             steps=25),
    # Start from a training digit: near-reconstructions of training digits (copy ratio about 0.6 on the quick
    # start), not new digits. Its export holds every training code (--export_training_codes).
    "training_digit": SamplerConfig(h0=H0_CLASS_CODES, clip_percentile=1.0, steps=50),
}


# The in-painting settings, chosen by docs/reports/inpainting_study.py on the quick start, on in-painting's own
# measures (the first half of each class' test digits, the left half known; docs/sampling.md#in-painting). Both run
# the original PPGN's in-painting chain (20 normalised steps whose size falls linearly to 1e-2, a tiny prior term
# epsilon1 and known-pixel term epsilon4, the class term epsilon2), with codes kept >= 0 (fc1's ReLU range), from a
# start that already holds the requested class: the known pixels pasted into G's drawing of a code of that class,
# encoded by E (inpaint_start=h0_fill). The original's start (the masked image's code, its unknown half at the
# data's mean) holds no class, and its completions were judged right less often than chains from a random code of
# the class. Both take a step 5x smaller than the original's, so the chain keeps its start. `inpaint` (the default)
# is deterministic: the class' mean code. `inpaint_varied` draws the code from the class' mixture (as the default
# sampler's h0) and adds a little noise in every step (epsilon3): each seed completes the image differently.
INPAINT_PRESETS = {
    "inpaint": SamplerConfig(steps=20, epsilon1=1e-5, epsilon2=1.0, epsilon3=0.0, epsilon4=1e-9, clip_min=0.0,
                             normalize_step=True, step_size=0.2, step_size_end=1e-2,
                             inpaint_start=INPAINT_START_H0_FILL, h0=H0_CLASS_MEAN),
    "inpaint_varied": SamplerConfig(steps=20, epsilon1=1e-5, epsilon2=1.0, epsilon3=0.01, epsilon4=1e-9,
                                    clip_min=0.0, normalize_step=True, step_size=0.2, step_size_end=1e-2,
                                    inpaint_start=INPAINT_START_H0_FILL, h0=H0_CLASS_GAUSSIAN, h0_components=4),
}


def check_inpaint_configs(configs: dict) -> None:
  """Raises ValueError unless `configs` holds settings for exactly the in-painting presets' names (what the export's
  in-painting signatures and the in-painting evaluation run)."""
  if sorted(configs) != sorted(INPAINT_PRESETS):
    raise ValueError(f"inpaint_configs: expected settings for {', '.join(INPAINT_PRESETS)}")


def inpaint_preset(name: str) -> SamplerConfig:
  if name not in INPAINT_PRESETS:
    raise ValueError(f"--inpaint_preset={name}: choose from {', '.join(INPAINT_PRESETS)}")
  return INPAINT_PRESETS[name]


def preset(name: str) -> SamplerConfig:
  if name not in PRESETS:
    raise ValueError(f"--sampler_preset={name}: choose from {', '.join(PRESETS)}")
  return PRESETS[name]


def check_export_embedding(config: SamplerConfig, embed_training_codes: bool) -> None:
  """Raises ValueError (one line) for settings whose export would hold training codes that were not asked for."""
  if config.reads_training_codes and not embed_training_codes:
    raise ValueError(f"--h0={config.h0} starts chains from stored training codes, so its export would hold the "
                     "code of every training digit; pass --export_training_codes to embed them, or use "
                     f"--h0={H0_CLASS_GAUSSIAN} (summary statistics only)")


STOP_PROBABILITY_NEEDS_CLASSES = ("--stop_probability applies to class conditioning only (E's classes or "
                                  "--condition_model's), not to a unit of --condition_layer")


def for_unit_condition(config: SamplerConfig) -> SamplerConfig:
  """The settings chains conditioned on a unit of E run: `config` without its stop_probability, which stops a chain
  at a class probability (a unit's activation is none; the `default` preset sets one)."""
  return config if config.stop_probability is None else dataclasses.replace(config, stop_probability=None)


def to_json(config: SamplerConfig) -> dict:
  return dataclasses.asdict(config)


def from_json(obj: dict) -> SamplerConfig:
  """A SamplerConfig from `to_json`'s dict; unknown keys are refused, missing ones take the defaults."""
  names = {f.name for f in dataclasses.fields(SamplerConfig)}
  unknown = sorted(set(obj) - names)
  if unknown:
    raise ValueError(f"unknown sampler setting {unknown[0]}")
  return SamplerConfig(**obj)


# ---- in-painting masks ----
NAMED_MASKS = ("left", "right", "top", "bottom", "centre")


def named_mask(name: str, shape=IMAGE_SHAPE) -> np.ndarray:
  """A {0, 1} mask of known pixels: `left` knows the left half (and fills in the right), and so on;
  `centre` knows the border and fills in the central half."""
  height, width = shape[0], shape[1]
  mask = np.zeros(shape, np.float32)
  if name == "left":
    mask[:, : width // 2] = 1
  elif name == "right":
    mask[:, width // 2:] = 1
  elif name == "top":
    mask[: height // 2] = 1
  elif name == "bottom":
    mask[height // 2:] = 1
  elif name == "centre":
    mask[:] = 1
    mask[height // 4: height - height // 4, width // 4: width - width // 4] = 0
  else:
    raise ValueError(f"--inpaint_mask={name}: choose a named mask ({', '.join(NAMED_MASKS)}) or a file")
  return mask
