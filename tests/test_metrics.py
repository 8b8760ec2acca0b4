"""The sample-quality metrics against values known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from ppgn_tf.evaluation import metrics


def _with_moments(n: int, mean, cov, seed: int = 0) -> np.ndarray:
  """n points whose sample mean and (ddof=1) covariance are exactly `mean` and `cov`."""
  x = np.random.default_rng(seed).normal(size=(n, len(mean)))
  x -= x.mean(0)
  x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T  # Whitened: covariance I.
  return x @ np.linalg.cholesky(cov).T + mean


def test_frechet_of_a_set_with_itself_is_zero():
  x = np.random.default_rng(1).normal(size=(200, 16)) * 3 + 5
  assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
  assert metrics.frechet_distance(x, x + 2.0) == pytest.approx(16 * 4.0, rel=1e-9)  # Mean term only.


def test_frechet_of_diagonal_gaussians_matches_closed_form():
  mu_a, mu_b = np.array([0.0, 1, 2, 3, 4]), np.array([1.0, 1, 0, 3, -1])
  var_a, var_b = np.array([1.0, 4, 9, 0.25, 2]), np.array([4.0, 1, 9, 1, 0.5])
  a = _with_moments(500, mu_a, np.diag(var_a), seed=2)
  b = _with_moments(700, mu_b, np.diag(var_b), seed=3)
  expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
  assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
  assert metrics.frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)


def test_frechet_of_non_commuting_gaussians_matches_closed_form():
  """2x2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for the PSD-similar M = C_a C_b."""
  cov_a, cov_b = np.array([[2.0, 0.9], [0.9, 1.0]]), np.array([[1.0, -0.5], [-0.5, 3.0]])
  mu_a, mu_b = np.array([0.5, -1.0]), np.array([2.0, 1.0])
  a, b = _with_moments(300, mu_a, cov_a, seed=4), _with_moments(300, mu_b, cov_b, seed=5)
  trace_sqrt = np.sqrt(np.trace(cov_a @ cov_b) + 2 * np.sqrt(np.linalg.det(cov_a) * np.linalg.det(cov_b)))
  expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
  assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_of_samples_approaches_the_population_value():
  rng = np.random.default_rng(6)
  a, b = rng.normal(0, 1, (20000, 3)), rng.normal(1, 2, (20000, 3))
  assert metrics.frechet_distance(a, b) == pytest.approx(3 * 1 + 3 * (2 - 1) ** 2, rel=0.05)


def test_frechet_rejects_bad_shapes():
  with pytest.raises(ValueError, match="at least 2 rows"):
    metrics.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
  with pytest.raises(ValueError, match="feature sizes differ"):
    metrics.frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))


def test_accuracy_of_a_perfect_and_of_a_constant_sampler():
  requested = np.repeat(np.arange(10), 7)
  perfect = np.eye(10)[requested]
  assert metrics.conditional_accuracy(perfect, requested) == 1.0
  assert metrics.mean_requested_probability(perfect, requested) == 1.0
  constant = np.tile(np.eye(10)[3], (len(requested), 1))  # Always a 3, whatever was asked.
  assert metrics.conditional_accuracy(constant, requested) == pytest.approx(0.1)
  assert metrics.mean_requested_probability(constant, requested) == pytest.approx(0.1)
  uniform = np.full((len(requested), 10), 0.1)
  assert metrics.mean_requested_probability(uniform, requested) == pytest.approx(0.1)
  with pytest.raises(ValueError):
    metrics.conditional_accuracy(perfect[:5], requested)


def test_diversity_of_identical_samples_is_zero_and_of_known_points_exact():
  same = np.tile(np.random.default_rng(7).uniform(size=(1, 28, 28, 1)), (6, 1, 1, 1))
  assert metrics.mean_pairwise_distance(same) == pytest.approx(0.0, abs=1e-6)
  assert metrics.mean_pairwise_distance([[0.0, 0.0], [3.0, 4.0]]) == pytest.approx(5.0)
  # Distances 5, 1, sqrt(4 + 16): their mean.
  points = [[0.0, 0.0], [3.0, 4.0], [2.0, 4.0]]
  assert metrics.mean_pairwise_distance(points) == pytest.approx((5 + 1 + np.sqrt(20)) / 3)
  with pytest.raises(ValueError):
    metrics.mean_pairwise_distance(np.zeros((1, 4)))


def test_per_class_table():
  requested = np.repeat(np.arange(10), 2)
  probs = np.eye(10)[requested]
  probs[1] = np.eye(10)[5]  # One of the two zeros is judged a 5.
  samples = np.zeros((20, 2))
  samples[1] = [3.0, 4.0]
  real = np.array([[0.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
  table = metrics.per_class_table(requested, probs, samples, real, np.array([0, 0, 1]))
  assert [row["class"] for row in table] == list(range(10))
  assert table[0]["accuracy"] == 0.5 and table[0]["diversity"] == pytest.approx(5.0)
  assert table[0]["real_diversity"] == pytest.approx(2.0)
  assert table[1]["real_diversity"] is None  # One real image: no pair.
  assert all(row["accuracy"] == 1.0 and row["diversity"] == 0.0 for row in table[1:])


def test_image_set_metrics_gathers_the_metrics_of_one_set():
  """The one computation samples and G(E(x)) share: each figure is its metric's on the given set."""
  rng = np.random.default_rng(8)
  labels = np.repeat(np.arange(10), 3)
  images = rng.uniform(size=(30, 4, 4, 1))
  probs = np.eye(10)[labels]
  probs[:3] = np.eye(10)[7]  # The three zeros are judged sevens.
  feats, real_feats = rng.normal(size=(30, 5)), rng.normal(1.0, 1.0, size=(40, 5))
  result = metrics.image_set_metrics(images, labels, probs, feats, real_feats, 30)
  assert result["accuracy"] == pytest.approx(0.9)
  assert result["mean_requested_probability"] == pytest.approx(0.9)
  assert result["frechet_distance"] == pytest.approx(metrics.frechet_distance(feats, real_feats))
  # Sets of 10 (one image of each class): the mean of three FDs, each of one image per class.
  in_tens = metrics.image_set_metrics(images, labels, probs, feats, real_feats, 10)
  firsts = np.arange(0, 30, 3)
  assert in_tens["frechet_distance_of_each_set"][0] == pytest.approx(metrics.frechet_distance(feats[firsts], real_feats))
  assert in_tens["frechet_distance"] == pytest.approx(np.mean(in_tens["frechet_distance_of_each_set"]))
  assert len(in_tens["frechet_distance_of_each_set"]) == 3
  per_class = [metrics.mean_pairwise_distance(images[labels == c]) for c in range(10)]
  assert result["diversity"] == pytest.approx(np.mean(per_class))
  assert [row["diversity"] for row in result["per_class_table"]] == pytest.approx(per_class)
  assert result["per_class_table"][0]["accuracy"] == 0.0 and "real_diversity" not in result
  # Real images with labels add their diversity, averaged over the classes that have a pair.
  real = np.array([[0.0, 0.0], [0.0, 2.0], [1.0, 1.0], [1.0, 4.0]])
  with_real = metrics.image_set_metrics(images, labels, probs, feats, real_feats, 30, real,
                                       np.array([0, 0, 1, 1]))
  assert with_real["real_diversity"] == pytest.approx((2.0 + 3.0) / 2)
  against_themselves = metrics.image_set_metrics(images, labels, probs, feats, feats, 30)
  assert against_themselves["frechet_distance"] == pytest.approx(0.0, abs=1e-8)


def test_round_robin_subsets_are_disjoint_with_every_class_in_equal_shares():
  labels = np.repeat(np.arange(10), 7)  # Ordered by class, as an evaluation's chains are.
  subsets = metrics.round_robin_subsets(labels, 20)
  assert len(subsets) == 3  # 70 rows: three sets of 20, the last 10 rows dropped.
  assert all(np.bincount(labels[rows], minlength=10).tolist() == [2] * 10 for rows in subsets)
  assert len(np.unique(np.concatenate(subsets))) == 60
  with pytest.raises(ValueError, match="size must be >= 2"):
    metrics.round_robin_subsets(labels, 1)


def test_frechet_over_subsets_compares_sets_of_one_size():
  """FD's upward bias depends on the set size: a set of 200 real-like rows reads closer to the reference than
  one of 50 from the same distribution. Judged at one size, both read alike."""
  rng = np.random.default_rng(3)
  reference = rng.normal(size=(400, 8))
  big, labels = rng.normal(size=(200, 8)), np.repeat(np.arange(10), 20)
  small, small_labels = big[::4], labels[::4]
  assert metrics.frechet_distance(small, reference) > 2 * metrics.frechet_distance(big, reference)
  big_in_fifties, each = metrics.frechet_over_subsets(big, labels, reference, 50)
  small_at_fifty, _ = metrics.frechet_over_subsets(small, small_labels, reference, 50)
  assert len(each) == 4 and big_in_fifties == pytest.approx(small_at_fifty, rel=0.35)
  with pytest.raises(ValueError, match="fewer than one set of 60"):
    metrics.frechet_over_subsets(small, small_labels, reference, 60)


def test_ratio_is_none_without_a_denominator():
  assert metrics.ratio(3.0, 2.0) == 1.5
  assert metrics.ratio(3.0, 0.0) is None and metrics.ratio(None, 2.0) is None and metrics.ratio(1.0, None) is None


def test_copy_metrics_tell_copies_from_new_draws():
  """Copies of training images score a copy ratio of 0 with duplicates; fresh draws of the same distribution as
  the held-out images score about 1 with none."""
  rng = np.random.default_rng(0)
  training, heldout, fresh = (rng.normal(size=(n, 20)) for n in (400, 200, 200))
  new = metrics.copy_metrics(fresh, heldout, training)
  assert 0.85 < new["copy_ratio"] < 1.15
  assert new["near_copy_share"] < 0.15 and new["exact_duplicate_pairs"] == 0
  assert new["near_duplicate_pairs"] <= new["heldout_near_duplicate_pairs"] + 2
  copies = training[rng.integers(0, 400, 200)]  # Drawn with replacement: some drawn twice.
  copied = metrics.copy_metrics(copies, heldout, training)
  assert copied["copy_ratio"] == pytest.approx(0.0, abs=1e-3) and copied["near_copy_share"] == 1.0
  assert copied["exact_duplicate_pairs"] > 0 and copied["near_duplicate_pairs"] >= copied["exact_duplicate_pairs"]
  halfway = metrics.copy_metrics(copies + 0.05 * rng.normal(size=copies.shape), heldout, training)
  assert 0 < halfway["copy_ratio"] < 0.5 and halfway["exact_duplicate_pairs"] == 0


def test_nearest_distances_and_pairs_by_hand():
  references = np.array([[0.0, 0.0], [3.0, 4.0]])
  np.testing.assert_allclose(metrics.nearest_distances(np.array([[0.0, 1.0], [3.0, 4.0], [6.0, 8.0]]),
                                                       references), [1.0, 0.0, 5.0], atol=1e-6)
  rows = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.5], [9.0, 9.0]])
  assert metrics.exact_duplicate_pairs(rows) == 3  # Three equal rows make three pairs.
  assert metrics.close_pairs(rows, 1.0) == 6  # ... and each of them with the fourth.
  assert metrics.median_code_move(np.zeros((3, 2)), np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 2.0]])) == 2.0
