"""Tests for embedlab.evals.distortion against hand-computed cases and brute-force NumPy."""

import numpy as np
import pytest

from embedlab.evals import distortion

# ----------------------------------------------------------------------------------------------
# Independent references: the definitions of Sala et al. (2018), one pair at a time.


def _floyd_warshall(edges, n):
  d = np.full((n, n), np.inf)
  np.fill_diagonal(d, 0)
  for a, b in edges:
    d[a, b] = d[b, a] = 1
  for k in range(n):
    d = np.minimum(d, d[:, k:k + 1] + d[k:k + 1, :])
  return d


def _reference(emb, edges, n, scale, sources):
  """(D_avg, D_wc, MAP, #pairs) from the definitions over rows ``sources``."""
  graph = _floyd_warshall(edges, n)
  neighbours = [set() for _ in range(n)]
  for a, b in edges:
    neighbours[a].add(b)
    neighbours[b].add(a)
  rel, up, down, aps = [], [], [], []
  for u in sources:
    for v in range(n):
      if v != u and np.isfinite(graph[u, v]):
        rel.append(abs(emb[u, v] / scale - graph[u, v]) / graph[u, v])
        up.append(emb[u, v] / graph[u, v])
        down.append(graph[u, v] / emb[u, v])
    if neighbours[u]:
      precisions = []
      for v in neighbours[u]:
        ball = [w for w in range(n) if w != u and emb[u, w] <= emb[u, v]]
        precisions.append(len(neighbours[u] & set(ball)) / len(ball))
      aps.append(np.mean(precisions))
  return np.mean(rel), max(up) * max(down), np.mean(aps), len(rel)


def _random_case(seed, n, extra_edges, components=1):
  """A random forest of ``components`` trees plus ``extra_edges`` chords inside them, with
  random Poincaré points (so embedded distances are generic, without ties)."""
  rng = np.random.default_rng(seed)
  edges = []
  sizes = np.array_split(np.arange(n), components)
  for block in sizes:
    for i in range(1, block.size):
      edges.append((block[rng.integers(i)], block[i]))
    for _ in range(extra_edges):
      a, b = rng.choice(block, 2, replace=False)
      edges.append((a, b))
  points = rng.normal(size=(n, 3))
  points *= (rng.uniform(0.1, 0.95, size=n) / np.linalg.norm(points, axis=1))[:, None]
  return np.array(edges), points


def _poincare_matrix(x):
  """Closed form, one pair at a time."""
  n = x.shape[0]
  d = np.zeros((n, n))
  for i in range(n):
    for j in range(n):
      if i != j:
        z = 2 * np.sum((x[i] - x[j]) ** 2) / ((1 - x[i] @ x[i]) * (1 - x[j] @ x[j]))
        d[i, j] = np.arccosh(1 + z)
  return d


# ----------------------------------------------------------------------------------------------
# Hand-computed cases on the path 0 - 1 - 2 (graph distances 1, 1, 2).

_PATH = np.array([[0, 1], [1, 2]])


@pytest.mark.parametrize("emb, scale, avg, wc, map_", [
    # Exact up to scale 2: no distortion.
    ([[0, 2, 4], [2, 0, 2], [4, 2, 0]], 2.0, 0.0, 1.0, 1.0),
    # d(0,2) = 3 instead of 2: one pair off by 1/2; expansion 1.5, no contraction.
    ([[0, 1, 3], [1, 0, 1], [3, 1, 0]], 1.0, 0.5 / 3, 1.5, 1.0),
    # 0 and 2 swapped around 1: errors 1, 0, 1/2; max ratios 2 (0-1) and 2 (0-2).
    # AP: node 0 finds 2 before its neighbour 1 (1/2); node 1 both neighbours first (1);
    # node 2's neighbour 1 ties with 0 at distance 1 (1/2).  MAP = 2/3.
    ([[0, 2, 1], [2, 0, 1], [1, 1, 0]], 1.0, 0.5, 4.0, 2 / 3),
])
def test_hand_computed(emb, scale, avg, wc, map_):
  emb = np.array(emb, float)
  graph = distortion.graph_distances(_PATH, num_nodes=3)
  np.testing.assert_array_equal(graph, [[0, 1, 2], [1, 0, 1], [2, 1, 0]])
  assert distortion.average_distortion(emb, graph, scale=scale) == pytest.approx(avg)
  assert distortion.worst_case_distortion(emb, graph) == pytest.approx(wc)
  assert distortion.mean_average_precision(emb, _PATH) == pytest.approx(map_)
  metrics = distortion.distortion_metrics(emb, _PATH, num_nodes=3, scale=scale)
  assert metrics["average_distortion"] == pytest.approx(avg)
  assert metrics["worst_case_distortion"] == pytest.approx(wc)
  assert metrics["map"] == pytest.approx(map_)
  assert (metrics["num_sources"], metrics["num_pairs"], metrics["sampled"]) == (3, 6, False)


@pytest.mark.parametrize("seed, n, extra, components", [
    (0, 12, 0, 1), (1, 20, 3, 1), (2, 25, 2, 3), (3, 40, 6, 2),
])
def test_graph_distances_match_floyd_warshall(seed, n, extra, components):
  edges, _ = _random_case(seed, n, extra, components)
  expected = _floyd_warshall(edges, n)
  expected[np.isinf(expected)] = -1
  np.testing.assert_array_equal(distortion.graph_distances(edges, num_nodes=n), expected)
  sources = np.array([n - 1, 0, 3])
  np.testing.assert_array_equal(distortion.graph_distances(edges, num_nodes=n, sources=sources),
                                expected[sources])


# Every way of passing distances (matrix, row function, the Poincaré helper) and of chunking
# gives the brute-force numbers, on trees, graphs with cycles and forests.
@pytest.mark.parametrize("seed, n, extra, components", [
    (0, 12, 0, 1), (1, 20, 3, 1), (2, 25, 2, 3),
])
@pytest.mark.parametrize("form", ["matrix", "rows", "poincare"])
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_metrics_match_brute_force(seed, n, extra, components, form, chunk_size):
  edges, points = _random_case(seed, n, extra, components)
  emb = _poincare_matrix(points)
  distances = {"matrix": emb, "rows": lambda s: emb[s],
               "poincare": distortion.poincare_distance_rows(points)}[form]
  avg, wc, map_, pairs = _reference(emb, edges, n, 0.7, range(n))
  metrics = distortion.distortion_metrics(distances, edges, num_nodes=n, scale=0.7,
                                          chunk_size=chunk_size)
  assert metrics["average_distortion"] == pytest.approx(avg, rel=1e-10)
  assert metrics["worst_case_distortion"] == pytest.approx(wc, rel=1e-10)
  assert metrics["map"] == pytest.approx(map_, rel=1e-12)
  assert metrics["num_pairs"] == pairs and metrics["collapsed_pairs"] == 0
  assert metrics["average_distortion_uncollapsed"] == metrics["average_distortion"]


def test_sampled_sources_are_the_documented_sample():
  edges, points = _random_case(4, 30, 4)
  emb = _poincare_matrix(points)
  metrics = distortion.distortion_metrics(emb, edges, num_nodes=30, max_sources=7, seed=5)
  # The docstring's rule: numpy.random.default_rng(seed).choice without replacement.
  sources = np.sort(np.random.default_rng(5).choice(30, 7, replace=False))
  avg, wc, map_, pairs = _reference(emb, edges, 30, 1.0, sources)
  assert (metrics["num_sources"], metrics["sampled"], metrics["num_pairs"]) == (7, True, pairs)
  assert metrics["average_distortion"] == pytest.approx(avg, rel=1e-10)
  assert metrics["worst_case_distortion"] == pytest.approx(wc, rel=1e-10)
  assert metrics["map"] == pytest.approx(map_, rel=1e-12)
  everything = distortion.distortion_metrics(emb, edges, num_nodes=30, max_sources=30)
  assert not everything["sampled"] and everything["num_sources"] == 30


def test_collapsed_pairs_are_counted_and_set_apart():
  # Nodes 1 and 2 (graph distance 2 apart on the path 1 - 0 - 2) embedded on one point.
  edges = np.array([[0, 1], [0, 2]])
  emb = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], float)
  metrics = distortion.distortion_metrics(emb, edges, num_nodes=3)
  assert metrics["collapsed_pairs"] == 2  # (1, 2) and (2, 1)
  assert metrics["average_distortion"] == pytest.approx(2 / 6)  # two pairs of error 1
  assert metrics["worst_case_distortion"] == np.inf
  assert metrics["average_distortion_uncollapsed"] == 0.0
  assert metrics["worst_case_distortion_uncollapsed"] == 1.0


def test_poincare_rows_match_the_closed_form_and_flag_the_boundary():
  rng = np.random.default_rng(0)
  x = rng.uniform(-0.5, 0.5, size=(6, 4))
  rows = distortion.poincare_distance_rows(x)
  np.testing.assert_allclose(rows(np.arange(6)), _poincare_matrix(x), rtol=1e-12, atol=1e-15)
  # Nearby points keep their digits: d ~ 2 |x - y| at the origin.
  near = np.array([[0.0, 0.0], [1e-9, 0.0]])
  assert distortion.poincare_distance_rows(near)([0])[0, 1] == pytest.approx(2e-9, rel=1e-9)
  edge = np.array([[0.0, 0.0], [1.0, 0.0]])  # on the boundary
  assert distortion.poincare_distance_rows(edge)([0])[0, 1] == np.inf


@pytest.mark.parametrize("call, message", [
    (lambda: distortion.graph_distances([[0, 5]], num_nodes=3), "edge ids"),
    (lambda: distortion.graph_distances([[0.0, 1.0]], num_nodes=3), "int array"),
    (lambda: distortion.graph_distances([[0, 1]], num_nodes=3, sources=[3]), "sources"),
    (lambda: distortion.average_distortion(np.ones(3), np.ones(4)), "differ in shape"),
    (lambda: distortion.mean_average_precision(np.ones(3), _PATH), r"\[S, N\]"),
    (lambda: distortion.distortion_metrics(np.ones((2, 2)), _PATH, num_nodes=3), r"\[N, N\]"),
    (lambda: distortion.distortion_metrics(np.ones((3, 3)), _PATH, num_nodes=3,
                                           max_sources=0), "max_sources"),
    (lambda: distortion.distortion_metrics(lambda s: np.ones((1, 3)), _PATH, num_nodes=3),
     "shape"),
])
def test_errors(call, message):
  with pytest.raises(ValueError, match=message):
    call()
