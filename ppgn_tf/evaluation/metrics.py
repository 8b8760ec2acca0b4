"""Sample-quality metrics as pure numpy functions, so they can be tested without any network.

The evaluation classifier (ppgn_tf/evaluation/eval_classifier.py) supplies the inputs:
class probabilities and 128-d features of samples and of real images.
"""

from __future__ import annotations

import numpy as np

from ppgn_tf.data.idx_format import NUM_CLASSES


def _rows(x, what: str, min_rows: int = 1) -> np.ndarray:
  """x as float64 [N, D] (images flattened); at least `min_rows` rows."""
  x = np.asarray(x, np.float64)
  x = x.reshape(len(x), -1) if x.ndim != 2 else x
  if len(x) < min_rows:
    raise ValueError(f"{what}: need at least {min_rows} rows, got {len(x)}")
  return x


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """Square root of a symmetric PSD matrix (eigh; round-off negatives clipped to 0)."""
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(feats_a, feats_b) -> float:
  """Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

  |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)). C_a C_b is not symmetric, but it has the
  eigenvalues of the symmetric PSD S C_b S with S = C_a^(1/2), so tr (C_a C_b)^(1/2) is the sum of
  square roots of eigh's eigenvalues: numpy only, no scipy.linalg.sqrtm.
  """
  a = _rows(feats_a, "frechet_distance feats_a", 2)
  b = _rows(feats_b, "frechet_distance feats_b", 2)
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"frechet_distance: feature sizes differ ({a.shape[1]} vs {b.shape[1]})")
  cov_a, cov_b = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
  root_a = _psd_sqrt(cov_a)
  cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
  trace_sqrt = float(np.sum(np.sqrt(np.clip(cross, 0, None))))
  mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
  return max(mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2 * trace_sqrt, 0.0)


def round_robin_subsets(groups, size: int) -> list[np.ndarray]:
  """Disjoint subsets of `size` row indices, each with the groups in equal shares (as far as the rows allow).

  The rows are taken in turn from each group (first row of every group, then the second, ...) and cut into
  consecutive subsets of `size`; a remainder shorter than `size` is dropped. Rows of `size // number of groups`
  per group in each subset when the groups are equally large and `size` is a multiple of their number.
  """
  groups = np.asarray(groups).reshape(-1)
  if size < 2:
    raise ValueError(f"round_robin_subsets: size must be >= 2, got {size}")
  ranks = np.empty(len(groups), np.int64)
  for g in np.unique(groups):
    rows = np.flatnonzero(groups == g)
    ranks[rows] = np.arange(len(rows))
  order = np.lexsort((groups, ranks))  # By rank within its group, then by group.
  return [order[lo:lo + size] for lo in range(0, len(order) - size + 1, size)]


def frechet_over_subsets(feats, groups, reference_feats, size: int) -> tuple[float, list[float]]:
  """The Fréchet distance of sets of exactly `size` rows to `reference_feats`: the mean over the disjoint
  `round_robin_subsets` of `feats`, and each subset's. FD's bias grows as the sets shrink, so two sets' FDs
  compare only at one size; more subsets make the mean steadier, not biased differently."""
  subsets = round_robin_subsets(groups, size)
  if not subsets:
    raise ValueError(f"frechet_over_subsets: {len(np.asarray(groups).reshape(-1))} rows, fewer than one set of {size}")
  feats = _rows(feats, "frechet_over_subsets feats", size)
  each = [frechet_distance(feats[rows], reference_feats) for rows in subsets]
  return float(np.mean(each)), each


def _check_requested(probs, requested) -> tuple[np.ndarray, np.ndarray]:
  probs = np.asarray(probs, np.float64)
  requested = np.asarray(requested, np.int64).reshape(-1)
  if probs.ndim != 2 or len(probs) != len(requested):
    raise ValueError(f"expected probs [N, classes] for {len(requested)} requested classes, got {probs.shape}")
  if len(requested) == 0:
    raise ValueError("no samples")
  return probs, requested


def conditional_accuracy(probs, requested) -> float:
  """Share of samples the evaluator labels as the class they were conditioned on."""
  probs, requested = _check_requested(probs, requested)
  return float(np.mean(probs.argmax(1) == requested))


def mean_requested_probability(probs, requested) -> float:
  """Mean evaluator probability of the requested class: how convincingly, not just whether."""
  probs, requested = _check_requested(probs, requested)
  return float(np.mean(probs[np.arange(len(requested)), requested]))


def mean_pairwise_distance(x) -> float:
  """Mean Euclidean distance over all pairs of rows (images are flattened): 0 for a collapsed set."""
  x = _rows(x, "mean_pairwise_distance", 2)
  squared = np.sum(x ** 2, 1)
  d2 = squared[:, None] + squared[None, :] - 2 * x @ x.T
  upper = np.triu_indices(len(x), k=1)
  return float(np.mean(np.sqrt(np.clip(d2[upper], 0, None))))


def per_class_table(requested, probs, samples, real_images=None, real_labels=None,
                    num_classes: int = NUM_CLASSES) -> list[dict]:
  """One row per class: accuracy, mean requested probability, sample diversity and, given real
  images with labels, the real images' diversity. Classes with fewer than 2 items get None."""
  probs, requested = _check_requested(probs, requested)
  samples = _rows(samples, "per_class_table samples")
  table = []
  for c in range(num_classes):
    mine = requested == c
    row = {"class": c, "samples": int(mine.sum()), "accuracy": None, "mean_requested_probability": None,
           "diversity": None}
    if mine.any():
      row["accuracy"] = conditional_accuracy(probs[mine], requested[mine])
      row["mean_requested_probability"] = mean_requested_probability(probs[mine], requested[mine])
    if mine.sum() >= 2:
      row["diversity"] = mean_pairwise_distance(samples[mine])
    if real_images is not None:
      real = np.asarray(real_images)[np.asarray(real_labels).reshape(-1) == c]
      row["real_diversity"] = mean_pairwise_distance(real) if len(real) >= 2 else None
    table.append(row)
  return table


def _mean_of_rows(table: list[dict], key: str) -> float | None:
  """Mean of a per-class column over the classes that have a value (None if none has)."""
  values = [row[key] for row in table if row.get(key) is not None]
  return float(np.mean(values)) if values else None


def image_set_metrics(images, labels, probs, feats, reference_feats, set_size: int, real_images=None,
                      real_labels=None, num_classes: int = NUM_CLASSES) -> dict:
  """What the evaluation classifier makes of a set of images, one way for samples and for G(E(x)).

  `labels`: the class each image should show (requested of samples, true of reconstructions);
  `probs`, `feats`: the classifier's on the images; `reference_feats`: the real images' features the
  Fréchet distance is measured against, from sets of `set_size` images (`frechet_over_subsets`, classes in
  equal shares). Diversity is the mean over classes of the within-class mean pairwise distance; given real
  images with labels, their diversity too ("real_diversity").
  """
  table = per_class_table(labels, probs, images, real_images, real_labels, num_classes)
  frechet, each = frechet_over_subsets(feats, labels, reference_feats, set_size)
  result = {
      "accuracy": conditional_accuracy(probs, labels),
      "mean_requested_probability": mean_requested_probability(probs, labels),
      "frechet_distance": frechet,
      "frechet_distance_of_each_set": each,
      "diversity": _mean_of_rows(table, "diversity"),
      "per_class_table": table,
  }
  if real_images is not None:
    result["real_diversity"] = _mean_of_rows(table, "real_diversity")
  return result


def ratio(numerator: float | None, denominator: float | None) -> float | None:
  """numerator / denominator, None when either is missing or the denominator is 0 (JSON has no inf)."""
  if numerator is None or denominator is None or denominator == 0:
    return None
  return float(numerator / denominator)


# ---- copying: are the samples new digits, or G's pictures of training digits? ----------------------

def nearest_distances(x, references, chunk: int = 512) -> np.ndarray:
  """For each row of `x`, the L2 distance to its nearest row of `references` (images flattened)."""
  x = _rows(x, "nearest_distances x")
  references = _rows(references, "nearest_distances references").astype(np.float32)
  if x.shape[1] != references.shape[1]:
    raise ValueError(f"nearest_distances: row sizes differ ({x.shape[1]} vs {references.shape[1]})")
  squared = np.sum(references.astype(np.float64) ** 2, 1)
  out = np.empty(len(x))
  for lo in range(0, len(x), chunk):
    rows = x[lo:lo + chunk]
    d2 = np.sum(rows ** 2, 1)[:, None] + squared[None, :] - 2 * (rows.astype(np.float32) @ references.T)
    out[lo:lo + chunk] = np.sqrt(np.clip(d2.min(1), 0, None))
  return out


def exact_duplicate_pairs(x) -> int:
  """Pairs of rows that are equal in every value."""
  x = np.ascontiguousarray(_rows(x, "exact_duplicate_pairs"))
  _, counts = np.unique(x, axis=0, return_counts=True)
  return int(np.sum(counts * (counts - 1) // 2))


def close_pairs(x, threshold: float) -> int:
  """Pairs of rows closer than `threshold` (L2), exact duplicates included."""
  x = _rows(x, "close_pairs")
  squared = np.sum(x ** 2, 1)
  d2 = squared[:, None] + squared[None, :] - 2 * x @ x.T
  upper = np.triu_indices(len(x), k=1)
  return int(np.sum(np.sqrt(np.clip(d2[upper], 0, None)) < threshold))


NEAR_PERCENTILE = 5.0  # "Nearer than almost every unseen digit": the 5th percentile of the held-out distances.


def copy_metrics(samples, heldout, training) -> dict:
  """How far `samples` are from being copies of `training` images, with `heldout` images as the yardstick.

  All three are images G drew: samples, G(E(x_test)) and G(E(x_train)). For each sample and each held-out
  image, the distance to its nearest training image:
    copy_ratio        median over samples / median over held-out images: about 1 when the samples are as new
                      as unseen digits, 0 when they are copies;
    near_copy_share   share of samples nearer to a training image than the NEAR_PERCENTILE-th percentile of the
                      held-out distances (about NEAR_PERCENTILE / 100 for new digits);
    exact_duplicate_pairs, near_duplicate_pairs
                      pairs of samples that are identical, or closer to each other than that percentile; the
                      same count of held-out images gives `heldout_near_duplicate_pairs` to compare with.
  """
  samples, heldout = _rows(samples, "copy_metrics samples"), _rows(heldout, "copy_metrics heldout", 2)
  sample_nearest = nearest_distances(samples, training)
  heldout_nearest = nearest_distances(heldout, training)
  threshold = float(np.percentile(heldout_nearest, NEAR_PERCENTILE))
  heldout_median = float(np.median(heldout_nearest))
  same_count = heldout[:len(samples)]
  return {
      "copy_ratio": ratio(float(np.median(sample_nearest)), heldout_median),
      "near_copy_share": float(np.mean(sample_nearest < threshold)),
      "near_copy_threshold": threshold,
      "median_nearest_training_distance": float(np.median(sample_nearest)),
      "heldout_median_nearest_training_distance": heldout_median,
      "exact_duplicate_pairs": exact_duplicate_pairs(samples),
      "near_duplicate_pairs": close_pairs(samples, threshold),
      "heldout_near_duplicate_pairs": close_pairs(same_count, threshold),
      "heldout_images_for_pairs": int(len(same_count)),
  }


def median_code_move(h0, h_final) -> float:
  """Median over chains of the L2 distance between a chain's start code and its end code."""
  h0, h_final = _rows(h0, "median_code_move h0"), _rows(h_final, "median_code_move h_final")
  if h0.shape != h_final.shape:
    raise ValueError(f"median_code_move: shapes differ ({h0.shape} vs {h_final.shape})")
  return float(np.median(np.linalg.norm(h_final - h0, axis=1)))
