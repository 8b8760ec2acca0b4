"""What the sampler's chains are conditioned on, as the programs' flags name it: E's own classes (the default), a
classifier of the user's own (--condition_model), or one unit of a layer of E (--condition_layer, --unit).

Plug & Play: one trained G with its prior R(h) = E(G(h)) serves any condition; only the conditioning term of the
chain (epsilon2 d/dh log C_c, or d/dh of the unit's activation) changes. No TensorFlow here, so the programs check
the flags before TensorFlow starts; the condition is loaded and checked against the networks by `condition_model`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ppgn_tf import checks

CLASS = "class"  # Condition on E's classes: log C_c = the log-softmax of fc2 at class c.

# The kinds of condition, as recorded in an export's assets.extra/sampler.json.
ENCODER_CLASSES = "encoder_classes"
CLASSIFIER = "classifier"
UNIT = "unit"


@dataclasses.dataclass(frozen=True)
class ConditionSpec:
  """The condition as given: nothing (E's classes), a classifier file, or a layer of E and one of its units.

  For an export, `layer` without `unit` names the layer of its `sample_unit` signature, which takes the unit per
  row, beside the classifier (if any) its class signatures condition on.
  """
  model_path: str | None = None
  layer: str | None = None
  unit: int | None = None

  def validate(self, unit_per_row: bool = False) -> None:
    """Raises ValueError (one line naming the flag). `unit_per_row`: for an export, whose `sample_unit` signature
    takes the unit with each request, --condition_layer stands alone and --unit is refused."""
    # In an export the classifier conditions the class signatures and the layer sample_unit: both may be given.
    if not unit_per_row and self.model_path is not None and (self.layer is not None or self.unit is not None):
      raise ValueError("give --condition_model or --condition_layer/--unit, not both")
    if self.model_path is not None and not os.path.exists(self.model_path):
      raise ValueError(f"--condition_model={self.model_path}: no such file or directory")
    if unit_per_row:
      if self.unit is not None:
        raise ValueError("--unit: an export's sample_unit signature takes the unit with each request; give "
                         "--condition_layer alone")
      return
    if self.unit is not None and self.layer is None:
      raise ValueError(f"--unit={self.unit} needs --condition_layer (the layer of E the unit belongs to)")
    if self.layer is not None and self.unit is None:
      raise ValueError(f"--condition_layer={self.layer} needs --unit (which of its units to condition on)")
    if self.unit is not None:
      checks.at_least("unit", self.unit, 0)

  @property
  def kind(self) -> str:
    if self.model_path is not None:
      return CLASSIFIER
    return UNIT if self.unit is not None else ENCODER_CLASSES

  @property
  def name(self) -> str:
    """A short name for file names: classifier_<file name>, unit_<layer>_<unit>, or encoder_classes."""
    if self.kind == CLASSIFIER:
      stem = os.path.basename(os.path.normpath(self.model_path))
      return "classifier_" + (stem[:-len(".keras")] if stem.endswith(".keras") else stem)
    if self.kind == UNIT:
      return f"unit_{self.layer}_{self.unit}"
    return ENCODER_CLASSES


def grid_targets(record: dict, per_target: int) -> tuple[np.ndarray, list[str]]:
  """The targets of a sample grid for a condition `record` (`condition_model.Condition.record`, or an export's):
  `per_target` chains of each class 0..K-1 (one row each), or of the unit (one row); and the rows' labels."""
  if record["kind"] == UNIT:
    return np.full(per_target, record["unit"], np.int32), [f"{record['layer']}:{record['unit']}"]
  classes = int(record["num_classes"])
  return np.repeat(np.arange(classes), per_target).astype(np.int32), [str(c) for c in range(classes)]


def describe(record: dict) -> str:
  """A condition record in a few words, for titles and logs."""
  if record["kind"] == CLASSIFIER:
    return f"the classifier {os.path.basename(os.path.normpath(record['model']))} ({record['num_classes']} classes)"
  if record["kind"] == UNIT:
    return f"unit {record['unit']} of {record['layer']}"
  return "E's classes"
