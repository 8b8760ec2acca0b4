"""`python -m ppgn_tf.report`: kept for scripts written before the programs moved; the program is ppgn_tf/cli/report.py."""

from ppgn_tf.cli import report as program

__doc__ = program.__doc__  # What --help prints.

if __name__ == "__main__":
  program.run()
