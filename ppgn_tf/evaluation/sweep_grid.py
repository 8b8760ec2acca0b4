"""The sweep's grid of sampler settings, by name. No TensorFlow here: the sweep program names its choices in its
flags' help and checks --grid before TensorFlow starts."""

from __future__ import annotations

# The grid, as data: name -> settings over the thesis' Eq. 8 (SamplerConfig()). The names say what changes.
_CODES_CLIP = dict(h0="codes", clip_percentile=1.0)
_GAUSSIAN_CLIP = dict(h0="class_gaussian", clip_percentile=1.0)
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
    # Chains that start at a training digit's code of the requested class: near-reconstructions of training
    # digits, which the choice rule's copy test refuses; kept to show what it refuses.
    "class_codes_clip": dict(h0="class_codes", clip_percentile=1.0),
    "class_codes_clip_50_steps": dict(h0="class_codes", clip_percentile=1.0, steps=50),
    "class_codes_clip_stop": dict(h0="class_codes", clip_percentile=1.0, stop_probability=0.95),
    # Chains that start at a new code drawn from the requested class' Gaussian (summary statistics only), then
    # move towards G's manifold (eps1: R(h) = E(G(h))) and the class (eps2).
    "class_gaussian_clip_0_steps": dict(_GAUSSIAN_CLIP, steps=0),
    "class_gaussian_clip_10_steps": dict(_GAUSSIAN_CLIP, steps=10),
    "class_gaussian_clip_25_steps": dict(_GAUSSIAN_CLIP, steps=25),
    "class_gaussian_clip_50_steps": dict(_GAUSSIAN_CLIP, steps=50),
    "class_gaussian_clip_prior_0.1_10_steps": dict(_GAUSSIAN_CLIP, epsilon1=0.1, steps=10),
    "class_gaussian_clip_prior_0.1_25_steps": dict(_GAUSSIAN_CLIP, epsilon1=0.1, steps=25),
    "class_gaussian_clip_prior_0.3_10_steps": dict(_GAUSSIAN_CLIP, epsilon1=0.3, steps=10),
    "class_gaussian_clip_prior_0.1_noise_25_steps": dict(_GAUSSIAN_CLIP, epsilon1=0.1, epsilon3=0.1, steps=25),
    # Chains that stop once E is sure of the class: only the draws that do not yet show it move, so the others
    # keep the Gaussian's variety.
    "class_gaussian_clip_stop_0.9_25_steps": dict(_GAUSSIAN_CLIP, stop_probability=0.9, steps=25),
    "class_gaussian_clip_stop_0.99_25_steps": dict(_GAUSSIAN_CLIP, stop_probability=0.99, steps=25),
    "class_gaussian_clip_stop_0.99_50_steps": dict(_GAUSSIAN_CLIP, stop_probability=0.99, steps=50),
    "class_gaussian_clip_stop_0.999_50_steps": dict(_GAUSSIAN_CLIP, stop_probability=0.999, steps=50),
    # A mixture of Gaussians per class (k-means): draws fall between a class' modes (a 7 with and without its bar)
    # less often than from one Gaussian.
    "class_mixture_4_clip_0_steps": dict(_GAUSSIAN_CLIP, h0_components=4, steps=0),
    "class_mixture_4_clip_25_steps": dict(_GAUSSIAN_CLIP, h0_components=4, steps=25),
    "class_mixture_8_clip_0_steps": dict(_GAUSSIAN_CLIP, h0_components=8, steps=0),
    "class_mixture_8_clip_10_steps": dict(_GAUSSIAN_CLIP, h0_components=8, steps=10),
    "class_mixture_8_clip_25_steps": dict(_GAUSSIAN_CLIP, h0_components=8, steps=25),
    "class_mixture_8_clip_stop_0.99_25_steps": dict(_GAUSSIAN_CLIP, h0_components=8, stop_probability=0.99,
                                                    steps=25),
    "class_mixture_4_clip_stop_0.999_25_steps": dict(_GAUSSIAN_CLIP, h0_components=4, stop_probability=0.999,
                                                     steps=25),
    "class_mixture_4_clip_stop_0.999_50_steps": dict(_GAUSSIAN_CLIP, h0_components=4, stop_probability=0.999,
                                                     steps=50),
    "class_mixture_4_clip_stop_0.9999_50_steps": dict(_GAUSSIAN_CLIP, h0_components=4, stop_probability=0.9999,
                                                      steps=50),
    "class_mixture_2_clip_stop_0.999_50_steps": dict(_GAUSSIAN_CLIP, h0_components=2, stop_probability=0.999,
                                                     steps=50),
    # More components, or clipping only the outer 0.1% of each unit, keep more of the codes' spread.
    "class_mixture_8_clip_stop_0.999_25_steps": dict(_GAUSSIAN_CLIP, h0_components=8, stop_probability=0.999,
                                                     steps=25),
    "class_mixture_16_clip_stop_0.999_25_steps": dict(_GAUSSIAN_CLIP, h0_components=16, stop_probability=0.999,
                                                      steps=25),
    "class_mixture_4_clip_0.1_stop_0.999_25_steps": dict(h0="class_gaussian", clip_percentile=0.1, h0_components=4,
                                                         stop_probability=0.999, steps=25),
    "class_mixture_8_clip_0.1_stop_0.999_25_steps": dict(h0="class_gaussian", clip_percentile=0.1, h0_components=8,
                                                         stop_probability=0.999, steps=25),
}
