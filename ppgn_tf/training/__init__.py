"""Training: the Keras model whose train_step is the algorithm, its critic schedule, one run, callbacks, strategies."""
