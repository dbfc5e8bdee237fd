"""The negative samplers against brute force: one table over every source.

A random tree of N = 300 nodes (its transitive closure: every node's ancestors are few next to
N) stands in for a hierarchy. For each source the properties the loss relies on are checked
against sets built in Python: no kept negative is the anchor or one of its ancestors, a mask
drops exactly the invalid (or repeated) candidates, epochs are permutations of the closure
rows, and the draws follow the distribution the source promises.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import geometry
from embedlab.graphs import Closure, transitive_closure
from embedlab.losses import hierarchy as kernels
from embedlab.losses import negatives as negatives_lib
from embedlab.losses.negatives import NegativeSettings, Negatives

N, TABLE_ROWS, BATCH = 300, 384, 16
BALL = geometry.get("poincare")


@functools.cache
def _closure() -> Closure:
  rng = np.random.default_rng(0)
  links = np.stack([np.arange(1, N), rng.integers(0, np.arange(1, N))], axis=1)
  return Closure.from_edges(transitive_closure(links, N), num_nodes=N)


@functools.cache
def _ancestors_and_self() -> list[set[int]]:
  rows = [{u} for u in range(N)]
  for child, ancestor in _closure().edges:
    rows[int(child)].add(int(ancestor))
  return rows


def _sampler(**settings):
  return negatives_lib.negative_sampler(NegativeSettings(**settings), _closure(), manifold=BALL,
                                        c=1.0, batch_size=BATCH, table_rows=TABLE_ROWS)


# name -> NegativeSettings fields.
SOURCES = {
    "uniform": {"source": "uniform", "per_pair": 20, "presample": "no"},
    "uniform_presampled": {"source": "uniform", "per_pair": 20, "presample": "yes"},
    "uniform_full_redraws": {"source": "uniform", "per_pair": 20, "presample": "no",
                             "redraw": "full"},
    "unigram": {"source": "unigram", "per_pair": 20, "presample": "no"},
    "uniform_hard": {"source": "uniform", "per_pair": 20, "presample": "no", "hard": 4,
                     "hard_pool": 8},
    "unigram_hard_presampled": {"source": "unigram", "per_pair": 20, "presample": "yes",
                                "hard": 4, "hard_pool": 8},
    "batch": {"source": "batch", "per_pair": 20, "shared": 64},
    "every_node": {"source": "batch", "per_pair": 20, "shared": 1000},
    "all": {"source": "all", "per_pair": 20},
}
SAMPLER_CLASSES = {"uniform": negatives_lib.PerPairNegatives,
                   "unigram": negatives_lib.PerPairNegatives,
                   "batch": negatives_lib.SharedNegatives, "all": negatives_lib.AllNegatives}


def _first_batch(sampler, data, key=jax.random.key(0)):
  batches = jax.jit(sampler.epoch)(key, data)
  return jax.tree.map(lambda a: a[0], batches)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_kept_negatives_are_never_the_anchor_or_an_ancestor(name):
  sampler = _sampler(**SOURCES[name])
  assert isinstance(sampler, SAMPLER_CLASSES[SOURCES[name]["source"]])
  data = sampler.data()
  table = BALL.random_point(jax.random.key(1), (TABLE_ROWS, 5))
  data = sampler.refresh(table, data, epoch=0)  # hard pools on, where there are any
  pairs, negatives = jax.jit(sampler.draw)(jax.random.key(2), _first_batch(sampler, data), data)
  pairs, ids, mask = np.asarray(pairs), negatives.ids, np.asarray(negatives.mask)
  excluded = _ancestors_and_self()
  for b, (u, _) in enumerate(pairs):
    if ids is None:  # every row of the table: padding rows and invalid nodes masked, exactly
      candidates = np.arange(TABLE_ROWS)
      valid = np.array([w < N and w not in excluded[u] for w in candidates])
    elif ids.ndim == 1:  # shared by the batch: the first copy of each valid node, exactly
      candidates = np.asarray(ids)
      valid = np.array([w not in excluded[u] and (j == 0 or candidates[j - 1] != w)
                        for j, w in enumerate(candidates)])
    else:
      candidates = np.asarray(ids[b])
      valid = np.array([w not in excluded[u] for w in candidates])
    np.testing.assert_array_equal(mask[b], valid)
  assert mask.mean() > 0.5


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_an_epoch_is_a_permutation_of_the_closure_rows(name):
  sampler = _sampler(**SOURCES[name])
  batches = jax.jit(sampler.epoch)(jax.random.key(3), sampler.data())
  pairs = batches["pairs"] if sampler.presample else batches
  edges = _closure().edges
  assert pairs.shape == (edges.shape[0] // BATCH, BATCH, 2)
  rows = {tuple(row) for row in np.asarray(pairs).reshape(-1, 2).tolist()}
  assert len(rows) == pairs.shape[0] * BATCH  # no row twice
  assert rows <= {tuple(row) for row in edges.tolist()}
  if sampler.presample:
    assert batches["negatives"].shape == batches["mask"].shape == (
        pairs.shape[:2] + (sampler.negatives_per_pair,))


@pytest.mark.parametrize("name", ["uniform", "batch", "uniform_hard"])
def test_the_loss_on_the_touched_rows_is_the_loss_on_the_table(name):
  """What a sparse step differentiates: the same loss, on the gathered rows."""
  sampler = _sampler(**SOURCES[name])
  data = sampler.data()
  table = BALL.random_point(jax.random.key(4), (TABLE_ROWS, 5))
  data = sampler.refresh(table, data, epoch=0)
  pairs, negatives = jax.jit(sampler.draw)(jax.random.key(5), _first_batch(sampler, data), data)

  @jax.jit
  def both(table):
    ids, row_pairs, row_negatives = negatives_lib.touched_rows(pairs, negatives)
    assert ids.shape == (pairs.size + negatives.ids.size,)
    return (sampler.loss(table[ids], row_pairs, row_negatives),
            sampler.loss(table, pairs, negatives))

  on_rows, on_table = both(table)
  np.testing.assert_allclose(float(on_rows), float(on_table), rtol=1e-6)


def test_shared_draws_are_sorted_uniform_ids_from_the_step_key():
  sampler = _sampler(**SOURCES["batch"])
  key = jax.random.key(6)
  pairs = jnp.asarray(_closure().edges[:BATCH])
  _, negatives = sampler.draw(key, pairs, sampler.data())
  np.testing.assert_array_equal(
      negatives.ids, jnp.sort(jax.random.randint(key, (64,), 0, N, dtype=jnp.int32)))


def test_every_node_once_when_the_shared_set_covers_the_graph():
  sampler = _sampler(**SOURCES["every_node"])
  assert sampler.every_node and sampler.negatives_per_step == 1000
  _, negatives = sampler.draw(jax.random.key(0), jnp.asarray(_closure().edges[:BATCH]),
                              sampler.data())
  np.testing.assert_array_equal(negatives.ids, np.arange(N))


@pytest.mark.parametrize("source", ["uniform", "unigram"])
def test_sampled_negatives_follow_their_law(source):
  """One leaf as the anchor of 100,000 draws: each valid node w is drawn with probability
  proportional to its weight (1, or count(w)^0.75), up to the rare masked redraws."""
  closure = _closure()
  counts = np.bincount(closure.edges.reshape(-1), minlength=N).astype(np.float64)
  anchor = int(closure.leaves[np.argmin(closure.num_ancestors[closure.leaves])])
  sampler = negatives_lib.negative_sampler(
      NegativeSettings(source=source, per_pair=50, presample="no"), closure, manifold=BALL,
      c=1.0, batch_size=BATCH, table_rows=TABLE_ROWS)
  anchors = jnp.full((2000, 2), anchor, jnp.int32)
  _, negatives = jax.jit(sampler.draw)(jax.random.key(7), anchors, sampler.data())
  drawn = np.asarray(negatives.ids)[np.asarray(negatives.mask)]
  valid = np.array(sorted(set(range(N)) - _ancestors_and_self()[anchor]))
  weights = np.ones(N) if source == "uniform" else counts ** 0.75
  expected = drawn.size * weights[valid] / weights[valid].sum()
  observed = np.bincount(drawn, minlength=N)[valid]
  keep = expected >= 5  # chi-square cells need a few expected counts
  chi2 = float(((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum())
  dof = int(keep.sum()) - 1
  assert abs(chi2 - dof) < 6 * math.sqrt(2 * dof), chi2


def test_hard_columns_follow_the_sampled_ones_of_the_split_key():
  """With hard negatives the step key is split: the first K columns are the plain draw of its
  first half, the H hard ones come from the pool (once a refresh filled it)."""
  sampler = _sampler(**SOURCES["uniform_hard"])
  table = BALL.random_point(jax.random.key(9), (TABLE_ROWS, 5))
  data = sampler.refresh(table, sampler.data(), epoch=0)
  assert sampler.refresh(table, data, epoch=5) is data  # due again at epoch 10
  pairs = jnp.asarray(_closure().edges[:BATCH])
  _, got = jax.jit(sampler.draw)(jax.random.key(8), pairs, data)
  sample_key, _ = jax.random.split(jax.random.key(8))
  plain = _sampler(**SOURCES["uniform"])
  _, alone = jax.jit(plain.draw)(sample_key, pairs, plain.data())
  np.testing.assert_array_equal(got.ids[:, :20], alone.ids)
  pools = np.asarray(data["hard_pool"])
  for b, u in enumerate(np.asarray(pairs[:, 0])):
    assert set(np.asarray(got.ids[b, 20:]).tolist()) <= set(pools[u].tolist())


@pytest.mark.parametrize("settings, message", [
    ({"source": "zipf"}, "unknown negatives.source"),
    ({"presample": "maybe"}, "unknown negatives.presample"),
    ({"redraw": "lazy"}, "unknown negatives.redraw"),
    ({"per_pair": 0}, "negatives.per_pair must be positive"),
    ({"source": "batch", "shared": 0}, "negatives.shared must be positive"),
    ({"source": "all", "hard": 1}, "negatives.source must be 'uniform' or 'unigram'"),
    ({"hard": -1}, "negatives.hard >= 0"),
    ({"hard": 1, "hard_pool": 0}, "0 < negatives.hard_pool"),
    ({"hard": 1, "hard_every_epochs": 0}, "negatives.hard_every_epochs >= 1"),
    ({"rank_weighting": 1.0}, "needs negatives.hard > 0"),
])
def test_bad_settings_are_refused(settings, message):
  with pytest.raises(ValueError, match=message):
    NegativeSettings(**settings)


def test_settings_that_do_not_fit_the_graph_are_refused():
  with pytest.raises(ValueError, match="0 < negatives.hard_pool < 300 nodes"):
    _sampler(hard=1, hard_pool=300)
  with pytest.raises(ValueError, match="batch_size 100000 exceeds the"):
    negatives_lib.negative_sampler(NegativeSettings(), _closure(), manifold=BALL, c=1.0,
                                   batch_size=100_000, table_rows=TABLE_ROWS)
  large = Closure.from_edges(np.array([[1, 0], [2, 0]]), num_nodes=5000)
  with pytest.raises(ValueError, match="needs a small graph"):
    negatives_lib.negative_sampler(NegativeSettings(source="all"), large, manifold=BALL,
                                   c=1.0, batch_size=2, table_rows=5120)


def test_shared_negatives_loss_weights_each_negative_k_over_s():
  """d(u,v) + log(e^-d(u,v) + K/S sum_s e^-d(u,s)), by hand on a Euclidean line."""
  line = geometry.get("euclidean")
  table = jnp.asarray([[0.0], [1.0], [2.0], [4.0]])
  pairs = jnp.asarray([[0, 1]])
  got = kernels.shared_negatives_loss(table, pairs, jnp.asarray([2, 3]), manifold=line,
                                      negative_mask=jnp.asarray([[True, True]]), num_negatives=1)
  np.testing.assert_allclose(float(got), 1.0 + math.log(math.exp(-1) + 0.5 * (math.exp(-2)
                                                                            + math.exp(-4))),
                             rtol=1e-6)
  every = kernels.shared_negatives_loss(
      table, pairs, None, manifold=line, negative_mask=jnp.asarray([[False, False, True, True]]),
      num_negatives=1, num_candidates=2)
  np.testing.assert_allclose(float(every), float(got), rtol=1e-6)
  with pytest.raises(ValueError, match="num_candidates is required"):
    kernels.shared_negatives_loss(table, pairs, None, manifold=line,
                                  negative_mask=jnp.ones((1, 4), bool), num_negatives=1)

