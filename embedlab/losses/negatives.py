"""Negative samplers for the Nickel & Kiela loss: one interface, four sources.

A sampler is built from :class:`NegativeSettings`, the closure of the training pairs
(:class:`embedlab.graphs.Closure`; a knowledge graph's known ``(head, tail)`` rows work the same
way), the geometry and the batch size, and owns everything a training step needs to know about
negatives:

* ``data()``: the device arrays its draws read (a dict the task hands to the jitted step, so it
  is not closed over): ``edges`` always, and per source ``adjacency``, ``cdf``, ``excluded``,
  ``hard_pool`` / ``hard_on`` and ``pair_cdf``;
* ``epoch(key, data)``: one epoch's batches, leading axis ``steps_per_epoch``: a random
  permutation of the closure rows cut into batches of ``[B, 2]`` pairs (the last partial batch
  dropped, as in the reference implementation), with rank weighting rows drawn with replacement
  by weight, and with presampling the epoch's negatives drawn in one vectorised call;
* ``draw(key, batch, data) -> (pairs, Negatives)``: a batch's pairs and their negatives;
* ``loss(embeddings, pairs, negatives, *, translation=None)``: the loss with those negatives,
  weighted as the source requires;
* ``refresh(table, data, epoch) -> data``: data derived from the current table (hard-negative
  pools, rank weights); ``data`` itself when nothing is due.

Sources (``NegativeSettings.source``; :data:`SAMPLERS`):

* ``"uniform"`` / ``"unigram"`` (:class:`PerPairNegatives`): ``K`` negatives per pair from
  :func:`embedlab.losses.hierarchy.sample_negatives`, uniform or by node frequency^0.75
  (word2vec, the N&K reference code; gensim's PoincareModel uses raw counts). Optionally ``H``
  hard negatives more per pair, uniform over the child's pool of its nearest non-ancestors
  (:func:`~embedlab.losses.hierarchy.nearest_non_ancestors`), recomputed from the table every
  ``hard_every_epochs`` from ``hard_from_epoch`` on; they are ordinary, unweighted members of
  the softmax and masked until the first refresh. With ``rank_weighting = w > 0`` an epoch's
  pairs are drawn with replacement, pair ``(u, a)`` with probability proportional to
  ``(1 + #pool members nearer to u than a)^w``, re-estimated at each pool refresh;
* ``"batch"`` (:class:`SharedNegatives`): ``S`` uniform nodes shared by every pair of a step,
  each weighted ``K / S`` (:func:`~embedlab.losses.hierarchy.shared_negatives_loss`); with
  ``S >= N`` every node once: the noise-free loss of ``"all"`` without a dense ``[N, N]``
  adjacency;
* ``"all"`` (:class:`AllNegatives`): every non-ancestor of the table, weighted ``K / N``: the
  noise-free expectation of the sampled loss (small graphs: a dense adjacency).

Random streams: ``epoch`` permutes (or draws weighted pairs) with its key and presamples with
``fold_in(key, 1)``; ``draw`` uses its key as is for the ``K`` sampled negatives (split into a
sampling and a hard-column key when hard negatives are on) or for the ``S`` shared ones.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from embedlab.geometry.base import Manifold
from embedlab.losses import hierarchy as kernels

if TYPE_CHECKING:
  from embedlab.graphs import Closure

SOURCES = ("uniform", "unigram", "all", "batch")
PRESAMPLE = ("auto", "yes", "no")
REDRAWS = ("pooled", "full")
# presample="auto" draws an epoch's negatives up front when there are at most this many
# (mammals, K = 50: 327k); larger graphs draw them in each step (bounded memory).
PRESAMPLE_MAX_DRAWS = 1 << 22


def _choice(value: str, valid, what: str) -> str:
  if value not in valid:
    raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(valid)}")
  return value


@dataclasses.dataclass(frozen=True)
class NegativeSettings:
  """How negatives are drawn (the ``negatives`` sub-config of a hierarchy experiment).

  Attributes:
    source: ``"uniform"``, ``"unigram"``, ``"batch"`` or ``"all"`` (module docstring).
    per_pair: ``K``, negatives per pair; for ``"batch"`` and ``"all"`` the per-pair sample
      size whose expected loss they estimate (each negative weighted ``K / S``).
    shared: ``S``, the nodes shared by a batch for ``"batch"`` (``S >= N``: every node).
    hard: ``H``, hard negatives per pair on top of ``K`` (``"uniform"``/``"unigram"``; 0: off).
    hard_pool: ``P``, nearest non-ancestors kept per node, ``0 < P < N``.
    hard_every_epochs: epochs between pool refreshes.
    hard_from_epoch: first epoch with hard negatives.
    rank_weighting: ``w``, the exponent of the rank weights of an epoch's pairs (needs hard
      negatives; 0: an epoch is a permutation of the closure rows).
    presample: ``"auto"`` (an epoch's sampled negatives drawn before its steps when that is at
      most :data:`PRESAMPLE_MAX_DRAWS` ids), ``"yes"`` or ``"no"``. Same distribution either
      way, other random draws.
    redraw: ``"pooled"`` or ``"full"`` redraw rounds of
      :func:`~embedlab.losses.hierarchy.sample_negatives` (same distribution, other draws;
      ``"full"`` is the slower reference).
  """

  source: str = "uniform"
  per_pair: int = 50
  shared: int = 1024
  hard: int = 0
  hard_pool: int = 32
  hard_every_epochs: int = 10
  hard_from_epoch: int = 0
  rank_weighting: float = 0.0
  presample: str = "auto"
  redraw: str = "pooled"

  def __post_init__(self):
    _choice(self.source, SOURCES, "negatives.source")
    _choice(self.presample, PRESAMPLE, "negatives.presample")
    _choice(self.redraw, REDRAWS, "negatives.redraw")
    if self.per_pair < 1:
      raise ValueError(f"negatives.per_pair must be positive, got {self.per_pair}")
    if self.source == "batch" and self.shared < 1:
      raise ValueError(f"negatives.shared must be positive, got {self.shared}")
    if self.hard:
      if self.source not in ("uniform", "unigram"):
        raise ValueError(f"negatives.hard adds to sampled negatives; negatives.source must be "
                         f"'uniform' or 'unigram', got {self.source!r}")
      if self.hard < 0 or self.hard_pool < 1:
        raise ValueError(f"need negatives.hard >= 0 and 0 < negatives.hard_pool < the number "
                         f"of nodes; got {self.hard} and {self.hard_pool}")
      if self.hard_every_epochs < 1 or self.hard_from_epoch < 0:
        raise ValueError(f"need negatives.hard_every_epochs >= 1 and "
                         f"negatives.hard_from_epoch >= 0; got {self.hard_every_epochs} and "
                         f"{self.hard_from_epoch}")
    if self.rank_weighting and (not self.hard or self.rank_weighting < 0):
      raise ValueError(f"negatives.rank_weighting (> 0) weighs pairs by ranks estimated from "
                       f"the hard-negative pools, so it needs negatives.hard > 0; got "
                       f"rank_weighting={self.rank_weighting}, hard={self.hard}.")


class Negatives(NamedTuple):
  """A batch's negatives.

  Attributes:
    ids: ``[B, K]`` int ids per pair, ``[S]`` ids shared by the batch, or ``None``: every row
      of the table.
    mask: ``[B, K]`` / ``[B, S]`` / ``[B, R]`` bool; ``False`` drops a negative.
  """

  ids: jax.Array | None
  mask: jax.Array


def touched_rows(pairs, negatives: Negatives):
  """The table rows a step reads, and the batch re-indexed into them (for sparse updates).

  Returns:
    ``(ids [M], pairs [B, 2], negatives)``: ``ids`` lists the pairs' rows then the negatives'
    (repeats kept), and the returned pairs and negatives index into ``table[ids]``: position
    ``i`` of the gathered rows holds node ``ids[i]``.
  """
  ids = jnp.concatenate([pairs.reshape(-1), negatives.ids.reshape(-1)])
  positions = jnp.arange(ids.shape[0], dtype=jnp.int32)
  return (ids, positions[:pairs.size].reshape(pairs.shape),
          Negatives(positions[pairs.size:].reshape(negatives.ids.shape), negatives.mask))


def epoch_pairs(key, edges, *, steps: int, batch_size: int, pair_cdf=None):
  """``[steps, B, 2]``: a random permutation of the rows ``edges`` cut into batches, or (with
  ``pair_cdf``, the CDF of per-row weights) rows drawn with replacement by weight."""
  used = steps * batch_size
  if pair_cdf is None:
    order = jax.random.permutation(key, edges.shape[0])[:used]
  else:
    uniform = jax.random.uniform(key, (used,), pair_cdf.dtype)
    order = jnp.minimum(jnp.searchsorted(pair_cdf, uniform, side="right"), edges.shape[0] - 1)
  return edges[order].reshape(steps, batch_size, 2)


class _Sampler:
  """What every source shares: the closure rows, the epoch's batches, the geometry."""

  presample = False  # whether epoch() draws the epoch's negatives
  # Ids of negatives a step touches (for a task's dense/sparse choice); None: the whole table.
  negatives_per_step: int | None = None

  def __init__(self, settings: NegativeSettings, closure: Closure, *, manifold: Manifold, c,
               batch_size: int, table_rows: int):
    self.settings = settings
    self.manifold, self.c = manifold, c
    self.num_nodes = closure.num_nodes
    self.table_rows = table_rows
    self.batch_size = batch_size
    self.edges = np.asarray(closure.edges, np.int32)
    if self.edges.shape[0] < batch_size:
      raise ValueError(f"batch_size {batch_size} exceeds the {self.edges.shape[0]} rows of the "
                       "closure")
    self.steps_per_epoch = self.edges.shape[0] // batch_size

  def data(self) -> dict:
    return {"edges": jnp.asarray(self.edges)}

  def epoch(self, key, data):
    return epoch_pairs(key, data["edges"], steps=self.steps_per_epoch,
                       batch_size=self.batch_size)

  def refresh(self, table, data: dict, epoch: int) -> dict:
    del table, epoch
    return data


class PerPairNegatives(_Sampler):
  """``K`` sampled negatives per pair (+ ``H`` hard ones): ``"uniform"`` and ``"unigram"``."""

  def __init__(self, settings: NegativeSettings, closure: Closure, **kwargs):
    super().__init__(settings, closure, **kwargs)
    ancestors = closure.ancestors
    self.max_degree = ancestors.max_degree
    self.adjacency = kernels.build_adjacency(ancestors.offsets, ancestors.targets,
                                             num_nodes=self.num_nodes)
    self.negatives_per_pair = settings.per_pair + settings.hard
    self.negatives_per_step = self.batch_size * self.negatives_per_pair
    epoch_draws = self.steps_per_epoch * self.batch_size * settings.per_pair
    self.presample = settings.presample == "yes" or (
        settings.presample == "auto" and epoch_draws <= PRESAMPLE_MAX_DRAWS)
    self.cdf = None
    if settings.source == "unigram":
      counts = np.bincount(self.edges.reshape(-1), minlength=self.num_nodes).astype(np.float64)
      weights = counts ** 0.75
      self.cdf = jnp.asarray(np.cumsum(weights) / weights.sum(), jnp.float32)
    if settings.hard:
      if not settings.hard_pool < self.num_nodes:
        raise ValueError(f"need negatives.hard >= 0 and 0 < negatives.hard_pool < "
                         f"{self.num_nodes} nodes; got {settings.hard} and {settings.hard_pool}")
      self.excluded = closure.ancestor_matrix(include_self=True, pad=None)
      self._pool_epoch = None
    if settings.rank_weighting:
      # Row e = (u, a) of the closure sits at excluded[u, 1 + e - offsets[u]].
      width = self.excluded.shape[1]
      anchors = self.edges[:, 0].astype(np.int64)
      within = np.arange(self.edges.shape[0]) - ancestors.offsets[anchors]
      self.edge_slots = jnp.asarray(anchors * width + 1 + within)

  def data(self) -> dict:
    data = {**super().data(), "adjacency": self.adjacency}
    if self.cdf is not None:
      data["cdf"] = self.cdf
    if self.settings.hard:
      data["excluded"] = jnp.asarray(self.excluded)
      # Filled by refresh from the current table; off (masked) until its first refresh.
      data["hard_pool"] = jnp.zeros((self.num_nodes, self.settings.hard_pool), jnp.int32)
      data["hard_on"] = jnp.zeros((), bool)
    if self.settings.rank_weighting:
      # Uniform until the first pool refresh replaces it.
      num_edges = self.edges.shape[0]
      data["pair_cdf"] = jnp.arange(1, num_edges + 1, dtype=jnp.float32) / num_edges
    return data

  def epoch(self, key, data):
    pairs = epoch_pairs(key, data["edges"], steps=self.steps_per_epoch,
                        batch_size=self.batch_size,
                        pair_cdf=data["pair_cdf"] if self.settings.rank_weighting else None)
    if not self.presample:
      return pairs
    # Negatives do not depend on the parameters, so a whole epoch's worth can be drawn in one
    # vectorised call before the scan: on small graphs sampling inside each step is a third
    # or more of the step.
    negatives, mask = self._negatives(jax.random.fold_in(key, 1), pairs.reshape(-1, 2), data)
    shape = pairs.shape[:2] + (self.negatives_per_pair,)
    return {"pairs": pairs, "negatives": negatives.reshape(shape), "mask": mask.reshape(shape)}

  def draw(self, key, batch, data) -> tuple[jax.Array, Negatives]:
    if self.presample:
      return batch["pairs"], Negatives(batch["negatives"], batch["mask"])
    return batch, Negatives(*self._negatives(key, batch, data))

  def _negatives(self, key, pairs, data):
    hard = self.settings.hard
    # Without hard negatives the key is used as is: the same draws as before they existed.
    sample_key, hard_key = jax.random.split(key) if hard else (key, None)
    negatives, mask = kernels.sample_negatives(
        sample_key, pairs[:, 0], num_negatives=self.settings.per_pair,
        num_nodes=self.num_nodes, adjacency=data["adjacency"], max_degree=self.max_degree,
        cumulative_weights=data["cdf"] if self.cdf is not None else None,
        redraw=self.settings.redraw)
    if not hard:
      return negatives, mask
    # H more per pair, uniform over u's pool of nearest non-ancestors (refresh), each an
    # ordinary negative of the softmax: the sum now leans on the negatives that outrank.
    columns = jax.random.randint(hard_key, (pairs.shape[0], hard), 0, self.settings.hard_pool)
    hard_ids = jnp.take_along_axis(data["hard_pool"][pairs[:, 0]], columns, axis=1)
    hard_mask = jnp.broadcast_to(data["hard_on"], hard_ids.shape)
    return (jnp.concatenate([negatives, hard_ids], axis=1),
            jnp.concatenate([mask, hard_mask], axis=1))

  def loss(self, embeddings, pairs, negatives: Negatives, *, translation=None):
    return kernels.hierarchy_loss(embeddings, pairs, negatives.ids, manifold=self.manifold,
                                  c=self.c, negative_mask=negatives.mask,
                                  translation=translation)

  def refresh(self, table, data: dict, epoch: int) -> dict:
    """Recomputes the hard-negative pools (and rank weights) from ``table`` every
    ``hard_every_epochs`` from ``hard_from_epoch`` on, and at the first call after a resume
    (the pools are a function of the table, so a resumed run recomputes the same ones)."""
    s = self.settings
    if not s.hard or epoch < s.hard_from_epoch:
      return data
    if self._pool_epoch is not None and epoch - self._pool_epoch < s.hard_every_epochs:
      return data
    self._pool_epoch = epoch
    pool = _nearest_non_ancestors(table, data["excluded"], manifold=self.manifold, c=self.c,
                                  num_nodes=self.num_nodes, pool_size=s.hard_pool)
    data = {**data, "hard_pool": pool, "hard_on": jnp.ones((), bool)}
    if s.rank_weighting:
      outranked = _pool_outranked(table, pool, data["excluded"], self.edge_slots,
                                  manifold=self.manifold, c=self.c)
      weights = (1.0 + outranked.astype(jnp.float32)) ** s.rank_weighting
      cdf = jnp.cumsum(weights)
      data["pair_cdf"] = cdf / cdf[-1]
    return data


class SharedNegatives(_Sampler):
  """``S`` uniform nodes shared by every pair of a step (every node once when ``S >= N``)."""

  def __init__(self, settings: NegativeSettings, closure: Closure, **kwargs):
    super().__init__(settings, closure, **kwargs)
    self.excluded = closure.ancestor_matrix(include_self=True, pad=None)
    self.every_node = settings.shared >= self.num_nodes
    self.negatives_per_step = settings.shared

  def data(self) -> dict:
    return {**super().data(), "excluded": jnp.asarray(self.excluded)}

  def draw(self, key, pairs, data) -> tuple[jax.Array, Negatives]:
    if self.every_node:
      shared = jnp.arange(self.num_nodes, dtype=jnp.int32)
    else:
      shared = jnp.sort(jax.random.randint(key, (self.settings.shared,), 0, self.num_nodes,
                                           dtype=jnp.int32))
    return pairs, Negatives(shared, kernels.shared_negatives_mask(pairs[:, 0], shared,
                                                                  data["excluded"]))

  def loss(self, embeddings, pairs, negatives: Negatives, *, translation=None):
    return kernels.shared_negatives_loss(
        embeddings, pairs, negatives.ids, manifold=self.manifold, c=self.c,
        negative_mask=negatives.mask, num_negatives=self.settings.per_pair,
        translation=translation)


class AllNegatives(_Sampler):
  """Every row of the table that is neither ``u``, an ancestor of ``u``, nor padding."""

  def __init__(self, settings: NegativeSettings, closure: Closure, **kwargs):
    super().__init__(settings, closure, **kwargs)
    ancestors = closure.ancestors
    self.adjacency = kernels.build_adjacency(ancestors.offsets, ancestors.targets,
                                             num_nodes=self.num_nodes)
    if "dense" not in self.adjacency:
      raise ValueError(f"negatives.source='all' needs a small graph (at most 4096 nodes); this "
                       f"one has {self.num_nodes}. Sample negatives instead.")

  def data(self) -> dict:
    return {**super().data(), "adjacency": self.adjacency}

  def draw(self, key, pairs, data) -> tuple[jax.Array, Negatives]:
    del key
    nodes = jnp.arange(self.table_rows)
    padding = self.table_rows - self.num_nodes
    mask = ((nodes[None, :] < self.num_nodes) & (nodes[None, :] != pairs[:, :1])
            & ~jnp.pad(data["adjacency"]["dense"][pairs[:, 0]], ((0, 0), (0, padding))))
    return pairs, Negatives(None, mask)

  def loss(self, embeddings, pairs, negatives: Negatives, *, translation=None):
    return kernels.shared_negatives_loss(
        embeddings, pairs, None, manifold=self.manifold, c=self.c,
        negative_mask=negatives.mask, num_negatives=self.settings.per_pair,
        num_candidates=self.num_nodes, translation=translation)


SAMPLERS = {"uniform": PerPairNegatives, "unigram": PerPairNegatives,
            "batch": SharedNegatives, "all": AllNegatives}


def negative_sampler(settings: NegativeSettings, closure: Closure, *, manifold: Manifold, c,
                     batch_size: int, table_rows: int):
  """The sampler of ``settings.source`` for the rows of ``closure`` (module docstring).

  Args:
    settings: the sampling settings (validated on construction).
    closure: the training pairs ``(child, ancestor)`` and the relation negatives must avoid.
    manifold: the geometry; ``c`` its curvature magnitude (losses and hard pools).
    batch_size: ``B``, pairs per step.
    table_rows: rows of the embedding table (``>= N``; rows past ``N`` are padding, never
      drawn and never negatives).

  Raises:
    ValueError: settings that do not fit the graph (a hard pool as large as the graph,
      ``"all"`` on a large graph, a batch larger than the closure).
  """
  return SAMPLERS[settings.source](settings, closure, manifold=manifold, c=c,
                                   batch_size=batch_size, table_rows=table_rows)


@functools.partial(jax.jit, static_argnames=("manifold", "num_nodes", "pool_size"))
def _nearest_non_ancestors(table, excluded, *, manifold, c, num_nodes, pool_size):
  return kernels.nearest_non_ancestors(table, excluded, manifold=manifold, c=c,
                                       num_nodes=num_nodes, pool_size=pool_size)


_pool_outranked = jax.jit(kernels.pool_outranked, static_argnames=("manifold",))
