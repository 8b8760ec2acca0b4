"""Training: the Keras model whose train_step is the algorithm, critic schedule, a run and its files, strategies."""
