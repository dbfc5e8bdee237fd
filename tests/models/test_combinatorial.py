"""Tests for embedlab.models.combinatorial: geometry of the construction, precision, references."""

import itertools
import warnings

import mpmath
import numpy as np
import pytest

from embedlab import data
from embedlab.evals import distortion
from embedlab.models import combinatorial
from tests.conftest import balanced_parent
from tests.conftest import data_dir_or_skip
from tests.conftest import random_parent


def _edges(parent):
  child = np.flatnonzero(parent >= 0)
  return np.stack([child, parent[child]], axis=1)


def _rows(emb):
  return (emb.distance_rows if emb.fixed is not None
          else distortion.poincare_distance_rows(emb.points))


# Trees (no data needed) x dimensions x precision. Each row is small enough for a second.
TREES = {
    "binary_depth4": balanced_parent(2, 4),
    "ternary_depth3": balanced_parent(3, 3),
    "path": np.arange(-1, 11),
    "random_40": random_parent(40, 0),
    "star_12": np.concatenate([[-1], np.zeros(12, int)]),
}


@pytest.mark.parametrize("tree, dim, precision", [
    ("binary_depth4", 2, 128), ("binary_depth4", 3, 128), ("ternary_depth3", 10, 128),
    ("path", 2, 256), ("random_40", 2, 256), ("random_40", 5, 192), ("star_12", 3, 128),
    ("random_40", 64, 192),
])
def test_tree_properties(tree, dim, precision):
  parent = TREES[tree]
  eps = 0.5
  emb = combinatorial.combinatorial_embedding(parent, dim=dim, eps=eps, precision=precision)
  n = parent.size
  d = emb.distance_rows(np.arange(n))
  graph = distortion.graph_distances(_edges(parent), num_nodes=n)
  off = ~np.eye(n, dtype=bool)
  # Every edge has length tau exactly; every other pair is shorter than its tree path.
  child = np.flatnonzero(parent >= 0)
  np.testing.assert_allclose(d[child, parent[child]], emb.tau, rtol=1e-12)
  assert np.all(d[off] <= emb.tau * graph[off] * (1 + 1e-12))
  np.testing.assert_allclose(d, d.T, rtol=1e-12)
  metrics = distortion.distortion_metrics(d, _edges(parent), num_nodes=n, scale=emb.tau)
  assert metrics["map"] == 1.0
  # Sarkar's bound for the tau chosen from eps.
  assert metrics["worst_case_distortion"] <= 1 + eps
  assert emb.points.shape == (n, dim) and np.all(np.linalg.norm(emb.points, axis=1) <= 1)
  np.testing.assert_allclose(emb.radii[0], 0.0, atol=1e-12)
  np.testing.assert_allclose(emb.radii, d[0], rtol=1e-12, atol=1e-12)  # root at the origin


@pytest.mark.parametrize("m, dim, angle", [
    # Circle: 2 pi / m. Simplex code: arccos(-1/(n-1)) for n the power of two >= m.
    (5, 2, 2 * np.pi / 5), (3, 3, np.arccos(-1 / 3)), (4, 3, np.arccos(-1 / 3)),
    (8, 7, np.arccos(-1 / 7)), (16, 100, np.arccos(-1 / 15)), (64, 100, np.arccos(-1 / 63)),
    # Hadamard rows and negatives (orthogonal or antipodal): 16 directions in dim 8 or 10.
    (16, 8, np.pi / 2), (16, 10, np.pi / 2), (8, 5, np.pi / 2),
    # More than the Hadamard code holds: the circle.
    (20, 8, 2 * np.pi / 20), (9, 5, 2 * np.pi / 9),
])
def test_codes_are_unit_and_spread(m, dim, angle):
  code = combinatorial._code(m, dim, combinatorial._FLOAT64)
  assert code.shape == (m, dim)
  np.testing.assert_allclose(np.linalg.norm(code, axis=1), 1.0, rtol=1e-14)
  cosines = code @ code.T
  smallest = np.arccos(np.clip(np.max(cosines[~np.eye(m, dtype=bool)]), -1, 1))
  assert smallest == pytest.approx(angle, abs=1e-12)


@pytest.mark.parametrize("dim, seed", [(2, 0), (3, 1), (8, 2), (100, 3)])
def test_turn_is_orthogonal_and_hits_the_direction(dim, seed):
  rng = np.random.default_rng(seed)
  code = combinatorial._code(6, dim, combinatorial._FLOAT64)
  for direction in [rng.normal(size=dim), code[0] + 1e-13 * rng.normal(size=dim), -code[0]]:
    direction /= np.linalg.norm(direction)
    turned = combinatorial._turn(code, direction)
    np.testing.assert_allclose(turned[0], direction, atol=1e-14)
    np.testing.assert_allclose(turned @ turned.T, code @ code.T, atol=1e-14)


def test_tau_for_distortion_matches_the_reference_example():
  # combinatorial/README of HazyResearch/hyperbolics: smalltree (max degree 4), eps 0.1:
  # "Scaling factor tau = 23.76915358287457".
  assert combinatorial.tau_for_distortion(4, eps=0.1) == pytest.approx(23.76915358287457,
                                                                      rel=1e-14)
  for degree, eps in itertools.product([2, 5, 50], [0.1, 1.0]):
    tau = combinatorial.tau_for_distortion(degree, eps=eps)
    assert tau > combinatorial.tau_for_distortion(degree, eps=2 * eps)
  # The precision helpers agree with each other.
  tau = combinatorial.tau_for_precision(256, 30)
  assert combinatorial.bits_needed(tau * 30) <= 256


def test_smalltree_reproduces_the_reference_example():
  graph = data.load_named_tree("smalltree", data_dir=data_dir_or_skip())
  parent = data.bfs_tree(graph)
  emb = combinatorial.combinatorial_embedding(parent, dim=2, eps=0.1, precision=256)
  metrics = distortion.distortion_metrics(emb.distance_rows, graph.edges,
                                          num_nodes=graph.num_nodes, scale=emb.tau)
  # Same README: "Final MAP = 1.0", "Final d_avg = 0.01293854728190571, d_wc = 1.022360266228399"
  assert metrics["map"] == 1.0
  assert metrics["average_distortion"] == pytest.approx(0.01293854728190571, rel=1e-9)
  assert metrics["worst_case_distortion"] == pytest.approx(1.022360266228399, rel=1e-9)


@pytest.mark.parametrize("tree, dim", [("binary_depth4", 2), ("random_40", 3),
                                       ("ternary_depth3", 10)])
def test_float64_and_high_precision_agree_where_both_are_accurate(tree, dim):
  # tau 1 keeps every point within radius ~6 of the origin: float64 is accurate there.
  parent = TREES[tree]
  low = combinatorial.combinatorial_embedding(parent, dim=dim, tau=1.0)
  high = combinatorial.combinatorial_embedding(parent, dim=dim, tau=1.0, precision=200)
  assert low.fixed is None and high.fixed is not None
  np.testing.assert_allclose(low.points, high.points, atol=1e-13)
  sources = np.arange(0, parent.size, 3)
  np.testing.assert_allclose(_rows(low)(sources), high.distance_rows(sources), rtol=1e-10,
                             atol=1e-12)
  np.testing.assert_allclose(low.radii, high.radii, rtol=1e-10, atol=1e-12)


def test_high_precision_distances_match_mpmath():
  # A path of 12 edges at tau 25: the far end sits ~300 from the origin, where 1 - |x|^2 is
  # ~1e-130. The log-domain float64 evaluation must agree with arcosh done in mpmath.
  parent = np.arange(-1, 12)
  emb = combinatorial.combinatorial_embedding(parent, dim=2, tau=25.0, precision=600)
  rows = emb.distance_rows(np.arange(13))
  with mpmath.workprec(1200):
    x = [[mpmath.mpf(v) / 2 ** emb.frac_bits for v in row] for row in emb.fixed]
    for i, j in [(0, 12), (5, 6), (11, 12), (3, 9), (12, 12)]:
      sq = sum((a - b) ** 2 for a, b in zip(x[i], x[j]))
      gaps = (1 - sum(a * a for a in x[i])) * (1 - sum(b * b for b in x[j]))
      expected = float(mpmath.acosh(1 + 2 * sq / gaps))
      assert rows[i, j] == pytest.approx(expected, rel=1e-13, abs=1e-13)
  # A path is a geodesic: the far end is 12 tau from the root.
  assert rows[0, 12] == pytest.approx(12 * 25.0, rel=1e-12)
  assert emb.points[12] @ emb.points[12] == pytest.approx(1.0)  # float64 sees the rim


def test_precision_warnings():
  deep = np.arange(-1, 20)  # a path of 20 edges
  with pytest.warns(UserWarning, match="beyond what float64 resolves"):
    combinatorial.combinatorial_embedding(deep, dim=2, tau=3.0)
  with pytest.warns(UserWarning, match="below the"):
    emb = combinatorial.combinatorial_embedding(deep, dim=2, tau=3.0, precision=96)
  assert emb.bits_needed > 96
  # Far too few bits: the deepest points round onto the boundary.
  with pytest.warns(UserWarning, match="below the"), pytest.raises(ValueError, match="boundary"):
    combinatorial.combinatorial_embedding(deep, dim=2, tau=3.0, precision=64)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    combinatorial.combinatorial_embedding(deep, dim=2, tau=3.0, precision=emb.bits_needed)


@pytest.mark.parametrize("bits", [128, 256])
def test_tau_from_precision_uses_the_bits_it_has(bits):
  parent = TREES["binary_depth4"]
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # never more than the bits can hold
    emb = combinatorial.combinatorial_embedding(parent, dim=3, precision=bits)
  assert emb.tau == pytest.approx(combinatorial.tau_for_precision(bits, 4))
  assert emb.bits_needed <= bits < emb.bits_needed + 8
  metrics = distortion.distortion_metrics(emb.distance_rows, _edges(parent),
                                          num_nodes=parent.size, scale=emb.tau)
  assert metrics["map"] == 1.0


def test_forest_hangs_from_a_virtual_root():
  # Two binary trees of depth 2 (7 nodes each), roots 0 and 7.
  one = balanced_parent(2, 2)
  parent = np.concatenate([one, np.where(one >= 0, one + 7, -1)])
  emb = combinatorial.combinatorial_embedding(parent, dim=2, tau=2.0, precision=128)
  assert emb.virtual_root and emb.num_nodes == 14
  np.testing.assert_allclose(emb.radii[[0, 7]], 2.0, rtol=1e-12)  # tau from the origin
  d = emb.distance_rows(np.arange(14))
  # Across the virtual root: the roots are opposite each other, so the path is straight.
  assert d[0, 7] == pytest.approx(4.0, rel=1e-12)
  metrics = distortion.distortion_metrics(d, _edges(parent), num_nodes=14, scale=2.0)
  assert metrics["map"] == 1.0 and metrics["num_pairs"] == 2 * 7 * 6


@pytest.mark.parametrize("parent, kwargs, message", [
    ([1, 0, -1], {"tau": 1.0}, "cycle"),
    ([0, -1], {"tau": 1.0}, "own parent"),
    ([1, 2, 0], {"tau": 1.0}, "no root"),
    ([-1, 5], {"tau": 1.0}, "parent ids"),
    ([-1, 0], {"tau": 1.0, "eps": 1.0}, "one of tau and eps"),
    ([-1, 0], {}, "one of tau and eps"),
    ([-1, 0], {"tau": 1.0, "dim": 1}, "dim"),
    ([-1, 0], {"tau": -1.0}, "positive"),
    ([-1, 0], {"tau": 1.0, "precision": "float32"}, "precision"),
    ([-1, 0], {"tau": 1.0, "precision": 32}, "precision"),
])
def test_errors(parent, kwargs, message):
  with pytest.raises(ValueError, match=message):
    combinatorial.combinatorial_embedding(np.array(parent), **kwargs)
