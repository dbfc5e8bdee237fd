"""Hard negatives: pools of nearest non-ancestors, how they are drawn, refreshed and resumed."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import train
from embedlab.losses import hierarchy as hierarchy_loss
from tests.conftest import load_experiment, quiet_config

_config = functools.partial(quiet_config, load_experiment("hierarchy"))
HARD = "smoke,hard_negatives=4,hard_pool=8,hard_every_epochs=2"


def _ancestors_and_self(task) -> list[set[int]]:
  rows = [{u} for u in range(task.num_nodes)]
  for child, ancestor in task.closure.edges:
    rows[int(child)].add(int(ancestor))
  return rows


@pytest.mark.parametrize("geometry, pool_size, chunk_size, dtype", [
    ("poincare", 8, 512, "float32"),
    ("poincare", 31, 100, "float32"),   # chunks that do not divide the node count
    ("lorentz", 5, 1000, "float32"),
    ("euclidean", 16, 4096, "float32"),  # one chunk larger than the graph
    # Pools are ranked on float32 distances (XLA's CPU top_k is slow on float64); on a float64
    # table they must still be the nearest by the float64 distance.
    ("poincare", 8, 256, "float64"),
])
def test_pools_are_the_nearest_non_ancestors(geometry, pool_size, chunk_size, dtype):
  with jax.enable_x64(dtype == "float64"):
    task = train.TASKS["hierarchy"](_config(f"{HARD},geometry={geometry},dtype={dtype}"))
    table = task.manifold.random_point(jax.random.PRNGKey(1), (task.table_rows, task.ambient),
                                       dtype=jnp.dtype(dtype))
    pools = np.asarray(hierarchy_loss.nearest_non_ancestors(
        table, task.data["excluded"], manifold=task.manifold, c=1.0, num_nodes=task.num_nodes,
        pool_size=pool_size, chunk_size=chunk_size))
    assert pools.shape == (task.num_nodes, pool_size)
    excluded = _ancestors_and_self(task)
    points = np.array(table[:task.num_nodes])
    assert points.dtype == np.dtype(dtype)
    for u in range(0, task.num_nodes, 97):
      d = np.array(task.manifold.dist(points[u][None], points, c=1.0))
      d[list(excluded[u])] = np.inf
      np.testing.assert_array_equal(pools[u], np.argsort(d, kind="stable")[:pool_size])

def test_hard_negatives_are_masked_until_the_first_refresh_then_drawn_from_the_pool():
  task = train.TASKS["hierarchy"](_config(HARD + ",hard_from_epoch=2,presample_negatives=no"))
  pairs = task.data["edges"][:64]
  key = jax.random.PRNGKey(0)
  _, (negatives, mask) = jax.jit(task.sampler.draw)(key, pairs, task.data)
  assert negatives.shape == mask.shape == (64, 10 + 4)
  assert not np.asarray(mask[:, 10:]).any()
  assert task.refresh_data(task.init_params(key), task.data, epoch=1) is task.data  # too early
  params = {"embeddings": task.manifold.random_point(key, (task.table_rows, task.ambient))}
  data = task.refresh_data(params, task.data, epoch=2)
  _, (negatives, mask) = jax.jit(task.sampler.draw)(key, pairs, data)
  assert np.asarray(mask[:, 10:]).all()
  pools = np.asarray(data["hard_pool"])
  for row, u in enumerate(np.asarray(pairs[:, 0])):
    assert set(np.asarray(negatives[row, 10:]).tolist()) <= set(pools[u].tolist())


def test_pools_refresh_every_hard_every_epochs():
  task = train.TASKS["hierarchy"](_config(HARD + ",hard_every_epochs=3"))
  params = task.init_params(jax.random.PRNGKey(0))
  recomputed = []
  data = task.data
  for epoch in range(0, 10):
    new = task.refresh_data(params, data, epoch)
    if new is not data:
      recomputed.append(epoch)
    data = new
  assert recomputed == [0, 3, 6, 9]


def test_hard_negative_run_resumes_bitwise(tmp_path):
  """The pools are a function of the table, so a resumed run recomputes the same ones."""
  arg = HARD + ",epochs=4,epochs_per_call=1,checkpoint_every_epochs=1,eval_every_epochs=4"
  straight = train.run(_config(arg), tmp_path / "straight")
  train.run(_config(arg + ",stop_after_epochs=2"), tmp_path / "killed")
  resumed = train.run(_config(arg), tmp_path / "killed")
  np.testing.assert_array_equal(np.asarray(straight.params["embeddings"]),
                                np.asarray(resumed.params["embeddings"]))


@pytest.mark.parametrize("arg, message", [
    ("smoke,hard_negatives=2,negatives_from=all", "negatives.source must be 'uniform' or"),
    ("smoke,hard_negatives=2,negatives_from=batch", "negatives.source must be 'uniform' or"),
    ("smoke,hard_negatives=-1", "negatives.hard >= 0"),
    ("smoke,hard_negatives=2,hard_pool=0", "0 < negatives.hard_pool <"),
    ("smoke,hard_negatives=2,hard_pool=5000", "0 < negatives.hard_pool < 1182"),
    ("smoke,hard_negatives=2,hard_every_epochs=0", "negatives.hard_every_epochs >= 1"),
    ("smoke,hard_negatives=2,hard_from_epoch=-1", "negatives.hard_from_epoch >= 0"),
    ("smoke,rank_weighting=1.0", "needs negatives.hard > 0"),
    ("smoke,hard_negatives=2,rank_weighting=-1.0", "needs negatives.hard > 0"),
])
def test_bad_hard_negative_settings_are_refused(arg, message):
  with pytest.raises(ValueError, match=message):
    train.TASKS["hierarchy"](_config(arg))


def test_a_workdir_older_than_a_config_field_resumes_with_a_note(tmp_path, capsys):
  train.run(_config("smoke,stop_after_epochs=2"), tmp_path)
  stored = json.loads((tmp_path / "config.json").read_text())
  del stored["negatives"]["hard_pool"], stored["optim"]["decay_begin_epoch"]
  (tmp_path / "config.json").write_text(json.dumps(stored))
  assert train.run(_config("smoke"), tmp_path).results["finished"]
  out = capsys.readouterr().out
  assert "predates the config fields negatives.hard_pool=32, optim.decay_begin_epoch=None" in out


def test_without_hard_negatives_the_draws_are_those_of_sample_negatives():
  """Adding the feature must not change the random numbers of runs that do not use it."""
  task = train.TASKS["hierarchy"](_config("smoke,presample_negatives=no"))
  pairs = task.data["edges"][:32]
  key = jax.random.PRNGKey(7)
  _, got = jax.jit(task.sampler.draw)(key, pairs, task.data)
  want = hierarchy_loss.sample_negatives(
      key, pairs[:, 0], num_negatives=10, num_nodes=task.num_nodes,
      adjacency=task.data["adjacency"], max_degree=task.sampler.max_degree)
  for a, b in zip(got, want):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_rank_weights_count_the_pool_members_nearer_than_each_ancestor():
  """Brute force: for edge (u, a), #pool(u) nearer to u than a, i.e. min(rank - 1, P)."""
  task = train.TASKS["hierarchy"](_config(HARD + ",rank_weighting=1.0"))
  key = jax.random.PRNGKey(3)
  table = task.manifold.random_point(key, (task.table_rows, task.ambient))
  data = task.refresh_data({"embeddings": table}, task.data, epoch=0)
  counts = np.asarray(hierarchy_loss.pool_outranked(
      table, data["hard_pool"], data["excluded"], task.sampler.edge_slots,
      manifold=task.manifold, c=task.c))
  x = np.asarray(table, np.float64)
  pools = np.asarray(data["hard_pool"])
  dist = lambda u, v: float(task.manifold.dist(jnp.asarray(x[u]), jnp.asarray(x[v])))
  edges = np.asarray(task.data["edges"])
  for e in range(0, edges.shape[0], max(1, edges.shape[0] // 40)):
    u, a = edges[e]
    expected = sum(dist(u, w) < dist(u, a) for w in pools[u])
    assert counts[e] == expected, (u, a)
  weights = np.diff(np.concatenate([[0.0], np.asarray(data["pair_cdf"], np.float64)]))
  # The CDF is float32, so its differences carry cumsum rounding.
  np.testing.assert_allclose(weights / weights.min(), (1.0 + counts) / (1.0 + counts.min()),
                             rtol=1e-2)


def test_rank_weighted_epochs_draw_pairs_by_their_weights():
  task = train.TASKS["hierarchy"](_config(HARD + ",rank_weighting=1.0"))
  cdf = np.zeros(task.data["edges"].shape[0], np.float32)
  cdf[7:] = 1.0  # all mass on edge 7
  pairs = task.epoch_batches(jax.random.PRNGKey(0), {**task.data, "pair_cdf": jnp.asarray(cdf)})
  pairs = np.asarray(pairs["pairs"] if isinstance(pairs, dict) else pairs).reshape(-1, 2)
  assert (pairs == np.asarray(task.data["edges"][7])).all()
