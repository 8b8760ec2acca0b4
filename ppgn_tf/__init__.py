"""ppgn_tf: Plug & Play Generative Networks (PPGN-h) with latent critics.

Subpackages, in the order of the pipeline:
  data         data sources, tf.data pipelines, the IDX reader
  model        the networks (E / C, G, the image and latent critics) and the pure loss functions
  training     the Keras model whose train_step is the algorithm, the critic schedule, one training run
  sampling     the MALA sampler, its settings, sample pictures and the SavedModel signatures
  evaluation   metrics, the independent classifier, evaluate, the sweep, reports and seed statistics
  perf         the benchmark, its useful-FLOP counts and the thesis' step in PyTorch
  cli          the programs (flags and main); ppgn_tf.sample, .evaluate, .report, .bench, .sweep run them
Shared by all: files (atomic writes), random_streams (named streams from one seed), precision, plots.
"""

import os

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 features; on AVX2 CPUs its
# Eigen kernels run 1.4x (training) to 1.75x (batched sampler) slower here (python -m ppgn_tf.bench).
# setdefault: an explicit TF_ENABLE_ONEDNN_OPTS=0 still wins. It must precede TensorFlow's import.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
