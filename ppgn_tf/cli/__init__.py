"""The command-line programs (absl): train and export, installed as ppgn-train and ppgn-export."""
