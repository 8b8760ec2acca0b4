"""ppgn_tf: Plug & Play Generative Networks (PPGN-h) with latent critics.

Subpackages, in the order of the pipeline:
  data         data sources, tf.data pipelines, the IDX reader
  model        the networks (E / C, G, the image and latent critics) and the pure loss functions
  training     the Keras model whose train_step is the algorithm, the critic schedule, one training run
  sampling     a trained run read back, the MALA sampler, its settings, sample pictures and the SavedModel
  evaluation   metrics, the independent classifier, evaluate, the sweep, reports and seed statistics
  perf         the benchmark, its useful-FLOP counts and the thesis' step in PyTorch
  cli          the programs (flags and main); ppgn_tf.sample, .evaluate, .report, .bench, .sweep run them
Shared by all: files (the atomic writer), random_streams (named streams from one seed), checks (the rules for
flag values), hardware (the CPU and GPUs), precision (fp32 or bf16), plots.

Importing the library changes nothing outside it (no environment variable, no TensorFlow setting); the
programs set what they need where they start (ppgn_tf/cli/__init__.py).
"""
