"""What an evaluation reads and writes, resolved and checked before any heavy work: its sizes, its source (a
workdir or a SavedModel), data set and output files. No TensorFlow here, so the programs check their input
before TensorFlow starts; `evaluate_lib` runs the plan."""

from __future__ import annotations

import dataclasses
import os

from ppgn_tf import checks
from ppgn_tf.sampling import export_layout
from ppgn_tf.training import run_files

EVAL_CLASSIFIER_DIR = "eval_classifier"
EVALUATION_FILE = "evaluation.json"


@dataclasses.dataclass(frozen=True)
class Plan:
  """What to evaluate and where things go; made by make_plan, which checks every field."""
  workdir: str | None
  saved_model: str | None  # A version directory.
  dataset: str
  data_dir: str | None
  eval_classifier_dir: str
  output: str
  per_class: int = 100  # Chains per class (>= 2).
  batch: int = 200  # Chains per sampler call.
  recon_images: int = 0  # Test images G reconstructs for its ceiling (0: all).


def check_counts(per_class: int, batch: int, recon_images: int = 0) -> None:
  """The sizes of an evaluation; raises ValueError with one line."""
  checks.at_least("per_class", per_class, 2, "diversity and covariances need pairs")
  checks.at_least("batch", batch, 1)
  if recon_images < 0 or recon_images == 1:
    raise ValueError(f"--recon_images must be 0 (all) or >= 2 (Frechet distances need pairs), got {recon_images}")


def make_plan(workdir: str | None = None, saved_model: str | None = None, dataset: str | None = None,
              data_dir: str | None = None, eval_classifier_dir: str | None = None, output: str | None = None, *,
              per_class: int = 100, batch: int = 200, recon_images: int = 0) -> Plan:
  """Checks the sizes, then the source, and fills in defaults; raises ValueError with one line."""
  check_counts(per_class, batch, recon_images)  # First: a bad size is named whatever the source.
  if (workdir is None) == (saved_model is None):
    raise ValueError("give exactly one of --workdir and --saved_model")
  if workdir is not None:
    options = run_files.read_options(workdir)
    home = workdir
  else:
    saved_model = export_layout.newest_version(saved_model)
    options = export_layout.find_workdir_options(saved_model)
    home = os.path.dirname(os.path.abspath(saved_model))  # The export base path, as sample.py.
  dataset = dataset or options.get("dataset")
  if not dataset:
    raise ValueError(f"{saved_model}: cannot tell its data set (no options.json above it); give --dataset")
  data_dir = data_dir if data_dir is not None else options.get("data_dir")
  return Plan(workdir=workdir, saved_model=saved_model, dataset=dataset, data_dir=data_dir,
              eval_classifier_dir=eval_classifier_dir or os.path.join(home, EVAL_CLASSIFIER_DIR),
              output=output or os.path.join(home, EVALUATION_FILE), per_class=per_class, batch=batch,
              recon_images=recon_images)
