"""Choosing a tf.distribute strategy from the --strategy flag."""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def check_strategy(name: str) -> None:
  """Cheap validation: a known name, and TF_CONFIG for multi_worker."""
  if name not in STRATEGIES:
    raise ValueError(f"--strategy={name}: choose from {', '.join(STRATEGIES)}")
  if name == "multi_worker":
    raw = os.environ.get("TF_CONFIG")
    if not raw:
      raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                       "(cluster and task of this worker)")
    try:
      config = json.loads(raw)
      config["cluster"], config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f"TF_CONFIG is not valid ({type(e).__name__}: {e}); expected "
                       '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from e


def make_strategy(name: str) -> tf.distribute.Strategy:
  """auto: MirroredStrategy when more than one GPU is visible, else the default strategy."""
  check_strategy(name)
  if name == "auto":
    name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)
  return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the process that writes the run's outputs (worker 0, or the only process)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
  """True for a MultiWorkerMirroredStrategy whose cluster has more than one process training (workers and chief)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return False
  cluster = resolver.cluster_spec().as_dict()
  return sum(len(cluster.get(job, ())) for job in ("chief", "worker")) > 1
