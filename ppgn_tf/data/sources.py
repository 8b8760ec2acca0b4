"""The --dataset values (data sources) and their cheap check. No TensorFlow here, so the programs check a
--dataset value before TensorFlow starts; `datasets` loads them."""

from __future__ import annotations

from ppgn_tf.data import idx_format

TFDS_DATASETS = ("mnist", "fashion_mnist")
OFFLINE = "mnist_offline"
IDX_PREFIX = "idx:"


class DataSourceError(ValueError):
  """Bad --dataset value or unreadable data; the message is one line."""


def describe_sources() -> str:
  return f"{', '.join(TFDS_DATASETS)}, {OFFLINE}, or {IDX_PREFIX}/path/to/dir"


def check_source(dataset: str) -> None:
  """Cheap validation of a --dataset value before any heavy work."""
  if dataset in TFDS_DATASETS or dataset == OFFLINE:
    return
  if dataset.startswith(IDX_PREFIX):
    directory = dataset[len(IDX_PREFIX):]
    if not directory:
      raise DataSourceError(f"--dataset={dataset}: give a directory after '{IDX_PREFIX}'")
    try:
      idx_format.check_idx_directory(directory)
    except idx_format.IdxFormatError as e:
      raise DataSourceError(str(e)) from e
    return
  raise DataSourceError(f"--dataset={dataset}: unknown data source (choose {describe_sources()})")
