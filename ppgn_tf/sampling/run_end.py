"""What a training run draws from G beside its training: TensorBoard's sample grids while it trains, and at its end
the code prior (WORKDIR/code_prior.npz), the class-conditional samples (WORKDIR/samples) and the exported sampler
(WORKDIR/export/N).

The train program builds a RunEnd from its flags and hands it to ppgn_tf.training.train_lib.train, which calls
`sampling` once the PPGN is built and `RunSampling.finish` on the chief after the loop: training imports nothing
of sampling.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
from absl import logging

from ppgn_tf import checks
from ppgn_tf import precision as precision_lib
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.sampling import sampler_config as sampler_config_lib
from ppgn_tf.sampling import trained_run
from ppgn_tf.training import run_files
from ppgn_tf.training.ppgn import PPGN


@dataclasses.dataclass(frozen=True)
class RunEnd:
  """The end-of-run samples and export of a training run, and the settings of its sampler."""
  sample_per_class: int = 10  # Class-conditional samples written at the end (0: none).
  sampler_preset: str = sampler_config_lib.DEFAULT_PRESET  # Settings of those samples and of the export.
  sample_steps: int | None = None  # Their steps (None: the preset's).
  export: bool = False  # Export the sampler to WORKDIR/export/N at the end.
  export_training_codes: bool = False  # Let that export hold stored training codes (h0 modes that start from them).

  def __post_init__(self):
    self.validate()  # Checked before any training: a bad setting fails in a second, not after the run.

  def validate(self) -> None:
    """Raises ValueError (one line naming the flag)."""
    for name in ("sample_per_class", "sample_steps"):
      if getattr(self, name) is not None:  # sample_steps may be left unset.
        checks.at_least(name, getattr(self, name), 0)
    self.sampler_config.validate()
    if self.export:
      sampler_config_lib.check_export_embedding(self.sampler_config, self.export_training_codes)

  @property
  def sampler_config(self) -> sampler_config_lib.SamplerConfig:
    """The settings of the end-of-run samples, of the exported serving_default and of TensorBoard's grids."""
    config = sampler_config_lib.preset(self.sampler_preset)
    return config if self.sample_steps is None else dataclasses.replace(config, steps=self.sample_steps)

  def sampling(self, model: PPGN, train_split: data_lib.Split) -> RunSampling:
    return RunSampling(self, model, train_split)


class RunSampling:
  """A RunEnd for one run's PPGN and training images. The code prior is computed once, when first needed."""

  def __init__(self, run_end: RunEnd, model: PPGN, train_split: data_lib.Split):
    self.run_end = run_end
    self.config = run_end.sampler_config
    self.model = model
    self.train_split = train_split
    self._sampler = None

  @functools.cached_property
  def code_prior(self) -> mala_sampler.CodePrior:
    return trained_run.compute_code_prior(self.model, self.train_split)

  def sample_images(self, classes: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Images in [0, 1] of chains of the run's sampler for `classes` from `seeds` (TensorBoard's grids)."""
    if self._sampler is None:  # Built once: its traced functions are reused at every call.
      self._sampler = mala_sampler.MalaSampler(
          self.model.sampling_generator, self.model.encoder, self.config, code_layer=self.model.config.code_layer,
          prior=self.code_prior if self.config.needs_code_prior else None)
    return self._sampler.sample(classes, seeds)["images"].numpy()

  def finish(self, workdir: str, precision: str = precision_lib.FP32) -> tuple[dict, np.ndarray | None]:
    """Writes the code prior, the samples and the export; returns their entries of summary.json and the samples'
    images (one class after another, in [0, 1]; None without samples)."""
    prior = trained_run.save_code_prior(self.model, self.train_split, workdir, self.code_prior)
    entries, images = {}, None
    if self.run_end.sample_per_class:
      logging.info("Sampling %d chains per class (%d MALA steps, %s sampler)", self.run_end.sample_per_class,
                   self.config.steps, self.run_end.sampler_preset)
      entries["samples"], images = trained_run.write_samples(
          self.model, self.config, self.run_end.sample_per_class, os.path.join(workdir, run_files.SAMPLES_DIR),
          prior, precision)
    if self.run_end.export:
      entries["export"] = trained_run.export_sampler(
          self.model, self.config, os.path.join(workdir, run_files.EXPORT_DIR), prior, precision,
          self.run_end.export_training_codes)
    return entries, images
