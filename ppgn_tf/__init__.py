"""ppgn_tf: Plug & Play Generative Networks (PPGN-h) with latent critics.

Modules, by what they hold:
  data, idx_format   data sources and the IDX reader
  encoder            E / classifier C, its pre-training and storage
  generator, critics G, the image critic D and latent critics
  losses             pure loss functions
  critic_schedule    the asymmetric critic schedule and random critic choice
  ppgn               the Keras model whose train_step is the algorithm
"""
