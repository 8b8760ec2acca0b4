"""Rows taken in parts of at most N: requests to an export past its max_batch, images through a network in batches.
No TensorFlow here."""

from __future__ import annotations


def row_slices(rows: int, size: int | None) -> list[slice]:
  """Slices that cover rows 0..rows-1 in order, each of at most `size` rows (None or 0: one slice of them all).
  No rows give one empty slice: a request (or batch) of zero rows, not none."""
  if not size or rows <= size:
    return [slice(0, rows)]
  return [slice(lo, min(lo + size, rows)) for lo in range(0, rows, size)]
