"""The hierarchy task's init registry: each strategy's table, and how a config picks one."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import data, geometry
from embedlab.models import nested_caps
from embedlab.train import hierarchy_init
from tests.conftest import load_experiment, quiet_config

_config = functools.partial(quiet_config, load_experiment("hierarchy"))


@pytest.mark.parametrize("arg, expected", [
    ("smoke", "uniform"),
    ("mammals_caps", "nested_caps"),
    ("smoke,init_from=somewhere", "init_from"),
])
def test_a_config_picks_its_strategy(arg, expected):
  assert hierarchy_init.strategy(_config(arg)) == expected
  assert set(hierarchy_init.INITS) == {"uniform", "nested_caps", "init_from"}


@pytest.mark.parametrize("geometry_name", sorted(geometry.GEOMETRIES))
def test_uniform_points_lie_near_the_origin(geometry_name):
  config = _config(f"smoke,geometry={geometry_name},init_scale=0.01")
  closure = data.mammal_closure()
  manifold = geometry.get(geometry_name)
  table, info = hierarchy_init.uniform(config, closure, manifold, jax.random.PRNGKey(0))
  assert info is None
  assert table.shape == (closure.num_nodes, manifold.ambient_dim(5))
  geometry.check_on_manifold(manifold, table)
  # exp_o of tangent vectors with coordinates in [-s, s]: log_o gives them back.
  origin = manifold.origin(table.shape, c=1.0)
  tangent = np.asarray(manifold.logmap(origin, table, c=1.0))
  assert np.abs(tangent).max() <= 0.01 * (1 + 1e-3)
  assert np.abs(tangent).max(axis=1).min() < 0.005  # spread, not all on the box's surface
  again, _ = hierarchy_init.uniform(config, closure, manifold, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(np.asarray(again), np.asarray(table))


# Refinement compiles for ~a minute: its case runs with the slow tests.
@pytest.mark.parametrize("steps", [0, pytest.param(3, marks=pytest.mark.slow)])
def test_nested_caps_is_the_construction_then_its_refinement(steps):
  closure = data.mammal_closure()
  with jax.enable_x64(True):
    config = _config(f"mammals_caps,nested_caps.refine.steps={steps}")
    table, info = hierarchy_init.nested_caps(config, closure, geometry.get("poincare"), None)
  assert table.dtype == jnp.float64
  built = nested_caps.nested_caps(np.asarray(closure.edges), closure.num_nodes, dim=5)
  if steps == 0:
    assert info is None
    np.testing.assert_array_equal(np.asarray(table), built.points)
  else:
    rounds = info["nested_caps_refinement"]["rounds"]
    assert rounds[-1]["step"] == steps
    assert not np.array_equal(np.asarray(table), built.points)


def test_init_from_reads_another_runs_table_in_this_closures_order(tmp_path):
  closure = data.mammal_closure()
  ball = geometry.get("poincare")
  vectors = np.asarray(ball.random_point(jax.random.PRNGKey(1), (closure.num_nodes, 5)))
  order = np.random.default_rng(0).permutation(closure.num_nodes)
  np.savez(tmp_path / "embeddings.npz", names=np.asarray(closure.names)[order],
           vectors=vectors[order], geometry="poincare")
  config = _config(f"smoke,init_from={tmp_path}")
  table, info = hierarchy_init.init_from(config, closure, ball, None)
  assert info is None
  np.testing.assert_array_equal(np.asarray(table), np.asarray(ball.proj(vectors, c=1.0)))
