"""Tests for embedlab.models.cap_refinement: DAGs fixed, trees and the start kept, bad input."""

import jax
import numpy as np
import pytest

from embedlab import graphs
from embedlab.evals import reconstruction
from embedlab.geometry import poincare
from embedlab.models import cap_refinement
from embedlab.models import nested_caps
from tests.conftest import balanced_parent
from tests.conftest import random_parent


def _dag_closure(parent, extra_parents):
  """Closure rows of a forest plus extra direct parents ``{child: [parent, ...]}``.

  Parents must have smaller ids than their children (so the graph is acyclic)."""
  ancestors = [set() for _ in parent]
  for child in range(len(parent)):
    direct = ([parent[child]] if parent[child] >= 0 else []) + extra_parents.get(child, [])
    for p in direct:
      assert p < child
      ancestors[child] |= {p} | ancestors[p]
  return np.asarray([(child, a) for child in range(len(parent)) for a in sorted(ancestors[child])],
                    np.int64).reshape(-1, 2)


def _random_dag(n, num_extra, seed):
  parent = random_parent(n, seed=seed)
  rng = np.random.default_rng(seed)
  extra = {}
  for child in rng.choice(np.arange(n // 2, n), num_extra, replace=False):
    extra[int(child)] = [int(rng.integers(1, child))]
  return parent, _dag_closure(parent, extra)


def _metrics(points, edges, num_nodes):
  with jax.enable_x64(True):
    return reconstruction.reconstruction_metrics(points, edges, manifold=poincare.MANIFOLD,
                                                 num_nodes=num_nodes)


# Random trees with second parents in random places (not a tree layout's strong suit: the
# second parent is usually in an unrelated branch).
DAGS = {
    "random_150_extra_8": _random_dag(150, 8, seed=0),
    "random_150_extra_20": _random_dag(150, 20, seed=1),
    "binary_depth5_extra_6": (balanced_parent(2, 5), _dag_closure(
        balanced_parent(2, 5), {40: [20], 50: [3], 60: [33], 30: [2], 62: [25], 45: [9]})),
}


# Every second parent pulled in: the mean rank's excess over 1 at least halves. Random second
# parents cross unrelated branches, so the stretched caps brush past other nodes and MAP may
# dip: a little in 10 dimensions, more in 5 (the last column: the largest dip allowed).
@pytest.mark.parametrize("name,dim,map_dip", [(name, 10, 0.01) for name in sorted(DAGS)]
                         + [("random_150_extra_20", 5, 0.05)])
def test_refinement_fits_the_dag(name, dim, map_dip):
  parent, edges = DAGS[name]
  num_nodes = len(parent)
  built = nested_caps.nested_caps(edges, num_nodes, dim=dim)
  assert built.off_layout_pairs > 0
  refined, rounds = cap_refinement.refine_caps(edges, num_nodes, built, steps=100)
  before = _metrics(built.points, edges, num_nodes)
  after = _metrics(refined.points, edges, num_nodes)
  assert before["mean_rank"] > 1.0
  assert after["mean_rank"] < 1.0 + 0.5 * (before["mean_rank"] - 1.0)
  assert after["map"] > before["map"] - map_dip
  assert rounds[-1].loss < 0.05 * rounds[0].loss
  assert np.all(np.linalg.norm(refined.points, axis=1) < 1.0)
  np.testing.assert_array_equal(refined.layout_parent, built.layout_parent)


def test_zero_steps_give_back_the_construction():
  parent, edges = DAGS["random_150_extra_8"]
  built = nested_caps.nested_caps(edges, len(parent), dim=5)
  same, rounds = cap_refinement.refine_caps(edges, len(parent), built, steps=0)
  np.testing.assert_allclose(same.points, built.points, rtol=0, atol=1e-12)
  np.testing.assert_allclose(same.cap_angles, built.cap_angles, rtol=1e-12)
  assert [r.step for r in rounds] == [0]
  assert rounds[0].ancestor_violations > 0  # the DAG's off-layout pairs


def test_a_tree_is_left_perfect():
  # The construction's margin (0.1) exceeds the refinement's (0.05): nothing to fix, nothing
  # moves, every rank stays 1.
  parent = random_parent(150, seed=3)
  edges = _dag_closure(parent, {})
  built = nested_caps.nested_caps(edges, len(parent), dim=4)
  refined, rounds = cap_refinement.refine_caps(edges, len(parent), built, steps=30,
                                               mine_every=10)
  assert all(r.loss == 0.0 and r.ancestor_violations == 0 for r in rounds)
  np.testing.assert_allclose(refined.points, built.points, rtol=0, atol=1e-12)
  metrics = _metrics(refined.points, edges, len(parent))
  assert metrics["mean_rank"] == 1.0 and metrics["map"] == 1.0


def test_curvature_scales_the_points():
  parent, edges = DAGS["random_150_extra_8"]
  built = nested_caps.nested_caps(edges, len(parent), dim=5)
  unit, _ = cap_refinement.refine_caps(edges, len(parent), built, steps=20)
  scaled, _ = cap_refinement.refine_caps(edges, len(parent), built, steps=20, c=4.0)
  np.testing.assert_allclose(scaled.points, unit.points / 2.0, rtol=1e-12)


@pytest.mark.parametrize("kwargs,message", [
    ({"steps": -1}, "steps >= 0"),
    ({"mine_every": 0}, "mine_every >= 1"),
    ({"margin": -0.1}, "margin >= 0"),
    ({"learning_rate": 0.0}, "learning_rate > 0"),
    ({"num_nodes": 5}, "num_nodes=5"),
])
def test_bad_settings_are_refused(kwargs, message):
  parent, edges = DAGS["random_150_extra_8"]
  built = nested_caps.nested_caps(edges, len(parent), dim=4)
  kwargs = {"num_nodes": len(parent), **kwargs}
  with pytest.raises(ValueError, match=message):
    cap_refinement.refine_caps(edges, caps=built, **kwargs)


def test_a_lone_root_is_returned_as_is():
  built = nested_caps.nested_caps(np.zeros((0, 2), np.int64), 1, dim=4)
  same, rounds = cap_refinement.refine_caps(np.zeros((0, 2), np.int64), 1, built)
  assert same is built and len(rounds) == 1


def test_a_closure_refines_like_its_rows():
  parent, edges = DAGS["random_150_extra_8"]
  closure = graphs.Closure.from_edges(edges, num_nodes=len(parent))
  built = nested_caps.nested_caps(closure, dim=4)
  from_rows, _ = cap_refinement.refine_caps(edges, len(parent), built, steps=5)
  from_closure, _ = cap_refinement.refine_caps(closure, caps=built, steps=5)
  np.testing.assert_array_equal(from_closure.points, from_rows.points)
  np.testing.assert_array_equal(from_closure.cap_angles, from_rows.cap_angles)
  with pytest.raises(TypeError, match="caps"):
    cap_refinement.refine_caps(closure, steps=5)
  # Drop (u, root) for a node two levels down: u still reaches the root through its parent.
  drop = np.flatnonzero((edges[:, 1] == 0) & (closure.num_ancestors[edges[:, 0]] >= 2))[0]
  with pytest.raises(ValueError, match="not transitively closed"):
    cap_refinement.refine_caps(np.delete(edges, drop, axis=0), len(parent), built, steps=5)
