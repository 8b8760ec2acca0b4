"""Evaluation: metrics, the judging classifier, evaluate and its plan, the sampler sweep, reports, seed statistics."""
