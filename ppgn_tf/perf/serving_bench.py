"""Serving speed: samples per second of exported samplers' `serving_default` at a few batch sizes, several exports
(an fp32 and a bf16 export of one run) timed in interleaved rounds in one process, so a machine whose speed drifts
moves them alike. Rows past an export's max_batch are sent as a client must: in requests of at most max_batch
rows, one after another (`sample_lib.call_in_requests`). The program is `ppgn_tf/cli/bench.py --serving`."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import tensorflow as tf

from ppgn_tf import batching
from ppgn_tf import random_streams
from ppgn_tf.perf import bench as bench_lib
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import sample_lib
from ppgn_tf.sampling import sampler_config

DEFAULT_BATCHES = (1, 10, 100)
DEFAULT_REPEATS = 5
METHOD = ("Each export's serving_default is loaded with tf.saved_model.load and called once per batch size to warm "
          "up; then every round times one call of each batch size on each export in turn, starting one export later "
          "every round. A batch above the export's max_batch is split into requests of at most max_batch rows sent "
          "one after another, as a client must; its seconds are the whole batch's. Rows ask for the classes in turn "
          "(class_id = row mod K) with the chain seeds of --seed 0. samples_per_s = batch / median seconds.")


def _label(path: str, taken: set) -> str:
  precision = export_layout.read_export_precision(path)
  label, n = precision, 2
  while label in taken:
    label, n = f"{precision}_{n}", n + 1
  return label


def run(paths, batches=DEFAULT_BATCHES, repeats: int = DEFAULT_REPEATS, seed: int = 0) -> dict:
  """Times every export (a version directory or a base path: its newest version) at every batch size; returns the
  results (see METHOD), keyed by each export's precision."""
  exports = {}
  for path in map(export_layout.newest_version, paths):
    label = _label(path, set(exports))
    condition = export_layout.read_condition(path)
    exports[label] = {
        "path": os.path.abspath(path), "precision": export_layout.read_export_precision(path),
        "max_batch": export_layout.read_max_batch(path),
        "settings": sampler_config.to_json(export_layout.read_export_settings(path)), "condition": condition,
        "signature": tf.saved_model.load(path).signatures["serving_default"],
    }
  inputs = {}
  for batch in batches:
    seeds = random_streams.chain_seeds(seed, batch)
    inputs[batch] = {label: {"class_id": np.arange(batch, dtype=np.int32) % e["condition"]["num_classes"],
                             "seed": seeds} for label, e in exports.items()}

  def call(label, batch):
    e = exports[label]
    start = time.perf_counter()
    sample_lib.call_in_requests(e["signature"], e["max_batch"], **inputs[batch][label])
    return time.perf_counter() - start

  load_start = bench_lib.load_info()
  for label in exports:
    for batch in batches:
      call(label, batch)  # Warm-up: the first call of a loaded signature builds its kernels.
  labels = list(exports)
  seconds = {label: {batch: [] for batch in batches} for label in labels}
  for r in range(repeats):
    for label in labels[r % len(labels):] + labels[:r % len(labels)]:
      for batch in batches:
        seconds[label][batch].append(call(label, batch))
  cpu = bench_lib.cpu_info()
  results = {"method": METHOD, "repeats": repeats, "batches": list(batches),
             "cpu": {k: cpu[k] for k in ("model_name", "logical_cpus", "physical_cores", "mhz")},
             "load_start": load_start, "load_end": bench_lib.load_info(), "exports": {}}
  for label, e in exports.items():
    per_batch = {}
    for batch in batches:
      median = statistics.median(seconds[label][batch])
      requests = len(batching.row_slices(batch, e["max_batch"]))  # As sample_lib.call_in_requests sends them.
      per_batch[str(batch)] = {"batch": batch, "requests": requests, "seconds": seconds[label][batch],
                               "median_s": median, "samples_per_s": batch / median,
                               "ms_per_sample": 1e3 * median / batch}
    results["exports"][label] = {k: v for k, v in e.items() if k != "signature"} | {"by_batch": per_batch}
  if len(exports) > 1:  # Each export's samples per second over the first's, batch by batch.
    first = labels[0]
    results["speed_vs_" + first] = {
        label: {b: results["exports"][label]["by_batch"][b]["samples_per_s"]
                / results["exports"][first]["by_batch"][b]["samples_per_s"] for b in map(str, batches)}
        for label in labels[1:]}
  return results


def format_table(results: dict) -> str:
  cpu = results["cpu"]
  lines = [f"CPU: {cpu['model_name']}, {cpu['physical_cores']} cores ({cpu['logical_cpus']} logical), load "
           f"{results['load_start']['load_1m']:.2f} -> {results['load_end']['load_1m']:.2f}; median of "
           f"{results['repeats']} interleaved rounds",
           f"{'export':<8}{'steps':>6}{'max_batch':>10}{'batch':>7}{'requests':>9}{'s/batch':>10}{'samples/s':>11}"
           f"{'ms/sample':>11}"]
  for label, e in results["exports"].items():
    kind = "" if e["condition"]["kind"] == condition_spec.ENCODER_CLASSES else f" ({e['condition']['kind']})"
    for b in e["by_batch"].values():
      lines.append(f"{label + kind:<8}{e['settings']['steps']:>6}{str(e['max_batch']):>10}{b['batch']:>7}"
                   f"{b['requests']:>9}{b['median_s']:>10.3f}{b['samples_per_s']:>11.1f}{b['ms_per_sample']:>11.1f}")
  return "\n".join(lines)
