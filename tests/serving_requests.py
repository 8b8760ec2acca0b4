"""What tests of an export share (test helpers, not library code): TensorFlow Serving's REST body as a signature's
input tensors, and the preamble of a script that must run without this package."""

from __future__ import annotations

import tensorflow as tf

# The first lines of a script run under `python -I` (no project on sys.path): it fails if ppgn_tf is importable,
# so what follows proves an export loads and runs without the package.
NO_PACKAGE_PREAMBLE = r'''
import json, sys
try:
  import ppgn_tf
except ImportError:
  pass
else:
  sys.exit("ppgn_tf is importable: " + ppgn_tf.__file__)
'''


def rest_to_tensors(body: dict, signature) -> dict:
  """A TF Serving REST predict body (row form "instances" or columnar form "inputs") as the signature's input
  tensors. Raises ValueError when the body's inputs are not the signature's."""
  specs = signature.structured_input_signature[1]
  if "instances" in body:
    rows = body["instances"]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
  else:
    columns = body["inputs"]
  if set(columns) != set(specs):
    raise ValueError(f"inputs {sorted(columns)}, the signature takes {sorted(specs)}")
  return {name: tf.constant(values, specs[name].dtype) for name, values in columns.items()}
