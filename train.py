"""`python train.py ...` from a checkout: the same program as the installed `ppgn-train`.

The program lives in ppgn_tf/cli/train.py; this file keeps README's commands working without
installing the package.
"""

from absl import app

from ppgn_tf.cli import train as program
from ppgn_tf.cli.train import FLAGS, config_from_flags, main  # noqa: F401  Tests drive FLAGS and main.

__doc__ = program.__doc__  # What --help prints.

if __name__ == "__main__":
  app.run(main)
