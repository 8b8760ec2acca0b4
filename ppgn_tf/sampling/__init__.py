"""Sampling: the MALA sampler, its settings and in-painting inputs, sample pictures, the SavedModel and its layout."""
