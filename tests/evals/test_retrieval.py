"""Tests for embedlab.evals.retrieval against brute-force NumPy references.

The jitted kernels are also run with and without ``jit`` (``chex.variants``): tracing must not
change what they compute.
"""

import chex
import jax
import numpy as np
import pytest
from absl.testing import parameterized

from embedlab import geometry
from embedlab.evals import retrieval
from embedlab.evals import retrieval_metrics

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
# The kernels, traced and eager.


class KernelTest(chex.TestCase):
  """``_chunk_stats`` and the ranking keys, with and without ``jit``."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("euclidean", "euclidean", 0), ("poincare", "poincare", 1), ("sphere", "sphere", 2))
  def test_chunk_stats_match_reference(self, name, seed):
    dist, sample, c = _GEOMETRIES[name]
    rng = np.random.default_rng(seed)
    n, ks = 31, (1, 2, 5)
    x = sample(rng, n, 3, c).astype(np.float32)
    labels = rng.integers(0, 4, size=n).astype(np.int32)
    labels[0] = 9  # A lone query: an invalid row.
    num_relevant = (np.bincount(labels)[labels] - 1).astype(np.int32)
    kernel = self.variant(retrieval._chunk_stats.__wrapped__,
                          static_argnames=("k", "ks", "exclude_self"))
    p1, recall, rprec, ap, tied = (np.asarray(v) for v in kernel(
        geometry.get(name), x, labels, np.float32(c), x, labels, np.arange(n, dtype=np.int32),
        num_relevant, num_relevant > 0, np.int32(0), k=int(num_relevant.max()), ks=ks,
        exclude_self=True))
    valid = num_relevant > 0
    got = {"precision_at_1": p1[valid].mean(), "r_precision": rprec[valid].mean(),
           "map_at_r": ap[valid].mean(), "num_queries": int(valid.sum()),
           "num_skipped": int((~valid).sum()),
           **{f"recall_at_{k}": recall[valid, i].mean() for i, k in enumerate(ks)}}
    want = _reference(dist(x.astype(np.float64), x.astype(np.float64), c), labels, labels, ks,
                      True)
    _check(got, want)
    assert not tied.any() and not p1[~valid].any()

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      *[(m.name, m.name) for m in retrieval._RANKING_KEYS])
  def test_ranking_key_orders_like_the_distance(self, name):
    manifold = geometry.get(name)
    _, sample, c = _GEOMETRIES[name]
    rng = np.random.default_rng(3)
    q, x = sample(rng, 7, 4, c).astype(np.float32), sample(rng, 29, 4, c).astype(np.float32)
    key = np.asarray(self.variant(retrieval._RANKING_KEYS[manifold])(q, x))
    distances = np.asarray(manifold.pairwise_dist(q, x, c=c))
    assert key.shape == distances.shape == (7, 29)
    np.testing.assert_array_equal(np.argsort(key, axis=1), np.argsort(distances, axis=1))


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
