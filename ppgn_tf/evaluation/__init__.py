"""Evaluation: metrics, the judging classifier, evaluate, the sampler sweep, reports and seed statistics."""
