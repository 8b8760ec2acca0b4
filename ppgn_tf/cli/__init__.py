"""The programs (absl flags and main), one module each, and flag_reference, which writes docs/flags.md from them."""

import os

# Where every program starts (each imports this package before TensorFlow): TensorFlow turns its oneDNN kernels on
# by default only on CPUs with AVX-512 features; on AVX2 CPUs its Eigen kernels run 1.4x (training) to 1.75x
# (batched sampler) slower here (python -m ppgn_tf.bench). setdefault: an explicit TF_ENABLE_ONEDNN_OPTS=0 wins;
# bench's --onednn sets it itself. The library leaves the environment alone.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
