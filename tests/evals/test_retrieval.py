"""Tests for embedlab.evals.retrieval against brute-force NumPy references."""

import fractions
import math

import jax
import numpy as np
import pytest

from embedlab import geometry
from embedlab.evals import (adjusted_mutual_info, clustering_metrics, kmeans,
                            normalized_mutual_info, retrieval_metrics)
from embedlab.evals import retrieval

# ----------------------------------------------------------------------------------------------
# Independent references: the definitions, one query at a time on a full distance matrix.


def _euclidean_dist(q, x, c):
  del c
  return np.sqrt(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def _poincare_dist(q, x, c):
  sq = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
  conf_q = 1.0 - c * (q ** 2).sum(-1)
  conf_x = 1.0 - c * (x ** 2).sum(-1)
  return np.arccosh(1.0 + 2.0 * c * sq / np.outer(conf_q, conf_x)) / np.sqrt(c)


def _sphere_dist(q, x, c):
  return np.arccos(np.clip(c * q @ x.T, -1.0, 1.0)) / np.sqrt(c)


def _gaussian(rng, n, d, c):
  del c
  return rng.normal(size=(n, d))


def _ball(rng, n, d, c):
  v = rng.normal(size=(n, d))
  v /= np.linalg.norm(v, axis=1, keepdims=True)
  return v * rng.uniform(0.0, 0.9, size=(n, 1)) / np.sqrt(c)


def _sphere(rng, n, d, c):
  v = rng.normal(size=(n, d))
  return v / np.linalg.norm(v, axis=1, keepdims=True) / np.sqrt(c)


_GEOMETRIES = {
    "euclidean": (_euclidean_dist, _gaussian, 1.0),
    "poincare": (_poincare_dist, _ball, 0.7),
    "sphere": (_sphere_dist, _sphere, 2.0),
}


def _reference(dist, query_labels, reference_labels, ks, query_is_reference):
  """Metric means straight from the definitions (Musgrave et al. 2020), ties to lower id."""
  p1, rprec, ap, recall = [], [], [], {k: [] for k in ks}
  skipped = 0
  for q in range(dist.shape[0]):
    candidates = [j for j in range(dist.shape[1]) if not (query_is_reference and j == q)]
    order = sorted(candidates, key=lambda j: (dist[q, j], j))
    rel = [int(reference_labels[j] == query_labels[q]) for j in order]
    r = sum(int(reference_labels[j] == query_labels[q]) for j in candidates)
    if r == 0:
      skipped += 1
      continue
    p1.append(rel[0])
    for k in ks:
      recall[k].append(float(any(rel[:k])))
    rprec.append(sum(rel[:r]) / r)
    ap.append(sum(rel[i] * sum(rel[:i + 1]) / (i + 1) for i in range(r)) / r)
  out = {"precision_at_1": np.mean(p1), "r_precision": np.mean(rprec), "map_at_r": np.mean(ap),
         "num_queries": len(p1), "num_skipped": skipped}
  out.update({f"recall_at_{k}": np.mean(v) for k, v in recall.items()})
  return out


def _check(got, want):
  assert set(got) == set(want)
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-6, err_msg=name)


# ----------------------------------------------------------------------------------------------
# Retrieval against the reference.

_KS = (1, 2, 5, 10)

# geometry, seed, (#queries or None for query == reference), #references, #classes, chunk_size
_REFERENCE_CASES = [
    ("euclidean", 0, None, 40, 4, None),  # One chunk holds every query.
    ("euclidean", 1, None, 41, 5, 1),
    ("euclidean", 2, None, 53, 3, 7),  # Ragged last chunk.
    ("euclidean", 3, 23, 37, 6, 5),
    ("euclidean", 4, 30, 30, 4, None),  # Separate queries, as many as references.
    ("poincare", 5, None, 47, 5, 7),
    ("poincare", 6, 19, 44, 4, 8),
    ("sphere", 7, None, 47, 5, 16),
    ("sphere", 8, 25, 33, 7, 3),
]


@pytest.mark.parametrize("name, seed, num_queries, n, num_classes, chunk_size",
                         _REFERENCE_CASES)
def test_matches_reference(name, seed, num_queries, n, num_classes, chunk_size):
  dist, sample, c = _GEOMETRIES[name]
  rng = np.random.default_rng(seed)
  # Labels independent of the points: every metric lands strictly between 0 and 1.
  x = sample(rng, n, 3, c)
  labels = rng.integers(0, num_classes, size=n)
  # A label held by a single reference: a lone query when queries are the references.
  labels[0] = num_classes + 10
  kwargs = dict(manifold=geometry.get(name), c=c, recall_ks=_KS, chunk_size=chunk_size)
  with jax.enable_x64(True):
    if num_queries is None:
      got = retrieval_metrics(x, labels, **kwargs)
      want = _reference(dist(x, x, c), labels, labels, _KS, True)
    else:
      q = sample(rng, num_queries, 3, c)
      q_labels = rng.integers(0, num_classes + 1, size=num_queries)  # Some without a match.
      got = retrieval_metrics(x, labels, queries=q, query_labels=q_labels, **kwargs)
      want = _reference(dist(q, x, c), q_labels, labels, _KS, False)
  _check(got, want)
  assert got["num_skipped"] > 0


def test_query_is_reference_with_explicit_queries():
  rng = np.random.default_rng(0)
  x, labels = rng.normal(size=(30, 4)), rng.integers(0, 3, size=30)
  with jax.enable_x64(True):
    implicit = retrieval_metrics(x, labels, recall_ks=_KS)
    explicit = retrieval_metrics(x, labels, queries=x, query_labels=labels,
                                 query_is_reference=True, recall_ks=_KS)
    without = retrieval_metrics(x, labels, queries=x, query_labels=labels, recall_ks=_KS)
  assert implicit == explicit
  # Without exclusion each query finds itself first.
  assert without["precision_at_1"] == 1.0 and implicit["precision_at_1"] < 1.0


# seed, separate queries, chunk_size, duplicated (every point twice) or on a small grid.
_TIE_CASES = [
    (0, False, None, "grid"),
    (1, False, 5, "grid"),
    (2, True, 7, "grid"),
    (3, False, 4, "duplicated"),
    (4, True, None, "duplicated"),
]


@pytest.mark.parametrize("seed, separate_queries, chunk_size, kind", _TIE_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_ties_go_to_the_lower_reference_row(seed, separate_queries, chunk_size, kind,
                                                  dtype):
  # Integer points: many exactly equal distances, exact in either dtype. The references are
  # scanned in label order internally, so this checks that every row whose result depended on
  # the order of equal distances was redone with the documented order.
  rng = np.random.default_rng(seed)
  if kind == "grid":
    x = rng.integers(0, 3, size=(40, 2)).astype(dtype)
  else:
    x = np.repeat(rng.integers(0, 50, size=(20, 2)), 2, axis=0).astype(dtype)
  labels = rng.integers(0, 4, size=x.shape[0])
  with jax.enable_x64(dtype == np.float64):
    if separate_queries:
      q = rng.integers(0, 3, size=(13, 2)).astype(dtype)
      q_labels = rng.integers(0, 4, size=13)
      got = retrieval_metrics(x, labels, queries=q, query_labels=q_labels, recall_ks=_KS,
                              chunk_size=chunk_size)
      want = _reference(_euclidean_dist(q.astype(np.float64), x.astype(np.float64), 1.0),
                        q_labels, labels, _KS, False)
    else:
      got = retrieval_metrics(x, labels, recall_ks=_KS, chunk_size=chunk_size)
      want = _reference(_euclidean_dist(x.astype(np.float64), x.astype(np.float64), 1.0),
                        labels, labels, _KS, True)
  _check(got, want)


def test_a_collapsed_embedding_scores_like_its_tie_order_not_perfectly():
  # Every point equal: all distances tie, so the lower reference row always comes first. A
  # scan that met the query's own label first would score it perfectly.
  labels = np.repeat(np.arange(4), 5)
  got = retrieval_metrics(np.zeros((20, 3), np.float32), labels[::-1].copy(), recall_ks=(1,))
  want = _reference(np.zeros((20, 20)), labels[::-1], labels[::-1], (1,), True)
  _check(got, want)
  assert got["map_at_r"] < 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_matches_float64_on_separated_points(dtype):
  rng = np.random.default_rng(3)
  x = (rng.permutation(60)[:, None] * np.ones((1, 2))).astype(dtype)  # Distinct distances.
  labels = rng.integers(0, 4, size=60)
  want = _reference(_euclidean_dist(x.astype(np.float64), x.astype(np.float64), 1.0),
                    labels, labels, _KS, True)
  with jax.enable_x64(dtype == np.float64):
    got = retrieval_metrics(x, labels, recall_ks=_KS, chunk_size=9)
  _check(got, want)


# ----------------------------------------------------------------------------------------------
# Hand-computed cases.

# Points on a line at 0, 1, 3, 6, 10 (gaps 1, 2, 3, 4: no ties), labels a a b a b.
#   query 0 (a): order 1(a) 2(b) 3(a) 4(b); R=2: P@1=1, R-prec=1/2, AP@R=(1)/2=1/2
#   query 1 (a): order 0(a) 2(b) 3(a) 4(b); R=2: same as query 0
#   query 2 (b): order 1(a) 0(a) 3(a) 4(b); R=1: P@1=0, R-prec=0, AP@R=0; recall@4 only
#   query 3 (a): order 2(b) 4(b) 1(a) 0(a); R=2: P@1=0, R-prec=0, AP@R=0; recall@3
#   query 4 (b): order 3(a) 2(b) 1(a) 0(a); R=1: P@1=0, R-prec=0, AP@R=0; recall@2
_LINE = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
_LINE_LABELS = np.array(["a", "a", "b", "a", "b"])


def test_hand_computed_line():
  got = retrieval_metrics(_LINE, _LINE_LABELS, recall_ks=(1, 2, 3, 4))
  _check(got, {"precision_at_1": 2 / 5, "recall_at_1": 2 / 5, "recall_at_2": 3 / 5,
               "recall_at_3": 4 / 5, "recall_at_4": 1.0, "r_precision": 1 / 5,
               "map_at_r": 1 / 5, "num_queries": 5, "num_skipped": 0})


def test_hand_computed_map_at_r():
  # One query at 0 (label 1) against references at 1..6 with labels 1 0 1 0 0 1: R = 3,
  # rel = 1 0 1 | 0 0 1 -> AP@R = (1/1 + 2/3) / 3 = 5/9, R-precision = 2/3.
  refs = np.arange(1.0, 7.0)[:, None]
  got = retrieval_metrics(refs, [1, 0, 1, 0, 0, 1], queries=[[0.0]], query_labels=[1],
                          recall_ks=(1, 6))
  _check(got, {"precision_at_1": 1.0, "recall_at_1": 1.0, "recall_at_6": 1.0,
               "r_precision": 2 / 3, "map_at_r": 5 / 9, "num_queries": 1, "num_skipped": 0})


def test_ties_go_to_the_lower_reference_row():
  # References 0 and 1 are at the same distance from the query; the lower row (label 0) wins.
  got = retrieval_metrics([[1.0], [-1.0]], [0, 1], queries=[[0.0]], query_labels=[1],
                          recall_ks=(1,))
  assert got["precision_at_1"] == 0.0 and got["map_at_r"] == 0.0


def test_kernel_is_compiled_once():
  rng = np.random.default_rng(0)
  x, labels = rng.normal(size=(30, 2)), rng.integers(0, 3, size=30)
  retrieval_metrics(x, labels, recall_ks=(1, 2), chunk_size=8, c=1.0)
  compiled = retrieval._chunk_stats._cache_size()
  retrieval_metrics(x + 1.0, labels, recall_ks=(1, 2), chunk_size=8, c=2.0)
  assert retrieval._chunk_stats._cache_size() == compiled


@pytest.mark.parametrize("reference, labels, kwargs, match", [
    (np.zeros(4), [0, 0, 1, 1], {}, r"must be \[N, D\]"),
    (np.zeros((4, 2)), [0, 0, 1], {}, "3 entries but reference has 4"),
    (np.zeros((4, 2)), [[0, 0, 1, 1]], {}, "must be 1-D"),
    (np.full((4, 2), np.nan), [0, 0, 1, 1], {}, "NaN"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"recall_ks": (4,)}, "recall@4 needs at least 4"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"recall_ks": (0,)}, "positive ints"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"recall_ks": (1.5,)}, "positive ints"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"chunk_size": 0}, "chunk_size"),
    (np.zeros((4, 2)), [0, 1, 2, 3], {"recall_ks": (1,)}, "R == 0 for every query"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"queries": np.zeros((2, 2))}, "without query_labels"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"query_labels": [0]}, "without queries"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"queries": np.zeros((2, 2)), "query_labels": [0]},
     "1 entries but queries has 2"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"queries": np.zeros((2, 3)), "query_labels": [0, 1]},
     "dimension 3"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"queries": np.full((2, 2), np.inf),
                                      "query_labels": [0, 1]}, "queries hold NaN or inf"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"queries": np.zeros((2, 2)), "query_labels": [0, 1],
                                      "query_is_reference": True}, "as many queries"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"query_is_reference": False}, "must not be False"),
    (np.zeros((4, 2)), [0, 0, 1, 1], {"queries": np.zeros((2, 2)), "query_labels": [0, 1],
                                      "recall_ks": (5,)}, "recall@5 needs at least 5"),
])
def test_invalid_inputs(reference, labels, kwargs, match):
  with pytest.raises(ValueError, match=match):
    retrieval_metrics(reference, np.asarray(labels), **{"recall_ks": (1,), **kwargs})


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
