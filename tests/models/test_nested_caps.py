"""Tests for embedlab.models.nested_caps: ranks of trees, the cap condition, DAGs, bad input."""

import jax
import numpy as np
import pytest

from embedlab import graphs
from embedlab.evals import reconstruction
from embedlab.geometry import poincare
from embedlab.models import nested_caps
from tests.conftest import balanced_parent
from tests.conftest import random_parent


def _closure_of(parent):
  """(child, ancestor) rows of the closure of a forest given by parent ids (-1: root)."""
  rows = []
  for child in range(len(parent)):
    ancestor = parent[child]
    while ancestor >= 0:
      rows.append((child, ancestor))
      ancestor = parent[ancestor]
  return np.asarray(rows, np.int64).reshape(-1, 2)


def _metrics(points, edges, num_nodes):
  with jax.enable_x64(True):
    return reconstruction.reconstruction_metrics(points, edges, manifold=poincare.MANIFOLD,
                                                 num_nodes=num_nodes)


# Forests x dimensions: every rank is 1 (MAP 1), the property the construction is built for.
FORESTS = {
    "binary_depth6": balanced_parent(2, 6),
    "fanout_40_depth2": balanced_parent(40, 2),   # more children than the cross-polytope
    "path_14": np.arange(-1, 13),                   # one child per level: the deepest radii
    "random_400": random_parent(400, seed=0),
    "two_roots": np.concatenate([balanced_parent(3, 3),
                                 np.where(balanced_parent(3, 3) < 0, -1,
                                          40 + balanced_parent(3, 3))]),
}


@pytest.mark.parametrize("dim", [3, 5, 10])
@pytest.mark.parametrize("name", sorted(FORESTS))
def test_forest_closures_are_reconstructed_perfectly(name, dim):
  parent = FORESTS[name]
  edges = _closure_of(parent)
  built = nested_caps.nested_caps(edges, len(parent), dim=dim)
  assert np.all(np.linalg.norm(built.points, axis=1) < 1.0)
  assert built.off_layout_pairs == 0
  np.testing.assert_array_equal(built.layout_parent, parent)
  metrics = _metrics(built.points, edges, len(parent))
  assert metrics["mean_rank"] == 1.0
  assert metrics["map"] == 1.0


@pytest.mark.parametrize("curvature", [0.25, 4.0])
def test_curvature_scales_points_and_keeps_ranks(curvature):
  parent = random_parent(120, seed=1)
  edges = _closure_of(parent)
  unit = nested_caps.nested_caps(edges, len(parent), dim=5)
  scaled = nested_caps.nested_caps(edges, len(parent), dim=5, c=curvature)
  np.testing.assert_allclose(scaled.points, unit.points / np.sqrt(curvature))
  with jax.enable_x64(True):
    metrics = reconstruction.reconstruction_metrics(
        scaled.points, edges, manifold=poincare.MANIFOLD, c=curvature, num_nodes=len(parent))
  assert metrics["mean_rank"] == 1.0


# The cap of x (angular radius theta_x, r_x = cap_radius_to_distance(theta_x)): a deep query
# u inside it is nearer to x than to the origin, one outside is farther.
@pytest.mark.parametrize("theta_x", [0.9, 0.1, 1e-3])
@pytest.mark.parametrize("inside", [True, False])
def test_cap_condition(theta_x, inside):
  r_x = float(nested_caps.cap_radius_to_distance(theta_x))
  r_u = r_x + 12.0
  phi = theta_x * (0.98 if inside else 1.02)
  e_x = np.array([1.0, 0.0, 0.0])
  e_u = np.array([np.cos(phi), np.sin(phi), 0.0])
  with jax.enable_x64(True):
    x = np.tanh(r_x / 2) * e_x
    u = np.tanh(r_u / 2) * e_u
    d = float(poincare.dist(u, x))
    r = float(poincare.dist(u, np.zeros(3)))
  assert (d < r) == inside


def test_cap_radius_of_a_quarter_turn_is_the_origin():
  assert nested_caps.cap_radius_to_distance(np.pi / 2) == pytest.approx(0.0, abs=1e-12)


# n, dim, smallest chord the code must beat (past the cross-polytope: the repulsion's
# result, with some slack; random points' smallest chord is near 0).
@pytest.mark.parametrize("n,dim,min_chord", [
    (1, 4, 2.0), (2, 4, 2.0), (7, 4, 1.414), (8, 4, 1.414), (9, 4, 1.15), (50, 9, 1.1),
    (300, 9, 0.8)])
def test_spherical_code(n, dim, min_chord):
  points, chord = nested_caps.spherical_code(n, dim)
  assert points.shape == (n, dim)
  np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=1e-12)
  if n > 1:
    chords = np.linalg.norm(points[:, None] - points[None], axis=-1)[~np.eye(n, dtype=bool)]
    assert chords.min() == pytest.approx(chord, rel=1e-9)
  assert chord >= min_chord
  again, _ = nested_caps.spherical_code(n, dim)
  np.testing.assert_array_equal(points, again)


def test_layout_parent_is_the_deepest_direct_parent_and_off_layout_pairs_are_counted():
  # 0 root; 1, 2 children of 0; 3 child of 2; 4 has direct parents 1 and 3; 5 under 4.
  rows = [(1, 0), (2, 0), (3, 2), (3, 0), (4, 1), (4, 3), (4, 2), (4, 0),
          (5, 4), (5, 1), (5, 3), (5, 2), (5, 0)]
  parent, off_layout = nested_caps.layout_tree(np.asarray(rows), 6)
  np.testing.assert_array_equal(parent, [-1, 0, 0, 2, 3, 4])
  assert off_layout == 2  # (4, 1) and (5, 1): node 1 is off their layout path


def test_dag_keeps_layout_pairs_perfect():
  rows = np.asarray([(1, 0), (2, 0), (3, 2), (3, 0), (4, 1), (4, 3), (4, 2), (4, 0),
                     (5, 4), (5, 1), (5, 3), (5, 2), (5, 0)])
  built = nested_caps.nested_caps(rows, 6, dim=4)
  on_path = np.asarray([row for row in rows if row[1] != 1 or row[0] == 1])
  with jax.enable_x64(True):
    d = np.asarray(poincare.pairwise_dist(built.points, built.points))
  for child, ancestor in on_path:
    others = [w for w in range(6) if w != child and (child, w) not in set(map(tuple, rows))]
    assert all(d[child, ancestor] < d[child, w] for w in others)


@pytest.mark.parametrize("rows,num_nodes,message", [
    ([(1, 0), (2, 1)], 3, "not transitively closed"),
    ([(1, 0), (0, 1)], 2, "cycle"),
    ([(0, 0)], 1, "self-loop"),
    ([(1, 5)], 3, "must lie in"),
])
def test_bad_closures_are_refused(rows, num_nodes, message):
  with pytest.raises(ValueError, match=message):
    nested_caps.nested_caps(np.asarray(rows), num_nodes, dim=4)


def test_bad_settings_are_refused():
  edges = _closure_of(balanced_parent(2, 2))
  with pytest.raises(ValueError, match="dim >= 3"):
    nested_caps.nested_caps(edges, 7, dim=2)
  with pytest.raises(ValueError, match="margin"):
    nested_caps.nested_caps(edges, 7, dim=4, margin=-0.1)
  with pytest.raises(ValueError, match="int array"):
    nested_caps.nested_caps(edges.astype(float), 7, dim=4)


def test_deep_paths_warn_about_float64():
  parent = np.arange(-1, 29)  # 28 levels at >= 1.39 + 2 log 1.1 each: past r = 36
  with pytest.warns(UserWarning, match="float64"):
    nested_caps.nested_caps(_closure_of(parent), len(parent), dim=4)


_DAG_ROWS = np.asarray([(1, 0), (2, 0), (3, 2), (3, 0), (4, 1), (4, 3), (4, 2), (4, 0),
                        (5, 4), (5, 1), (5, 3), (5, 2), (5, 0)])


@pytest.mark.parametrize("rows, num_nodes", [(_DAG_ROWS, 6),
                                             (_closure_of(FORESTS["two_roots"]), 80),
                                             (_closure_of(FORESTS["random_400"]), 400)])
def test_a_closure_gives_the_caps_of_its_rows(rows, num_nodes):
  closure = graphs.Closure.from_edges(rows, num_nodes=num_nodes)
  from_rows = nested_caps.nested_caps(rows[::-1], num_nodes, dim=4)   # any row order
  from_closure = nested_caps.nested_caps(closure, dim=4)
  for field in ("points", "radii", "cap_angles", "layout_parent", "layout_depth"):
    np.testing.assert_array_equal(getattr(from_closure, field), getattr(from_rows, field))
  # layout_depth: the number of steps up the layout tree to a root.
  parent = from_closure.layout_parent
  for v in range(num_nodes):
    steps, u = 0, v
    while parent[u] >= 0:
      steps, u = steps + 1, parent[u]
    assert from_closure.layout_depth[v] == steps
  np.testing.assert_array_equal(nested_caps.layout_tree(closure)[0], parent)
