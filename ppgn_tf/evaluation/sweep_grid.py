"""The sweep's grid of sampler settings, by name. No TensorFlow here: the sweep program names its choices in its
flags' help and checks --grid before TensorFlow starts."""

from __future__ import annotations

# The grid, as data: name -> settings over the thesis' Eq. 8 (SamplerConfig()). The names say what changes.
_CODES_CLIP = dict(h0="codes", clip_percentile=1.0)
GRID = {
    "thesis": {},
    "thesis_noise": dict(epsilon3=0.3),
    "codes_clip": _CODES_CLIP,
    "marginals_clip": dict(h0="marginals", clip_percentile=1.0),
    "codes_clip_prior_0.03": dict(_CODES_CLIP, epsilon1=0.03),
    "codes_clip_prior_0.1": dict(_CODES_CLIP, epsilon1=0.1),
    "codes_clip_noise": dict(_CODES_CLIP, epsilon3=0.3),
    "codes_clip_prior_0.1_noise": dict(_CODES_CLIP, epsilon1=0.1, epsilon3=0.3),
    "codes_clip_stop": dict(_CODES_CLIP, epsilon1=0.1, stop_probability=0.99),
    "codes_clip_normalised": dict(_CODES_CLIP, normalize_step=True, step_size=0.05, step_size_end=0.005),
    "codes_clip_restarts": dict(_CODES_CLIP, epsilon3=0.3, reset_every=50),
    # Chains that start in the requested class need not cross classes, so they need fewer steps.
    "class_codes_clip": dict(h0="class_codes", clip_percentile=1.0),
    "class_codes_clip_50_steps": dict(h0="class_codes", clip_percentile=1.0, steps=50),
    "class_codes_clip_stop": dict(h0="class_codes", clip_percentile=1.0, stop_probability=0.95),
}
