"""`python -m ppgn_tf.sweep`: kept for scripts written before the programs moved; the program is ppgn_tf/cli/sweep.py."""

from ppgn_tf.cli import sweep as program

__doc__ = program.__doc__  # What --help prints.

if __name__ == "__main__":
  program.run()
