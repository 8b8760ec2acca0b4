"""ppgn_tf: Plug & Play Generative Networks (PPGN-h) with latent critics.

Modules, by what they hold:
  data, idx_format   data sources and the IDX reader
  encoder            E / classifier C, its pre-training and storage
  generator, critics G, the image critic D and latent critics
  losses             pure loss functions
  critic_schedule    the asymmetric critic schedule and random critic choice
  ppgn               the Keras model whose train_step is the algorithm
  bench, flops       python -m ppgn_tf.bench and the useful-FLOP counts it reports
  bench_peer_torch   the thesis' training step and sampler in PyTorch, the benchmark's --peer=torch
  precision          --precision: auto (bf16 where the hardware has it), fp32, bf16
"""

import os

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 features; on AVX2 CPUs its
# Eigen kernels run 1.4x (training) to 1.75x (batched sampler) slower here (python -m ppgn_tf.bench).
# setdefault: an explicit TF_ENABLE_ONEDNN_OPTS=0 still wins. It must precede TensorFlow's import.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
