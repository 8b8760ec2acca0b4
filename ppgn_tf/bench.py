"""`python -m ppgn_tf.bench`: kept for scripts written before the programs moved; the program is ppgn_tf/cli/bench.py."""

from ppgn_tf.cli import bench as program

__doc__ = program.__doc__  # What --help prints.

if __name__ == "__main__":
  program.run()
