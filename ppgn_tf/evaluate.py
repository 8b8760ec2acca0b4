"""`python -m ppgn_tf.evaluate`: kept for scripts written before the programs moved; the program is ppgn_tf/cli/evaluate.py."""

from ppgn_tf.cli import evaluate as program

__doc__ = program.__doc__  # What --help prints.

if __name__ == "__main__":
  program.run()
