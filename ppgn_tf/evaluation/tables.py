"""How the evaluation's text tables (evaluate's console tables, the report's markdown) write a number."""

from __future__ import annotations


def number(value: float | None, digits: int = 3) -> str:
  """`value` with `digits` decimals, "-" where it was not measured (None)."""
  return "-" if value is None else f"{value:.{digits}f}"
