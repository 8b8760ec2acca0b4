"""Data: the data sources and tf.data pipelines (datasets), and the MNIST IDX reader/writer (idx_format)."""
