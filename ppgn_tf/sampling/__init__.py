"""Sampling: a trained run read back, the MALA sampler and its settings, in-painting inputs, pictures, SavedModels."""
