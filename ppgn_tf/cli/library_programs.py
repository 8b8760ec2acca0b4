"""Console scripts of the programs that still live among the library modules (python -m ppgn_tf.X).

Each module defines its flags only when run as a program (so importing it adds none); these do
what its `if __name__ == "__main__"` block does.
"""

from __future__ import annotations

import importlib

from absl import app


def _run(module_name: str) -> None:
  module = importlib.import_module(f"ppgn_tf.{module_name}")
  module.define_flags()
  app.run(module.main)


def sample():
  """ppgn-sample: python -m ppgn_tf.sample."""
  _run("sample")


def evaluate():
  """ppgn-evaluate: python -m ppgn_tf.evaluate."""
  _run("evaluate")


def report():
  """ppgn-report: python -m ppgn_tf.report."""
  _run("report")


def bench():
  """ppgn-bench: python -m ppgn_tf.bench."""
  _run("bench")
