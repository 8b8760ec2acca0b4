"""The rules for flag values, each written once: every check raises `error` (ValueError by default) with one
line naming the flag, so a program reports bad input before any heavy work. No TensorFlow here: the programs
check their flags before TensorFlow starts."""

from __future__ import annotations


def at_least(flag: str, value, minimum, why: str = "", error=ValueError) -> None:
  """--flag must be >= minimum (a NaN fails too); `why`, when given, is said in brackets."""
  if not value >= minimum:
    raise error(f"--{flag} must be >= {minimum}{f' ({why})' if why else ''}, got {value}")


def positive(flag: str, value, error=ValueError) -> None:
  """--flag must be > 0 (a NaN fails too)."""
  if not value > 0:
    raise error(f"--{flag} must be > 0, got {value}")


def in_interval(flag: str, value, low, high, *, low_open: bool = False, high_open: bool = False,
                error=ValueError) -> None:
  """--flag must lie in the interval from low to high, each end closed unless said open (a NaN fails too)."""
  above = value > low if low_open else value >= low
  below = value < high if high_open else value <= high
  if not (above and below):
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    raise error(f"--{flag} must be in {interval}, got {value}")


def one_of(flag: str, value, choices, error=ValueError) -> None:
  """--flag must be one of `choices`."""
  if value not in choices:
    raise error(f"--{flag}={value}: choose from {', '.join(str(c) for c in choices)}")


def whole_numbers(flag: str, values, minimum: int, error=ValueError) -> tuple[int, ...]:
  """--flag (a comma-separated list) as whole numbers, each >= minimum, at least one."""
  try:
    numbers = tuple(int(v) for v in values)
  except ValueError:
    numbers = ()
  if not numbers or min(numbers) < minimum:
    raise error(f"--{flag}: expected whole numbers >= {minimum}, got {','.join(str(v) for v in values)}")
  return numbers
