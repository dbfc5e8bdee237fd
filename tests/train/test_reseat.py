"""Re-seating stuck leaves: the exact rank sums, the leaf structure, the moves and the task hook."""

from __future__ import annotations

import functools
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import data as data_lib
from embedlab import geometry
from embedlab import train
from embedlab.evals import reconstruction
from embedlab.train import reseat
from tests.conftest import load_experiment, quiet_config

_config = functools.partial(quiet_config, load_experiment("hierarchy"))

# A DAG closure: 0 root; 1, 2 under 0; 3 under 1 and 2 (two parents); 4 under 3; 5 under 1.
_DAG = np.array([[1, 0], [2, 0], [3, 1], [3, 2], [3, 0], [4, 3], [4, 1], [4, 2], [4, 0],
                 [5, 1], [5, 0]])


def _brute_rank_sum(points, u, y, ancestors, manifold):
  """Sum of u's ranks with u moved to y, straight from the definition."""
  moved = np.array(points)
  moved[u] = y
  d = np.asarray(manifold.dist(jnp.asarray(y)[None], jnp.asarray(moved), c=1.0))
  rivals = np.ones(len(points), bool)
  rivals[list(ancestors)] = False
  rivals[u] = False
  return sum(1 + int(np.sum(rivals & (d < d[a]))) for a in ancestors)


def test_leaf_structure_of_a_dag():
  leaves, ancestors, parents = reseat.leaf_structure(_DAG, 6, max_parents=2)
  np.testing.assert_array_equal(leaves, [4, 5])
  assert [sorted(a[a >= 0]) for a in ancestors] == [[], [0], [0], [0, 1, 2], [0, 1, 2, 3], [0, 1]]
  # 4's only parent is 3 (padded by repeating it); 5's is 1.
  np.testing.assert_array_equal(parents, [[3, 3], [1, 1]])
  _, _, two = reseat.leaf_structure(np.concatenate([_DAG, [[6, 2], [6, 1], [6, 0]]]), 7)
  np.testing.assert_array_equal(np.sort(two[-1]), [1, 2])   # 6 has two parents


@pytest.mark.parametrize("max_parents, expected", [
    (1, [1]), (2, [1, 2]), (3, [1, 2, 1]), (4, [1, 2, 1, 2])])
def test_leaf_parents_are_the_direct_ones_repeated_cyclically(max_parents, expected):
  rows = np.concatenate([_DAG, [[6, 2], [6, 1], [6, 0]]])   # 6: direct parents 1 and 2
  closure = data_lib.Closure.from_edges(rows, num_nodes=7)
  leaves, ancestors, parents = reseat.leaf_structure(closure, max_parents=max_parents)
  np.testing.assert_array_equal(leaves, [4, 5, 6])
  np.testing.assert_array_equal(parents[-1], expected)
  for got, want in zip((leaves, ancestors, parents),
                       reseat.leaf_structure(rows[::-1], 7, max_parents=max_parents)):
    np.testing.assert_array_equal(got, want)


def _closure_rank_sum(points, edges, manifold):
  metrics = reconstruction.reconstruction_metrics(jnp.asarray(points), edges, manifold=manifold)
  return round(metrics["mean_rank"] * metrics["num_pairs"])


@pytest.mark.parametrize("geometry_name, dtype", [
    ("poincare", "float32"), ("poincare", "float64"), ("lorentz", "float64"),
    ("euclidean", "float32")])
def test_rank_sums_match_brute_force_and_the_evaluator(geometry_name, dtype):
  with jax.enable_x64(dtype == "float64"):
    manifold = geometry.get(geometry_name)
    closure = data_lib.mammal_closure()
    n = closure.num_nodes
    ambient = manifold.ambient_dim(5)
    table = manifold.random_point(jax.random.PRNGKey(0), (n + 4, ambient), dtype=jnp.dtype(dtype))
    leaves, every, _ = reseat.leaf_structure(closure.edges, n)
    ancestors = every[leaves]
    pick = np.arange(0, len(leaves), max(1, len(leaves) // 12))[:12]
    elsewhere = manifold.random_point(jax.random.PRNGKey(1), (len(pick), 3, ambient),
                                      dtype=jnp.dtype(dtype))
    candidates = jnp.concatenate([table[leaves[pick]][:, None], elsewhere], axis=1)
    sums = np.asarray(reseat.rank_sums(candidates, table, leaves[pick], ancestors[pick],
                                       manifold=manifold, c=1.0, num_nodes=n))
    points = np.asarray(table[:n])
    for row, i in enumerate(pick):
      own = ancestors[i][ancestors[i] >= 0]
      for k in range(candidates.shape[1]):
        assert sums[row, k] == _brute_rank_sum(points, leaves[i], np.asarray(candidates[row, k]),
                                               own, manifold), (row, k)
    # At their own places, the sums over all leaves are the evaluator's leaf pairs.
    everyone = np.asarray(reseat.rank_sums(table[leaves][:, None], table, leaves, ancestors,
                                           manifold=manifold, c=1.0, num_nodes=n))[:, 0]
    leaf_edges = closure.edges[np.isin(closure.edges[:, 0], leaves)]
    metrics = reconstruction.reconstruction_metrics(table, leaf_edges, manifold=manifold,
                                                    num_nodes=n)
    np.testing.assert_allclose(everyone.sum() / metrics["num_pairs"], metrics["mean_rank"],
                               rtol=1e-9)
    # With the rival term, score differences are the closure's whole rank-sum change.
    thresholds = reseat.sorted_ancestor_distances(table, jnp.asarray(every), manifold=manifold,
                                                  c=1.0, num_nodes=n)
    scores = np.asarray(reseat.rank_sums(candidates[:3], table, leaves[pick[:3]],
                                         ancestors[pick[:3]], manifold=manifold, c=1.0,
                                         num_nodes=n, rival_thresholds=thresholds))
    total_here = _closure_rank_sum(points, closure.edges, manifold)
    for row, i in enumerate(pick[:3]):
      for k in range(1, candidates.shape[1]):
        moved = points.copy()
        moved[leaves[i]] = np.asarray(candidates[row, k])
        assert (scores[row, k] - scores[row, 0]
                == _closure_rank_sum(moved, closure.edges, manifold) - total_here), (row, k)


def test_reseat_moves_a_stranded_leaf_back_next_to_its_parent():
  manifold = geometry.get("poincare")
  with jax.enable_x64(True):
    # A tidy embedding of the DAG, then leaf 5 stranded near the boundary on the far side of
    # nodes 2-4 from its parent 1.
    table = jnp.asarray([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [0.4, 0.4], [0.55, 0.55],
                         [0.8, 0.1], [-0.9, -0.3]], jnp.float64)
    dag = np.concatenate([_DAG[_DAG[:, 0] != 5], [[5, 1], [5, 0]]])
    leaves, ancestors, parents = reseat.leaf_structure(dag, 6)
    table = table.at[5].set(jnp.asarray([0.02, 0.95]))   # beyond 2, 3 and 4
    new, info = reseat.reseat_leaves(table, jax.random.PRNGKey(0), leaves=leaves,
                                     ancestors=ancestors, parents=parents, manifold=manifold,
                                     num_nodes=6, max_mean_rank=1.0)
    before = reseat.rank_sums(table[leaves][:, None], table, leaves, ancestors[leaves],
                              manifold=manifold, num_nodes=6)[:, 0]
    after = reseat.rank_sums(new[leaves][:, None], new, leaves, ancestors[leaves],
                             manifold=manifold, num_nodes=6)[:, 0]
    total_before = _closure_rank_sum(table[:6], dag, manifold)
    total_after = _closure_rank_sum(new[:6], dag, manifold)
  assert info["stuck"] >= 1 and info["moved"] == 1
  assert int(after[1]) < int(before[1]) and int(after[1]) == 2    # both ancestors first
  # One leaf moved: its scored change is exactly the closure's (own ranks and rivals').
  assert info["rank_sum_change"] == total_after - total_before < 0
  assert info["leaf_rank_sum"] == int(np.sum(before))
  # Only leaves move; the padding row and the inner nodes are untouched.
  inner = np.setdiff1d(np.arange(7), leaves)
  np.testing.assert_array_equal(np.asarray(new)[inner], np.asarray(table)[inner])


@pytest.mark.parametrize("overrides, match", [
    ("reseat.every_epochs=3", "multiples of epochs_per_call"),
    ("reseat.every_epochs=2,reseat.from_epoch=1", "multiples of epochs_per_call"),
    ("reseat.every_epochs=-2", "multiples of epochs_per_call"),
])
def test_bad_reseat_settings_are_refused(overrides, match):
  with pytest.raises(ValueError, match=match):
    train.TASKS["hierarchy"](_config(f"smoke,epochs_per_call=2,{overrides}"))


def test_reseat_bad_arguments_are_refused():
  table = jnp.zeros((4, 2))
  leaves, ancestors, parents = reseat.leaf_structure(np.array([[1, 0], [2, 0]]), 3)
  for kwargs in ({"max_mean_rank": 0.5}, {"num_directions": 0}, {"radii": ()},
                 {"radii": (1.0, -1.0)}):
    with pytest.raises(ValueError, match="max_mean_rank"):
      reseat.reseat_leaves(table, jax.random.PRNGKey(0), leaves=leaves, ancestors=ancestors,
                           parents=parents, manifold=geometry.get("poincare"), num_nodes=3,
                           **kwargs)


def test_a_run_with_reseat_logs_each_pass_and_resumes_to_the_same_table(tmp_path):
  settings = "smoke,epochs=4,epochs_per_call=2,reseat.every_epochs=2,reseat.max_mean_rank=1"
  whole = train.run(_config(settings), tmp_path / "whole")
  rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text()
          .splitlines()]
  passes = [row for row in rows if "reseat/moved" in row]
  assert [row["epoch"] for row in passes] == [0, 2]
  assert all(row["reseat/rank_sum_change"] <= 0 for row in passes)
  # Stopped after epoch 2 and resumed: the pass at epoch 2 runs again, on the same table.
  train.run(_config(settings + ",stop_after_epochs=2"), tmp_path / "split")
  split = train.run(_config(settings), tmp_path / "split")
  rows = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text()
          .splitlines()]
  assert [row["epoch"] for row in rows if "reseat/moved" in row] == [0, 2]   # each logged once
  # A run killed after the pass of epoch 2 but before checkpoint 4: the resumed run drops the
  # pass's line with the tail, runs the pass again and logs it once.
  killed = tmp_path / "killed"
  train.run(_config(settings + ",checkpoint_every_epochs=2"), killed)
  shutil.rmtree(killed / "checkpoints" / "4")
  again = train.run(_config(settings + ",checkpoint_every_epochs=2"), killed)
  rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
  assert [row["epoch"] for row in rows if "reseat/moved" in row] == [0, 2]
  np.testing.assert_allclose(np.asarray(again.params["embeddings"]),
                             np.asarray(whole.params["embeddings"]), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(split.params["embeddings"]),
                             np.asarray(whole.params["embeddings"]), rtol=1e-6)
