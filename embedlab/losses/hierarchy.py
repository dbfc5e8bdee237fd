"""Hierarchy embedding loss with negative sampling (Nickel & Kiela 2017), for any geometry.

For a relation ``(u, v)`` of the transitive closure (``v`` an ancestor of ``u``) and sampled
negatives ``N(u) = {v' : (u, v') not in the closure, v' != u}``:

    L(u, v) = -log( exp(-d(u, v)) / sum_{v' in N(u) ∪ {v}} exp(-d(u, v')) )
            = d(u, v) + logsumexp_{v' in N(u) ∪ {v}} (-d(u, v'))

Nickel & Kiela, "Poincaré Embeddings for Learning Hierarchical Representations", NeurIPS 2017,
eq. (6); the same loss trains the Lorentz model (Nickel & Kiela, ICML 2018) and the Euclidean
baselines. Negatives are drawn inside the jitted step with ``jax.random`` and filtered against
the closure by a binary search in its CSR adjacency (no host round trip, no dense N x N mask).

The kernels here are pure functions; :mod:`embedlab.losses.negatives` composes them into the
negative samplers a training task uses (per-pair, shared by a batch, every node, hard pools).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from embedlab.geometry.base import Manifold

_REDUCTIONS = ("mean", "sum", "none")
_REDRAWS = ("pooled", "full")


def _reduce(values, reduction: str):
  if reduction == "mean":
    return jnp.mean(values)
  if reduction == "sum":
    return jnp.sum(values)
  if reduction == "none":
    return values
  raise ValueError(f"unknown reduction {reduction!r}; expected one of {_REDUCTIONS}")


def nickel_kiela_loss(positive_dist, negative_dist, *, negative_mask=None,
                      reduction: str = "mean"):
  """The softmax-over-distances loss given the distances.

  Args:
    positive_dist: ``[B]`` distances ``d(u, v)`` of the true pairs.
    negative_dist: ``[B, K]`` distances ``d(u, v'_k)`` to sampled negatives.
    negative_mask: optional ``[B, K]`` bool; ``False`` drops a negative (e.g. one that turned out
      to be a true ancestor after all resampling rounds).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-pair ``[B]``).

  Returns:
    ``d(u, v) + logsumexp([-d(u, v), -d(u, v'_1), ..., -d(u, v'_K)])``, reduced.
  """
  if positive_dist.ndim != 1 or negative_dist.ndim != 2:
    raise ValueError(f"expected positive_dist [B] and negative_dist [B, K]; got shapes "
                     f"{positive_dist.shape} and {negative_dist.shape}")
  if negative_dist.shape[0] != positive_dist.shape[0]:
    raise ValueError(f"batch sizes differ: positive_dist {positive_dist.shape[0]} vs "
                     f"negative_dist {negative_dist.shape[0]}")
  if negative_mask is not None and negative_mask.shape != negative_dist.shape:
    raise ValueError(f"negative_mask shape {negative_mask.shape} != negative_dist shape "
                     f"{negative_dist.shape}")
  # d(u, v) + logsumexp(-d) == logsumexp(d(u, v) - d): the shifted form has the exact 0 for the
  # positive and never adds a large d(u, v) to a large negative logsumexp (float32 cancellation).
  logits = jnp.concatenate([jnp.zeros_like(positive_dist)[:, None],
                            positive_dist[:, None] - negative_dist], axis=1)
  where = None
  if negative_mask is not None:
    where = jnp.concatenate([jnp.ones_like(positive_dist, bool)[:, None], negative_mask], axis=1)
  per_pair = jax.nn.logsumexp(logits, axis=1, where=where)
  return _reduce(per_pair, reduction)


def hierarchy_loss(embeddings, pairs, negatives, *, manifold: Manifold, c=1.0,
                   negative_mask=None, reduction: str = "mean", translation=None):
  """Nickel & Kiela loss for index pairs into an embedding table, in any geometry.

  With ``translation`` ``r`` it is N&K's *translational* baseline: ``d(u + r, v)`` with one
  learned vector for the (asymmetric) hypernym relation, which a symmetric distance alone
  cannot express (Euclidean geometry only: ``u + r`` must stay a point of the manifold).

  Args:
    embeddings: ``[N, D]`` table of points on ``manifold``.
    pairs: ``[B, 2]`` int rows ``(u, v)``: ``v`` is an ancestor of ``u``.
    negatives: ``[B, K]`` int node ids, negatives for each ``u``.
    manifold: the geometry (its ``dist`` is used).
    c: curvature magnitude.
    negative_mask: optional ``[B, K]`` bool, see :func:`nickel_kiela_loss`.
    reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    translation: optional ``[D]`` relation vector ``r`` added to every child ``u``.
  """
  if pairs.ndim != 2 or pairs.shape[1] != 2:
    raise ValueError(f"pairs must be [B, 2] (child, ancestor) ids; got shape {pairs.shape}")
  # Checked here: a [K] or [B] vector would broadcast against u[:, None] into a [B, K] distance
  # matrix that nickel_kiela_loss cannot tell from per-anchor negatives.
  if negatives.ndim != 2 or negatives.shape[0] != pairs.shape[0]:
    raise ValueError(f"negatives must be [B, K] ids with B = {pairs.shape[0]} (one row per pair); "
                     f"got shape {negatives.shape}")
  u = embeddings[pairs[:, 0]]
  if translation is not None:
    u = u + translation
  v = embeddings[pairs[:, 1]]
  neg = embeddings[negatives]
  positive_dist = manifold.dist(u, v, c=c)
  negative_dist = manifold.dist(u[:, None, :], neg, c=c)
  return nickel_kiela_loss(positive_dist, negative_dist, negative_mask=negative_mask,
                           reduction=reduction)


def shared_negatives_loss(embeddings, pairs, negatives, *, manifold: Manifold, c=1.0,
                          negative_mask, num_negatives: int, num_candidates: int | None = None,
                          translation=None, reduction: str = "mean"):
  """Every pair against the same ``S`` negatives, each weighted ``K / S``.

  ``S`` negatives shared by a batch cost one ``[B, S]`` distance matmul instead of ``B K``
  gathers, and weighting each by ``K / S`` (``K = num_negatives``) keeps the loss a sample of
  the same expectation as :func:`hierarchy_loss` with ``K`` uniform negatives per pair, with
  ``S`` samples instead of ``K``: far less gradient noise per step (the "chunked" negatives of
  large-scale embedding trainers such as PyTorch-BigGraph). With every node as a negative
  (``S = N``) it is the noise-free expectation itself; ``K = N`` gives the exact softmax:

      L(u, v) = d(u, v) + log( e^{-d(u, v)} + K / S sum_{s valid for u} e^{-d(u, s)} )

  Args:
    embeddings: ``[R, D]`` table of points on ``manifold``.
    pairs: ``[B, 2]`` int rows ``(u, v)``: ``v`` is an ancestor of ``u``.
    negatives: ``[S]`` int ids shared by every pair, or ``None``: every row of ``embeddings``.
    manifold: the geometry; ``c`` its curvature magnitude.
    negative_mask: ``[B, S]`` (``[B, R]`` for ``None``) bool, ``False`` drops a negative for
      that pair (``u`` itself, its ancestors, padding rows, repeated draws).
    num_negatives: ``K``, the per-pair sample size the weights stand for.
    num_candidates: ``S`` in the weight; default ``len(negatives)`` (required with ``None``:
      the number of real nodes when the table has padding rows).
    translation: optional ``[D]`` relation vector added to every child, as in
      :func:`hierarchy_loss`.
    reduction: ``"mean"``, ``"sum"`` or ``"none"``.
  """
  if num_candidates is None:
    if negatives is None:
      raise ValueError("num_candidates is required when every row is a negative (negatives=None)")
    num_candidates = negatives.shape[0]
  u, v = embeddings[pairs[:, 0]], embeddings[pairs[:, 1]]
  if translation is not None:
    u = u + translation
  targets = embeddings if negatives is None else embeddings[negatives]
  shift = jnp.log(num_candidates / num_negatives)
  return nickel_kiela_loss(manifold.dist(u, v, c=c),
                           manifold.pairwise_dist(u, targets, c=c) + shift,
                           negative_mask=negative_mask, reduction=reduction)


def shared_negatives_mask(anchors, shared, excluded):
  """``[B, S]``: ``False`` where shared node ``s`` is ``u_b`` itself or one of its ancestors,
  and on every copy of a node after its first.

  Each of the ``B W`` excluded ids is binary-searched in the sorted ``shared`` and its hit
  cleared by a scatter: ``O(B W log S)``, where comparing every pair would be ``O(B W S)``. A
  node drawn twice keeps only its first copy (later copies are masked for every pair), so one
  search finds every copy that counts.

  Args:
    anchors: ``[B]`` int ids ``u``.
    shared: ``[S]`` int ids, sorted ascending (repeats allowed).
    excluded: ``[N, W]`` int ids per node: itself and its ancestors, padded with repeats
      (:meth:`embedlab.graphs.Closure.ancestor_matrix` with ``include_self=True, pad=None``).
  """
  excluded = excluded[anchors]                                         # [B, W]
  size = shared.shape[0]
  position = jnp.searchsorted(shared, excluded)
  hit = shared[jnp.minimum(position, size - 1)] == excluded
  rows = jnp.arange(anchors.shape[0])[:, None]
  mask = jnp.ones((anchors.shape[0], size), bool)
  mask = mask.at[rows, jnp.where(hit, position, size)].set(False, mode="drop")
  first_copy = jnp.concatenate([jnp.ones((1,), bool), shared[1:] != shared[:-1]])
  return mask & first_copy[None, :]


def build_adjacency(offsets, targets, *, num_nodes: int, dense_max_nodes: int = 4096) -> dict:
  """Device-side membership structure for a directed relation given as CSR.

  Small graphs get a dense ``[N, N]`` bool matrix (one gather per test); larger ones keep the
  CSR arrays and are searched by :func:`adjacency_contains` (``log2(max degree)`` gathers).

  Returns:
    ``{"dense": bool [N, N]}`` or ``{"offsets": int32 [N + 1], "targets": int32 [E]}``.
  """
  offsets = jnp.asarray(offsets, jnp.int32)
  targets = jnp.asarray(targets, jnp.int32)
  if num_nodes <= dense_max_nodes:
    sources = jnp.repeat(jnp.arange(num_nodes, dtype=jnp.int32), jnp.diff(offsets),
                         total_repeat_length=targets.shape[0])
    dense = jnp.zeros((num_nodes, num_nodes), bool).at[sources, targets].set(True)
    return {"dense": dense}
  return {"offsets": offsets, "targets": targets}


def adjacency_contains(adjacency: dict, sources, queries, *, max_degree: int):
  """Whether ``queries[i]`` is a neighbour of ``sources[i]`` in ``adjacency``.

  For the CSR form this is a branch-free binary search with a fixed number of rounds, so it
  runs inside ``jit``.

  Args:
    adjacency: from :func:`build_adjacency`.
    sources: int array of node ids, any shape.
    queries: int array of node ids, same shape as ``sources``.
    max_degree: static upper bound on a row's length (sets the number of search rounds).

  Returns:
    bool array shaped like ``sources``.
  """
  if "dense" in adjacency:
    return adjacency["dense"][sources, queries]
  offsets, targets = adjacency["offsets"], adjacency["targets"]
  if targets.shape[0] == 0:
    return jnp.zeros(sources.shape, bool)
  lo = offsets[sources]
  end = offsets[sources + 1]
  hi = end
  last = targets.shape[0] - 1
  for _ in range(max(1, math.ceil(math.log2(max_degree + 1))) + 1):
    active = lo < hi
    mid = (lo + hi) // 2
    go_right = targets[jnp.clip(mid, 0, last)] < queries
    lo = jnp.where(active & go_right, mid + 1, lo)
    hi = jnp.where(active & ~go_right, mid, hi)
  return (lo < end) & (targets[jnp.clip(lo, 0, last)] == queries)


def sample_negatives(key, anchors, *, num_negatives: int, num_nodes: int, adjacency: dict,
                     max_degree: int, resample_rounds: int = 2, cumulative_weights=None,
                     redraw: str = "pooled"):
  """Draws negatives ``v'`` for each anchor ``u`` with ``v' != u`` and ``(u, v')`` not an edge.

  Candidates are drawn uniformly from ``[0, num_nodes)`` (or from ``cumulative_weights``, e.g.
  the unigram^0.75 distribution of word2vec and the N&K reference code); ones that hit ``u`` or a
  neighbour are redrawn up to ``resample_rounds`` times, and whatever is still invalid is
  reported in the mask so the loss can drop it (rare: a node's ancestors are few, so after two
  rounds about ``(deg / N)^3`` of the candidates remain invalid).

  Args:
    key: PRNG key.
    anchors: ``[B]`` int ids of ``u``.
    num_negatives: ``K``.
    num_nodes: nodes are ``0 .. num_nodes - 1``.
    adjacency: the relation, from :func:`build_adjacency`.
    max_degree: static bound on a row's length.
    resample_rounds: redraw rounds for invalid candidates.
    cumulative_weights: optional ``[num_nodes]`` nondecreasing CDF (last entry 1).
    redraw: ``"pooled"`` (default) redraws only the invalid candidates, from a small pool of
      fresh draws per round (full-size rounds when the pool would overflow); ``"full"`` draws
      and tests a whole ``[B, K]`` array per round. Same distribution, different draws;
      ``"full"`` is the slower reference.

  Returns:
    ``(negatives [B, K] int32, mask [B, K] bool)``.
  """
  if redraw not in _REDRAWS:
    raise ValueError(f"unknown redraw {redraw!r}; expected one of {_REDRAWS}")
  shape = anchors.shape + (num_negatives,)

  def draw(k, draw_shape):
    if cumulative_weights is None:
      return jax.random.randint(k, draw_shape, 0, num_nodes, dtype=jnp.int32)
    uniform = jax.random.uniform(k, draw_shape, dtype=cumulative_weights.dtype)
    ids = jnp.searchsorted(cumulative_weights, uniform, side="right")
    return jnp.minimum(ids, num_nodes - 1).astype(jnp.int32)

  def invalid(sources, candidates):
    return (candidates == sources) | adjacency_contains(
        adjacency, sources, candidates, max_degree=max_degree)

  keys = jax.random.split(key, resample_rounds + 1)
  candidates = draw(keys[0], shape)
  sources = jnp.broadcast_to(anchors[..., None], shape)
  bad = invalid(sources, candidates)
  if resample_rounds == 0:
    return candidates, ~bad
  # Redraws are rare (a node's excluded set is tiny next to N), so each round redraws only a
  # pool of the first `pool` invalid slots instead of the whole [B, K] array: one full-size
  # draw and membership test instead of resample_rounds + 1 of each. Every redraw is still an
  # independent draw, so the distribution is that of full-size rounds; when more slots than
  # the pool are invalid, the full-size rounds run instead (lax.cond), so it stays exact.
  size = math.prod(shape)
  expected = size * (max_degree + 1) / max(num_nodes, 1)
  pool = min(size, 64 + 4 * math.ceil(expected))
  flat_bad = bad.reshape(-1)

  def pooled(_):
    (slots,) = jnp.nonzero(flat_bad, size=pool, fill_value=size)
    in_use = slots < size
    slot_sources = sources.reshape(-1)[jnp.minimum(slots, size - 1)]
    redrawn = jnp.zeros((pool,), jnp.int32)
    still_bad = in_use
    for k in keys[1:]:
      redrawn = jnp.where(still_bad, draw(k, (pool,)), redrawn)
      still_bad = in_use & invalid(slot_sources, redrawn)
    flat = candidates.reshape(-1).at[slots].set(redrawn, mode="drop")
    flat_valid = (~flat_bad).at[slots].set(~still_bad, mode="drop")
    return flat.reshape(shape), flat_valid.reshape(shape)

  def full_rounds(_):
    current, current_bad = candidates, bad
    for k in keys[1:]:
      current = jnp.where(current_bad, draw(k, shape), current)
      current_bad = invalid(sources, current)
    return current, ~current_bad

  if pool == size or redraw == "full":
    return full_rounds(None)
  return jax.lax.cond(jnp.sum(flat_bad) > pool, full_rounds, pooled, None)


def nearest_non_ancestors(table, excluded, *, manifold: Manifold, c=1.0, num_nodes: int,
                          pool_size: int, chunk_size: int = 512):
  """For every node ``u``, its ``pool_size`` nearest nodes that are not ``u`` or its ancestors.

  These are the negatives a ranking of ``u``'s ancestors gets wrong first (hard negatives):
  uniform sampling meets a particular one about ``K / N`` times per occurrence of ``u``
  (``50 / 82,115`` on WordNet nouns), so late in training the few that still outrank an
  ancestor are seldom pushed away. Drawing some negatives from this pool targets them.

  Args:
    table: ``[R, D]`` points, ``R >= num_nodes`` (rows past ``num_nodes`` are ignored).
    excluded: ``[num_nodes, W]`` int ids per node: itself and its ancestors, padded with
      repeats (:meth:`embedlab.graphs.Closure.ancestor_matrix` with ``include_self=True,
      pad=None``).
    manifold: the geometry; ``c`` its curvature magnitude.
    num_nodes: ``N``.
    pool_size: ``P < N``, neighbours kept per node.
    chunk_size: query nodes per ``[chunk_size, N]`` distance block (memory).

  Returns:
    ``[N, P]`` int32 ids, nearest first.
  """
  if not 0 < pool_size < num_nodes:
    raise ValueError(f"pool_size must be in (0, num_nodes = {num_nodes}); got {pool_size}")
  nodes = table[:num_nodes]
  chunks = -(-num_nodes // chunk_size)
  queries = jnp.minimum(jnp.arange(chunks * chunk_size, dtype=jnp.int32), num_nodes - 1)

  def one_chunk(ids):
    dist = manifold.pairwise_dist(nodes[ids], nodes, c=c)
    rows = jnp.arange(ids.shape[0])[:, None]
    dist = dist.at[rows, excluded[ids]].set(jnp.inf)
    # Ranked in float32 whatever the table's dtype: XLA's CPU top_k is ~40x slower on float64
    # (10 s per 512 x 82k block), and a pool of candidates needs no more than float32's digits.
    return jax.lax.top_k(-dist.astype(jnp.float32), pool_size)[1].astype(jnp.int32)

  pools = jax.lax.map(one_chunk, queries.reshape(chunks, chunk_size))
  return pools.reshape(-1, pool_size)[:num_nodes]


def pool_outranked(table, pool, excluded, edge_slots, *, manifold: Manifold, c=1.0):
  """``int32 [E]``: for each closure row ``(u, a)``, how many of ``u``'s pool are nearer than ``a``.

  With ``pool`` from :func:`nearest_non_ancestors` (``u``'s ``P`` nearest non-ancestors) this is
  ``min(rank(u, a) - 1, P)``: the row's reconstruction rank, exact up to the pool size.

  Args:
    table: ``[R, D]`` points, ``R >= N``.
    pool: ``[N, P]`` int ids.
    excluded: ``[N, W]`` int ids, as for :func:`nearest_non_ancestors`.
    edge_slots: ``[E]`` int, where row ``e = (u, a)`` sits in ``excluded`` flattened
      (``u W + column of a``).
    manifold: the geometry; ``c`` its curvature magnitude.
  """
  num_nodes = pool.shape[0]
  x = table[:num_nodes, None, :]
  to_pool = jnp.sort(manifold.dist(x, table[pool], c=c), axis=-1)          # [N, P]
  to_excluded = manifold.dist(x, table[excluded], c=c)                    # [N, W]
  counts = jax.vmap(functools.partial(jnp.searchsorted, side="left"))(to_pool, to_excluded)
  return counts.reshape(-1)[edge_slots].astype(jnp.int32)
