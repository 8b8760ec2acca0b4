"""Data: the data sources (sources: names and checks; datasets: loading, tf.data pipelines), the IDX format."""
