"""An exported sampler SavedModel on disk: TensorFlow Serving's directory layout (BASE/VERSION/), the JSON files
the export leaves beside the graph, and the checks of both. No TensorFlow here, so the programs check an export
directory before TensorFlow starts; the graph itself is written by `serving`."""

from __future__ import annotations

import os
import re

from ppgn_tf import checks
from ppgn_tf import precision as precision_lib
from ppgn_tf.data.idx_format import NUM_CLASSES
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import sampler_config
from ppgn_tf.training import run_files

# The sampler settings the exported `sample` signature takes as inputs; the others are fixed at export.
SIGNATURE_SETTINGS = ("steps", "epsilon1", "epsilon2", "epsilon3")
SETTINGS_FILE = os.path.join("assets.extra", "sampler.json")  # TensorFlow Serving ignores assets.extra.
EXPORT_INFO_FILE = os.path.join("assets.extra", "export.json")  # What the graph computes in.
GRAPH_FILE = "saved_model.pb"
# The key of SETTINGS_FILE that says what of the training data the graph holds (not a sampler setting).
EMBEDDED_KEY = "embedded_training_data"
# The keys of SETTINGS_FILE that name what the chains are conditioned on (not sampler settings): the class
# signatures' condition (E's classes or a baked-in classifier, with its K) and the sample_unit signature's layer.
CONDITION_KEY = "condition"
UNIT_CONDITION_KEY = "unit_condition"
# The key of SETTINGS_FILE holding the settings of the in-painting signatures (`inpaint`, `inpaint_varied`), by name.
INPAINT_KEY = "inpaint_settings"
NOT_SETTINGS = (EMBEDDED_KEY, CONDITION_KEY, UNIT_CONDITION_KEY, INPAINT_KEY)
# The settings the exported `inpaint_from_codes` signature takes as inputs; the others are the `inpaint` preset's.
INPAINT_SIGNATURE_SETTINGS = ("steps", "epsilon1", "epsilon2", "epsilon3", "epsilon4")


# What one request may ask of an export, so that none can hold a TensorFlow Serving thread for long: at most this
# many rows (chains, images or codes), and at most this many steps through the `sample` signature. 16 rows: the
# samples per second of serving_default stop rising by 10 rows (docs/serving_speed.md), and 16 rows of the
# default preset hold a thread about 1.5 s in fp32 on 2 cores where 64 held it 6 to 9 s.
DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_STEPS = 200


def check_limits(max_batch: int, max_steps: int, steps: int) -> None:
  """Raises ExportError (one line) for limits an export cannot have."""
  checks.at_least("max_batch", max_batch, 1, error=ExportError)
  checks.at_least("max_steps", max_steps, 0, error=ExportError)
  if steps > max_steps:
    raise ExportError(f"--max_steps={max_steps} is below the sampler's own --steps={steps}")


class ExportError(ValueError):
  """Bad export directory or version; one line."""


def existing_versions(export_dir: str) -> list[int]:
  if not os.path.isdir(export_dir):
    return []
  return sorted(int(n) for n in os.listdir(export_dir) if re.fullmatch(r"\d+", n))


def check_export_dir(export_dir: str, version: int | None) -> int:
  """The version to write; raises ExportError before any work when it cannot be written."""
  if os.path.exists(export_dir) and not os.path.isdir(export_dir):
    raise ExportError(f"--export_dir={export_dir}: exists and is not a directory")
  versions = existing_versions(export_dir)
  if version is None:
    return (versions[-1] + 1) if versions else 1
  checks.at_least("version", version, 1, error=ExportError)
  if version in versions:
    raise ExportError(f"{os.path.join(export_dir, str(version))}: version {version} exists "
                      "(versions are never overwritten; omit --version for the next one)")
  return version


def newest_version(path: str) -> str:
  """A SavedModel directory, or the highest numbered version inside a base path."""
  if os.path.isfile(os.path.join(path, GRAPH_FILE)):
    return path
  for v in reversed(existing_versions(path)):
    candidate = os.path.join(path, str(v))
    if os.path.isfile(os.path.join(candidate, GRAPH_FILE)):
      return candidate
  raise ValueError(f"{path}: no SavedModel here (no saved_model.pb, no numbered version holding one)")


def read_export_precision(path: str) -> str:
  """fp32 or bf16: what an export's G and E compute in (fp32 for exports older than the file)."""
  info = run_files.read_json(os.path.join(path, EXPORT_INFO_FILE))
  return precision_lib.FP32 if info is None else info["precision"]


def read_max_batch(path: str) -> int | None:
  """The most rows an export takes per request (None: no limit, an export older than the limits)."""
  info = run_files.read_json(os.path.join(path, EXPORT_INFO_FILE))
  return None if info is None else info.get("max_batch")


def read_sampler_settings(path: str) -> sampler_config.SamplerConfig | None:
  """The sampler settings a SavedModel (version directory) was exported with; None for older exports."""
  settings = run_files.read_json(os.path.join(path, SETTINGS_FILE))
  if settings is None:
    return None
  settings = {k: v for k, v in settings.items() if k not in NOT_SETTINGS}
  return sampler_config.from_json(settings) if settings else None


def read_inpaint_settings(path: str) -> dict:
  """The settings of an export's in-painting signatures, {signature name: SamplerConfig as JSON}; {} for exports
  older than the record."""
  settings = run_files.read_json(os.path.join(path, SETTINGS_FILE)) or {}
  return settings.get(INPAINT_KEY) or {}


def read_condition(path: str) -> dict:
  """What an export's class signatures condition on: {"kind": "encoder_classes", "num_classes": 10} (also for
  exports older than the record) or {"kind": "classifier", "num_classes": K, "model": ..., ...}."""
  settings = run_files.read_json(os.path.join(path, SETTINGS_FILE)) or {}
  return settings.get(CONDITION_KEY) or {"kind": condition_spec.ENCODER_CLASSES, "num_classes": NUM_CLASSES}


def read_unit_condition(path: str) -> dict | None:
  """The layer (and its unit count) of an export's sample_unit signature; None when it has none."""
  settings = run_files.read_json(os.path.join(path, SETTINGS_FILE)) or {}
  return settings.get(UNIT_CONDITION_KEY)


def read_export_settings(path: str) -> sampler_config.SamplerConfig:
  """The sampler settings an export was written with (its assets.extra), or the thesis' for older exports."""
  return read_sampler_settings(path) or sampler_config.preset("thesis")


def find_workdir_options(saved_model: str) -> dict:
  """options.json of the workdir an export lives in (WORKDIR/export/N), if there is one."""
  path = os.path.abspath(saved_model)
  for _ in range(3):
    path = os.path.dirname(path)
    options = run_files.read_json(os.path.join(path, run_files.OPTIONS_FILE))
    if options is not None:
      return options
  return {}
