"""Tests for embedlab.evals.clustering: NMI / AMI against the formulas, k-means properties.

The k-means kernel also runs with and without ``jit`` (``chex.variants``).
"""

import fractions
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from embedlab.evals import (adjusted_mutual_info, clustering, clustering_metrics, kmeans,
                            normalized_mutual_info)

# ----------------------------------------------------------------------------------------------
# NMI / AMI against the formulas, evaluated independently with exact hypergeometric terms.


def _ref_mi_terms(labels_true, labels_pred):
  n = len(labels_true)
  classes, clusters = sorted(set(labels_true)), sorted(set(labels_pred))
  a = [sum(1 for t in labels_true if t == u) for u in classes]
  b = [sum(1 for p in labels_pred if p == v) for v in clusters]
  mi = 0.0
  for u, ai in zip(classes, a):
    for v, bj in zip(clusters, b):
      nij = sum(1 for t, p in zip(labels_true, labels_pred) if t == u and p == v)
      if nij:
        mi += nij / n * math.log(n * nij / (ai * bj))
  emi = 0.0
  for ai in a:
    for bj in b:
      for nij in range(max(1, ai + bj - n), min(ai, bj) + 1):
        prob = fractions.Fraction(math.comb(ai, nij) * math.comb(n - ai, bj - nij),
                                  math.comb(n, bj))
        emi += nij / n * math.log(n * nij / (ai * bj)) * float(prob)
  h_true = -sum(ai / n * math.log(ai / n) for ai in a)
  h_pred = -sum(bj / n * math.log(bj / n) for bj in b)
  return mi, emi, (h_true + h_pred) / 2


def _ref_nmi(labels_true, labels_pred):
  mi, _, mean_h = _ref_mi_terms(labels_true, labels_pred)
  return mi / mean_h


def _ref_ami(labels_true, labels_pred):
  mi, emi, mean_h = _ref_mi_terms(labels_true, labels_pred)
  return (mi - emi) / (mean_h - emi)


def _random_clusterings():
  rng = np.random.default_rng(11)
  cases = []
  for n, r, c in [(12, 2, 3), (30, 4, 4), (57, 5, 3), (80, 3, 8)]:
    cases.append((rng.integers(0, r, size=n), rng.integers(0, c, size=n)))
  # Correlated: a noisy copy of the classes.
  true = rng.integers(0, 5, size=60)
  pred = np.where(rng.uniform(size=60) < 0.7, true, rng.integers(0, 5, size=60))
  cases.append((true, pred))
  return cases


@pytest.mark.parametrize("labels_true, labels_pred", _random_clusterings())
def test_nmi_ami_match_reference(labels_true, labels_pred):
  lt, lp = list(labels_true), list(labels_pred)
  np.testing.assert_allclose(normalized_mutual_info(labels_true, labels_pred),
                             _ref_nmi(lt, lp), rtol=0, atol=1e-10)
  np.testing.assert_allclose(adjusted_mutual_info(labels_true, labels_pred),
                             _ref_ami(lt, lp), rtol=0, atol=1e-10)


def test_nmi_hand_computed():
  # Classes {0,1},{2,3}; clusters {0,1,2},{3}: MI = 1/2 ln(4/3) + 1/4 ln(2/3) + 1/4 ln 2,
  # H(U) = ln 2, H(V) = -(3/4 ln 3/4 + 1/4 ln 1/4).
  mi = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
  h = (math.log(2) - 0.75 * math.log(0.75) - 0.25 * math.log(0.25)) / 2
  np.testing.assert_allclose(normalized_mutual_info([0, 0, 1, 1], [5, 5, 5, 7]), mi / h,
                             rtol=1e-12)


@pytest.mark.parametrize("labels_true, labels_pred, nmi, ami", [
    ([0, 0, 1, 1], [1, 1, 0, 0], 1.0, 1.0),  # Perfect up to renaming.
    (["x", "y", "y", "z", "z", "z"], [2, 0, 0, 1, 1, 1], 1.0, 1.0),
    ([0, 0, 0, 0], [0, 1, 2, 3], 0.0, 0.0),  # sklearn docstring example: AMI 0.
    ([3, 3, 3], [1, 1, 1], 1.0, 1.0),  # One cluster each: the conventional 1.0.
])
def test_nmi_ami_special_cases(labels_true, labels_pred, nmi, ami):
  np.testing.assert_allclose(normalized_mutual_info(labels_true, labels_pred), nmi, atol=1e-12)
  np.testing.assert_allclose(adjusted_mutual_info(labels_true, labels_pred), ami, atol=1e-12)


def test_ami_of_independent_labellings_is_near_zero():
  rng = np.random.default_rng(0)
  values = [adjusted_mutual_info(rng.integers(0, 4, 200), rng.integers(0, 4, 200))
            for _ in range(20)]
  assert abs(np.mean(values)) < 0.01


@pytest.mark.parametrize("labels_true, labels_pred, match", [
    ([0, 1], [0], "2 entries but labels_pred has 1"),
    ([[0, 1]], [[0, 1]], "must be 1-D"),
    ([], [], "empty"),
])
def test_nmi_invalid_inputs(labels_true, labels_pred, match):
  with pytest.raises(ValueError, match=match):
    normalized_mutual_info(labels_true, labels_pred)
  with pytest.raises(ValueError, match=match):
    adjusted_mutual_info(labels_true, labels_pred)


# ----------------------------------------------------------------------------------------------
# k-means.


def _blobs(seed, num_classes, per_class, dim, spread):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(num_classes, dim)) * 10.0
  labels = np.repeat(np.arange(num_classes), per_class)
  return centers[labels] + spread * rng.normal(size=(labels.size, dim)), labels


@pytest.mark.parametrize("seed, num_classes, per_class, dim", [
    (0, 3, 20, 2), (1, 8, 15, 5), (2, 12, 10, 16)])
def test_kmeans_on_separated_blobs_is_perfect(seed, num_classes, per_class, dim):
  x, labels = _blobs(seed, num_classes, per_class, dim, spread=0.01)
  got = clustering_metrics(x, labels, seed=seed)
  assert got["num_clusters"] == num_classes
  np.testing.assert_allclose([got["nmi"], got["ami"]], [1.0, 1.0], atol=1e-12)


def test_kmeans_is_a_fixed_point_of_lloyd():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(200, 3))
  centers, assignment, iters = kmeans(x, num_clusters=6, seed=1)
  centers, assignment = np.asarray(centers), np.asarray(assignment)
  assert 1 <= iters < 300
  # Each point is assigned to its nearest centre, and each centre is its cluster's mean.
  nearest = np.argmin(((x[:, None] - centers[None]) ** 2).sum(-1), axis=1)
  np.testing.assert_array_equal(assignment, nearest)
  for j in range(6):
    np.testing.assert_allclose(centers[j], x[assignment == j].mean(axis=0), atol=1e-5)


class KmeansKernelTest(chex.TestCase):
  """``_kmeans`` traced and eager: a Lloyd fixed point that recovers separated blobs."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("2d", 0, 3, 2), ("5d", 1, 5, 5))
  def test_recovers_separated_blobs(self, seed, num_classes, dim):
    x, labels = _blobs(seed, num_classes, 12, dim, spread=0.01)
    kernel = self.variant(clustering._kmeans.__wrapped__,
                          static_argnames=("num_clusters", "max_iters"))
    centers, assignment, iters = kernel(jnp.asarray(x, jnp.float32), jax.random.key(seed),
                                        num_clusters=num_classes, max_iters=50)
    assert 1 <= int(iters) < 50
    np.testing.assert_allclose(normalized_mutual_info(labels, np.asarray(assignment)), 1.0,
                               atol=1e-12)
    for j in range(num_classes):
      np.testing.assert_allclose(np.asarray(centers)[j],
                                 x[np.asarray(assignment) == j].mean(axis=0), atol=1e-4)


def test_kmeans_seed_is_deterministic():
  x, _ = _blobs(0, 5, 10, 3, spread=2.0)
  a = np.asarray(kmeans(x, num_clusters=5, seed=3)[1])
  b = np.asarray(kmeans(x, num_clusters=5, seed=3)[1])
  np.testing.assert_array_equal(a, b)


def test_kmeans_with_duplicate_points():
  # Fewer distinct points than clusters: seeding falls back to uniform, no NaN centres.
  x = np.repeat(np.eye(2), 3, axis=0)
  centers, assignment, _ = kmeans(x, num_clusters=4, seed=0)
  assert np.all(np.isfinite(np.asarray(centers)))
  np.testing.assert_allclose(
      normalized_mutual_info([0, 0, 0, 1, 1, 1], np.asarray(assignment)), 1.0, atol=1e-12)


@pytest.mark.parametrize("x, kwargs, match", [
    (np.zeros((4, 2)), {"num_clusters": 5}, "num_clusters=5"),
    (np.zeros((4, 2)), {"num_clusters": 0}, "num_clusters=0"),
    (np.zeros((4, 2)), {"num_clusters": 2, "max_iters": 0}, "max_iters"),
    (np.full((4, 2), np.inf), {"num_clusters": 2}, "NaN or inf"),
    (np.zeros(4), {"num_clusters": 2}, r"must be \[N, D\]"),
])
def test_kmeans_invalid_inputs(x, kwargs, match):
  with pytest.raises(ValueError, match=match):
    kmeans(x, **kwargs)


def test_clustering_metrics_label_mismatch():
  with pytest.raises(ValueError, match="3 entries but embeddings has 4"):
    clustering_metrics(np.zeros((4, 2)), [0, 1, 0])
