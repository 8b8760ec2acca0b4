"""What the programs share around their work: absl's app.run, no stray arguments, one error line."""

from __future__ import annotations

import sys

from absl import app


def runner(main):
  """A console-script entry point (no arguments) that runs `main` under absl, which parses the flags first."""
  return lambda: app.run(main)


def refuse_arguments(argv) -> None:
  """The programs take flags only (report takes workdirs and does not call this)."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")


def error(program: str, e: BaseException) -> int:
  """Prints `PROGRAM: error: ` and the first line of `e` (bad input: one line), returns the exit status 1."""
  print(f"{program}: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
  return 1
