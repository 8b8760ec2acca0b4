"""Sampling: the MALA sampler and its settings, sample pictures, and the exported SavedModel signatures (serving)."""
