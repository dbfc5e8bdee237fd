"""Tests for embedlab.evals.reconstruction against a brute-force NumPy reference."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import graphs
from embedlab.evals import reconstruction
from embedlab.evals import reconstruction_metrics
from embedlab.geometry import euclidean

try:
  from embedlab.geometry import poincare
except ImportError:  # Being written in parallel; its rows join the table once it lands.
  poincare = None


# ----------------------------------------------------------------------------------------------
# Independent reference: the definitions of Nickel & Kiela (2017), one node pair at a time.


def _reference(dist, edges, symmetric):
  """(mean rank, MAP, #queries, #pairs) straight from the definitions, on a full matrix."""
  n = dist.shape[0]
  neighbours = [set() for _ in range(n)]
  for child, ancestor in edges:
    neighbours[child].add(ancestor)
    if symmetric:
      neighbours[ancestor].add(child)
  ranks, aps = [], []
  for u in range(n):
    if not neighbours[u]:
      continue
    others = [w for w in range(n) if w != u]
    precisions = []
    for v in neighbours[u]:
      ranks.append(1 + sum(1 for w in others
                           if w not in neighbours[u] and dist[u, w] < dist[u, v]))
      positives_within = sum(1 for p in neighbours[u] if dist[u, p] <= dist[u, v])
      all_within = sum(1 for w in others if dist[u, w] <= dist[u, v])
      precisions.append(positives_within / all_within)
    aps.append(np.mean(precisions))
  return np.mean(ranks), np.mean(aps), len(aps), len(ranks)


def _euclidean_dist(x, c):
  del c
  return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def _poincare_dist(x, c):
  sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
  conformal = 1.0 - c * (x ** 2).sum(-1)
  return np.arccosh(1.0 + 2.0 * c * sq / np.outer(conformal, conformal)) / np.sqrt(c)


def _random_closure(rng, n, max_parents):
  """Transitive closure of a random DAG (a tree when max_parents == 1), ids shuffled."""
  ancestors = [set()]
  for i in range(1, n):
    parents = rng.choice(i, size=min(i, rng.integers(1, max_parents + 1)), replace=False)
    ancestors.append(set().union(*({int(p)} | ancestors[p] for p in parents)))
  relabel = rng.permutation(n)
  return np.array([(relabel[i], relabel[a]) for i in range(n) for a in ancestors[i]])


def _random_ball(rng, n, dim, c):
  direction = rng.normal(size=(n, dim))
  direction /= np.linalg.norm(direction, axis=1, keepdims=True)
  return direction * rng.uniform(0.0, 0.95, size=(n, 1)) / np.sqrt(c)


def _table_pairwise_dist(x, y, *, c):
  del c
  n = x.shape[-1] // 2
  return x[..., :n] @ jnp.swapaxes(y[..., n:], -1, -2)


# A fake geometry that reads distances off a table, so a test can choose any distance matrix
# (e.g. one full of exact ties). Point u is the row [table[u], one_hot(u)]: the first half of
# the query row dotted with the one-hot half of w is table[u, w]. One module-level record, so
# its compiled kernels are shared between tests.
_TABLE = dataclasses.replace(euclidean.MANIFOLD, name="table",
                             pairwise_dist=_table_pairwise_dist)


def _table_points(table):
  return np.concatenate([table, np.eye(len(table), dtype=table.dtype)], axis=1)


# Each geometry: (manifold, reference distance, random points, c).
_GEOMETRIES = {
    "euclidean": (euclidean.MANIFOLD, _euclidean_dist,
                  lambda rng, n, c: rng.normal(size=(n, 3)), 1.0),
}
if poincare is not None:
  _GEOMETRIES["poincare"] = (poincare.MANIFOLD, _poincare_dist,
                             lambda rng, n, c: _random_ball(rng, n, 3, c), 0.7)


# Every chunking on Euclidean; the two with a ragged last chunk on the other geometries (each
# row compiles its own kernels, so the table stays small).
_REFERENCE_CASES = [
    ("euclidean", 0, 20, 1, None),  # One chunk holds every query.
    ("euclidean", 0, 20, 1, 1),
    ("euclidean", 1, 47, 1, 7),  # 7 divides neither 46 (directed) nor 47 (symmetric) queries.
    ("euclidean", 2, 60, 2, 16),  # A DAG: nodes with two parents.
] + [(geometry, 1, 47, 1, 7) for geometry in sorted(_GEOMETRIES) if geometry != "euclidean"] + [
    (geometry, 2, 60, 2, 16) for geometry in sorted(_GEOMETRIES) if geometry != "euclidean"]


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("geometry, seed, n, max_parents, chunk_size", _REFERENCE_CASES)
def test_matches_reference(geometry, seed, n, max_parents, chunk_size, symmetric):
  manifold, reference_dist, sample, c = _GEOMETRIES[geometry]
  rng = np.random.default_rng(seed)
  edges = _random_closure(rng, n, max_parents)
  points = sample(rng, n, c)
  mean_rank, mean_ap, num_queries, num_pairs = _reference(
      reference_dist(points, c), edges, symmetric)
  with jax.enable_x64(True):
    got = reconstruction_metrics(points, edges, manifold=manifold, c=c, symmetric=symmetric,
                                 chunk_size=chunk_size)
  np.testing.assert_allclose(got["mean_rank"], mean_rank, rtol=1e-6)
  np.testing.assert_allclose(got["map"], mean_ap, rtol=1e-6)
  assert (got["num_queries"], got["num_pairs"]) == (num_queries, num_pairs)
  assert got["sampled"] is False


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_are_grouped(seed, symmetric, dtype):
  """Distances drawn from {1, 2, 3}: most comparisons are exact ties."""
  rng = np.random.default_rng(seed)
  n = 30
  edges = _random_closure(rng, n, 2)
  table = rng.integers(1, 4, size=(n, n)).astype(dtype)
  table = np.minimum(table, table.T)
  mean_rank, mean_ap, _, _ = _reference(table, edges, symmetric)
  with jax.enable_x64(dtype == np.float64):
    got = reconstruction_metrics(_table_points(table), edges, manifold=_TABLE,
                                 symmetric=symmetric, chunk_size=8)
  np.testing.assert_allclose(got["mean_rank"], mean_rank, rtol=1e-6)
  np.testing.assert_allclose(got["map"], mean_ap, rtol=1e-6)


# Four nodes on a line, x = (0, 1, 3, 2); rows (child, ancestor): 1->0, 2->0, 3->1, 3->0.
# Distances: d(0,.) = (-, 1, 3, 2), d(1,.) = (1, -, 2, 1), d(2,.) = (3, 2, -, 1),
# d(3,.) = (2, 1, 1, -).
# Directed (neighbours = ancestors):
#   u=1, Nb={0}: d=1; non-neighbours 2 (d=2), 3 (d=1): none nearer -> rank 1;
#        nodes within d<=1: {0, 3} -> AP = 1/2.
#   u=2, Nb={0}: d=3; non-neighbours 1 (2) and 3 (1) nearer -> rank 3; AP = 1/3.
#   u=3, Nb={1, 0}: v=1 (d=1): non-neighbour 2 at d=1 is not nearer -> rank 1; v=0 (d=2):
#        node 2 nearer -> rank 2; precision at v=1: 1/|{1, 2}| = 1/2, at v=0: 2/3
#        -> AP = 7/12.
#   mean rank = (1 + 3 + 1 + 2) / 4 = 7/4; MAP = (1/2 + 1/3 + 7/12) / 3 = 17/36.
# Symmetric (ancestors and descendants): Nb(0)={1,2,3}, Nb(1)={0,3}, Nb(2)={0}, Nb(3)={0,1}.
#   u=0: no non-neighbour -> ranks 1, 1, 1; AP = 1.
#   u=1: v=0 and v=3 (both d=1), non-neighbour 2 at d=2 -> ranks 1, 1; AP = 1.
#   u=2, u=3: as directed -> rank 3, AP 1/3; ranks 1, 2, AP 7/12.
#   mean rank = (3 + 2 + 3 + 3) / 8 = 11/8; MAP = (1 + 1 + 1/3 + 7/12) / 4 = 35/48.
_LINE = np.array([[0.0], [1.0], [3.0], [2.0]])
_LINE_EDGES = np.array([[1, 0], [2, 0], [3, 1], [3, 0]])


@pytest.mark.parametrize("symmetric, mean_rank, mean_ap, num_queries, num_pairs", [
    (False, 7 / 4, 17 / 36, 3, 4),
    (True, 11 / 8, 35 / 48, 4, 8),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hand_computed(symmetric, mean_rank, mean_ap, num_queries, num_pairs, dtype):
  with jax.enable_x64(dtype == np.float64):
    got = reconstruction_metrics(_LINE.astype(dtype), _LINE_EDGES,
                                 manifold=euclidean.MANIFOLD, symmetric=symmetric)
  assert got["mean_rank"] == pytest.approx(mean_rank, rel=1e-6)
  assert got["map"] == pytest.approx(mean_ap, rel=1e-6)
  assert (got["num_queries"], got["num_pairs"]) == (num_queries, num_pairs)


def test_perfect_line_embedding():
  # Root 0 at 0; branch 1 -> 3 to the right, 2 -> 4 to the left, each level 10x farther out:
  # every node's ancestors are nearer than any other node.
  x = np.array([[0.0], [1.0], [-1.0], [10.0], [-10.0]])
  edges = np.array([[1, 0], [2, 0], [3, 1], [3, 0], [4, 2], [4, 0]])
  got = reconstruction_metrics(x, edges, manifold=euclidean.MANIFOLD)
  assert got["mean_rank"] == 1.0 and got["map"] == 1.0


@pytest.mark.parametrize("seed, max_parents", [(0, 1), (1, 2)])
@pytest.mark.parametrize("symmetric", [False, True])
def test_perfect_table_embedding(seed, max_parents, symmetric):
  rng = np.random.default_rng(seed)
  n = 30
  edges = _random_closure(rng, n, max_parents)
  # Distance 1 from each node to its neighbours, 2 to every other node (directed: a node's
  # descendants are non-neighbours, so the fake distance is not symmetric).
  table = np.full((n, n), 2.0, np.float32)
  table[edges[:, 0], edges[:, 1]] = 1.0
  if symmetric:
    table[edges[:, 1], edges[:, 0]] = 1.0
  got = reconstruction_metrics(_table_points(table), edges, manifold=_TABLE,
                               symmetric=symmetric, chunk_size=8)
  assert got["mean_rank"] == 1.0 and got["map"] == 1.0


@pytest.mark.parametrize("symmetric", [False, True])
def test_padding_rows_are_ignored(symmetric):
  rng = np.random.default_rng(3)
  n = 30
  edges = _random_closure(rng, n, 2)
  x = rng.normal(size=(n, 4)).astype(np.float32)
  # Padding that would change every rank if it were counted: a point next to each real one,
  # and a few far away.
  padded = np.concatenate([x, x + 1e-3, np.full((5, 4), 1e3, np.float32)])
  expected = reconstruction_metrics(x, edges, manifold=euclidean.MANIFOLD, symmetric=symmetric,
                                    chunk_size=8)
  got = reconstruction_metrics(padded, edges, manifold=euclidean.MANIFOLD, symmetric=symmetric,
                               num_nodes=n, chunk_size=8)
  assert got == expected
  mean_rank, mean_ap, _, _ = _reference(_euclidean_dist(x.astype(np.float64), 1.0), edges,
                                        symmetric)
  np.testing.assert_allclose([got["mean_rank"], got["map"]], [mean_rank, mean_ap], rtol=1e-5)


@pytest.mark.parametrize("max_queries, sampled", [(5, True), (29, True), (30, False),
                                                  (1000, False)])
def test_max_queries(max_queries, sampled):
  rng = np.random.default_rng(4)
  n = 31  # 30 nodes with an ancestor: every node but the root.
  edges = _random_closure(rng, n, 1)
  x = rng.normal(size=(n, 4)).astype(np.float32)
  got = reconstruction_metrics(x, edges, manifold=euclidean.MANIFOLD, max_queries=max_queries,
                               seed=7, chunk_size=8)
  assert got["sampled"] is sampled
  assert got["num_queries"] == min(max_queries, n - 1)
  assert 1.0 <= got["mean_rank"] <= n - 1 and 0.0 < got["map"] <= 1.0
  again = reconstruction_metrics(x, edges, manifold=euclidean.MANIFOLD,
                                 max_queries=max_queries, seed=7, chunk_size=8)
  assert again == got


def test_kernel_is_compiled_once():
  rng = np.random.default_rng(5)
  n = 30
  edges = _random_closure(rng, n, 1)
  x = rng.normal(size=(n, 4)).astype(np.float32)
  reconstruction_metrics(x, edges, manifold=euclidean.MANIFOLD, c=1.0, chunk_size=8)
  compiled = reconstruction._chunk_stats._cache_size()
  # New values (curvature, points), same shapes and geometry: no new trace.
  reconstruction_metrics(2 * x, edges, manifold=euclidean.MANIFOLD, c=0.5, chunk_size=8)
  assert reconstruction._chunk_stats._cache_size() == compiled


@pytest.mark.parametrize("embeddings, edges, kwargs, match", [
    (np.zeros(4), [[1, 0]], {}, r"must be \[N, D\]"),
    (np.zeros((4, 2)), [[1, 0]], {"num_nodes": 5}, "num_nodes=5"),
    (np.zeros((4, 2)), [[1, 4]], {}, "must lie in"),
    (np.zeros((4, 2)), [[-1, 0]], {}, "must lie in"),
    (np.zeros((4, 2)), [[1, 0]], {"num_nodes": 1}, "must lie in"),
    (np.zeros((4, 2)), [[2, 2]], {}, "self-loop"),
    (np.zeros((4, 2)), np.zeros((0, 2), np.int32), {}, "edges is empty"),
    (np.zeros((4, 2)), [[1.0, 0.0]], {}, "int array"),
    (np.full((4, 2), np.nan), [[1, 0]], {}, "NaN"),
    (np.zeros((4, 2)), [[1, 0]], {"chunk_size": 0}, "chunk_size"),
    (np.zeros((4, 2)), [[1, 0]], {"max_queries": 0}, "max_queries"),
])
def test_invalid_inputs(embeddings, edges, kwargs, match):
  with pytest.raises(ValueError, match=match):
    reconstruction_metrics(embeddings, np.asarray(edges), manifold=euclidean.MANIFOLD, **kwargs)


# ----------------------------------------------------------------------------------------------
# Link prediction (filtered) and the translational model.


def _filtered_reference(dist, test_edges, known_edges):
  """Held-out edges ranked against nodes that are neither known ancestors nor the query."""
  n = dist.shape[0]
  held_out = [set() for _ in range(n)]
  known = [set() for _ in range(n)]
  for child, ancestor in test_edges:
    held_out[child].add(ancestor)
  for child, ancestor in known_edges:
    known[child].add(ancestor)
  ranks, aps = [], []
  for u in range(n):
    if not held_out[u]:
      continue
    candidates = [w for w in range(n) if w != u and (w in held_out[u] or w not in known[u])]
    precisions = []
    for v in held_out[u]:
      ranks.append(1 + sum(1 for w in candidates
                           if w not in held_out[u] and dist[u, w] < dist[u, v]))
      positives_within = sum(1 for p in held_out[u] if dist[u, p] <= dist[u, v])
      precisions.append(positives_within / sum(1 for w in candidates if dist[u, w] <= dist[u, v]))
    aps.append(np.mean(precisions))
  return np.mean(ranks), np.mean(aps), len(aps), len(ranks)


@pytest.mark.parametrize("seed, max_parents, chunk_size", [(0, 1, None), (1, 2, 3), (2, 3, 7)])
def test_filtered_link_prediction_matches_reference(seed, max_parents, chunk_size):
  rng = np.random.default_rng(seed)
  edges = _random_closure(rng, 40, max_parents)
  held_out = rng.random(edges.shape[0]) < 0.3
  x = _random_ball(rng, 40, 3, 1.0)
  got = reconstruction_metrics(x, edges[held_out], manifold=poincare.MANIFOLD,
                               known_edges=edges, chunk_size=chunk_size)
  mean_rank, mean_ap, num_queries, num_pairs = _filtered_reference(
      _poincare_dist(x, 1.0), edges[held_out], edges)
  np.testing.assert_allclose([got["mean_rank"], got["map"]], [mean_rank, mean_ap], rtol=1e-5)
  assert (got["num_queries"], got["num_pairs"]) == (num_queries, num_pairs)


def test_filtering_only_removes_known_edges():
  rng = np.random.default_rng(3)
  edges = _random_closure(rng, 30, 2)
  x = _random_ball(rng, 30, 2, 1.0)
  plain = reconstruction_metrics(x, edges, manifold=poincare.MANIFOLD)
  # Known edges that are all being ranked filter nothing.
  same = reconstruction_metrics(x, edges, manifold=poincare.MANIFOLD, known_edges=edges)
  assert same == plain


def test_translation_matches_reference():
  rng = np.random.default_rng(4)
  edges = _random_closure(rng, 35, 2)
  x = rng.normal(size=(35, 4))
  r = rng.normal(size=4)
  got = reconstruction_metrics(x, edges, manifold=euclidean.MANIFOLD, translation=r)
  dist = np.sqrt((((x + r)[:, None, :] - x[None, :, :]) ** 2).sum(-1))
  mean_rank, mean_ap, _, _ = _reference(dist, edges, symmetric=False)
  np.testing.assert_allclose([got["mean_rank"], got["map"]], [mean_rank, mean_ap], rtol=1e-5)
  with pytest.raises(ValueError, match="translation must have shape"):
    reconstruction_metrics(x, edges, manifold=euclidean.MANIFOLD, translation=r[:2])


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("filtered", [False, True])
def test_a_closure_gives_the_same_metrics_as_its_rows(symmetric, filtered):
  rng = np.random.default_rng(5)
  edges = _random_closure(rng, 30, 2)
  held_out = rng.random(edges.shape[0]) < 0.3
  x = rng.normal(size=(32, 3))   # two padding rows: num_nodes comes from the closure
  ranked = edges[held_out] if filtered else edges
  known = edges if filtered else None
  from_rows = reconstruction_metrics(x, ranked, manifold=euclidean.MANIFOLD, num_nodes=30,
                                     symmetric=symmetric, known_edges=known)
  known_closure = None if known is None else graphs.Closure.from_edges(known, num_nodes=30)
  from_closure = reconstruction_metrics(x, graphs.Closure.from_edges(ranked, num_nodes=30),
                                        manifold=euclidean.MANIFOLD, symmetric=symmetric,
                                        known_edges=known_closure)
  assert from_closure == from_rows


def test_a_closure_of_another_size_is_refused():
  closure = graphs.Closure.from_edges(np.asarray([[1, 0]]), num_nodes=3)
  with pytest.raises(ValueError, match="num_nodes=4 differs"):
    reconstruction_metrics(np.zeros((4, 2)), closure, manifold=euclidean.MANIFOLD, num_nodes=4)
