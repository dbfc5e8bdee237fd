"""Graph reconstruction: mean rank and mean average precision (MAP) of an embedding.

Nickel & Kiela, "Poincaré Embeddings for Learning Hierarchical Representations", NeurIPS 2017,
section 4.1: embed the transitive closure of a hierarchy, then for every node ``u`` rank all
other nodes by distance from ``u`` and ask where ``u``'s true neighbours land.

Evaluation is chunked over query nodes and jitted, so the 82,115-node WordNet noun closure runs
without ever holding an ``N x N`` matrix; see :func:`reconstruction_metrics`.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np

from embedlab import graphs
from embedlab.geometry.base import Manifold
from embedlab.graphs import Closure
from embedlab.graphs import Csr

# Elements of one [B, N] distance block; ~16M keeps a chunk's temporaries (distances, keys,
# sorted keys) at a few hundred MB, on CPU as on any accelerator.
_DEFAULT_CHUNK_ELEMENTS = 1 << 24
# Chunks dispatched ahead of the host: enough to overlap building the next neighbour lists
# with device work, few enough that queued inputs stay small.
_MAX_IN_FLIGHT = 2
# Smallest neighbour-list width: below it padding costs nothing, and fewer widths mean fewer
# compilations.
_MIN_WIDTH = 16


def _filter_csr(known: Closure, ranked: Csr, *, symmetric: bool) -> Csr:
  """CSR of the known neighbours of each node that are not among its ranked ones."""
  num_nodes = known.num_nodes
  known_csr = known.neighbours(symmetric=symmetric)
  known_rows = np.repeat(np.arange(num_nodes), known_csr.counts)
  ranked_keys = np.repeat(np.arange(num_nodes), ranked.counts) * num_nodes + ranked.targets
  keep = ~np.isin(known_rows * num_nodes + known_csr.targets, ranked_keys)
  return graphs.csr(np.stack([known_rows[keep], known_csr.targets[keep]], axis=1), num_nodes)


def _padded_neighbours(rows: np.ndarray, offsets, targets, batch: int, width: int):
  """``(ids int32 [batch, width], valid bool [batch, width])``: the neighbours of each row.

  Empty slots (and rows past ``rows.size``) hold the row's own query id, which the kernel
  sorts above every real distance, and are marked invalid.
  """
  counts = offsets[rows + 1] - offsets[rows]
  row_of = np.repeat(np.arange(rows.size), counts)
  # Slot of each neighbour within its row: its index in `targets` minus the row's start.
  within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
  ids = np.zeros((batch, width), np.int32)
  ids[:rows.size] = rows[:, None]
  ids[row_of, within] = targets[np.repeat(offsets[rows], counts) + within]
  valid = np.arange(width)[None, :] < np.pad(counts, (0, batch - rows.size))[:, None]
  return ids, valid


def _searchsorted_rows(sorted_rows, values, side: str):
  return jax.vmap(lambda a, v: jnp.searchsorted(a, v, side=side))(sorted_rows, values)


@jax.jit
def _chunk_stats(manifold: Manifold, x, c, queries, neighbours, neighbour_valid, row_valid,
                 excluded=None, translation=None):
  """Per-row rank sum, average precision and neighbour count for one chunk of queries.

  Args:
    manifold: static pytree; the same geometry never retraces.
    x: ``[N, D]`` embeddings, float32 or float64.
    c: curvature (an array, so a new value does not retrace).
    queries: ``int32 [B]`` query ids (padding rows repeat a valid id).
    neighbours: ``int32 [B, P]`` neighbour ids of each query, empty slots hold the query id.
    neighbour_valid: ``bool [B, P]``, false on empty slots.
    row_valid: ``bool [B]``, false on padding rows.
    excluded: optional ``int32 [B, Q]`` ids never ranked for that row (known true edges in
      filtered link prediction); empty slots hold the query id.
    translation: optional ``[D]`` vector added to each query point (translational model).

  Returns:
    ``(rank_sum [B], ap [B], num_neighbours [B])``, zero on padding rows.
  """
  n = x.shape[0]
  query_points = x[queries] if translation is None else x[queries] + translation
  d = manifold.pairwise_dist(query_points, x, c=c)
  # Non-negative floats order exactly like their bit patterns read as integers, and XLA's CPU
  # sort is ~6x faster on integers than on floats (whose comparator orders NaN and -0.0).
  # `where` maps -0.0 to +0.0 and NaN to +inf (the worst rank) so the patterns stay monotone.
  d = jnp.where(d > 0, d, jnp.where(jnp.isnan(d), jnp.inf, 0.0))
  int_dtype = jnp.int64 if d.dtype == jnp.float64 else jnp.int32
  key = jax.lax.bitcast_convert_type(d, int_dtype)
  # Above every distance, +inf included: the query never counts as a node w != u.
  is_query = queries[:, None] == jnp.arange(n)[None, :]
  key = jnp.where(is_query, jnp.iinfo(int_dtype).max, key)
  if excluded is not None:
    # Filtered ranking: known edges sort with the query, above every candidate.
    rows = jnp.arange(key.shape[0])[:, None]
    key = key.at[rows, excluded].set(jnp.iinfo(int_dtype).max)
  neighbour_key = jnp.take_along_axis(key, neighbours, axis=1)  # Empty slots: the max too.

  # One sort per row, then binary searches: O(N log N + P log N) per row, where counting by
  # comparison would be O(P N). side="left" counts d < d_p, side="right" counts d <= d_p,
  # so tied nodes are grouped exactly as in the definitions.
  all_sorted = jax.lax.sort(key, dimension=1)
  all_lt = _searchsorted_rows(all_sorted, neighbour_key, "left")
  all_le = _searchsorted_rows(all_sorted, neighbour_key, "right")
  neighbour_sorted = jax.lax.sort(neighbour_key, dimension=1)
  pos_lt = _searchsorted_rows(neighbour_sorted, neighbour_key, "left")
  pos_le = _searchsorted_rows(neighbour_sorted, neighbour_key, "right")

  # Each of a row's P ranks is at most N - P, so its rank sum is at most P (N - P) <= N^2 / 4:
  # exact in int32 up to N = 92,681; beyond that accumulate in the float dtype (relative
  # error ~1e-7 in float32).
  rank_dtype = jnp.int32 if n * n // 4 <= jnp.iinfo(jnp.int32).max else d.dtype
  rank = (1 + all_lt - pos_lt).astype(rank_dtype)
  rank_sum = jnp.sum(jnp.where(neighbour_valid, rank, 0), axis=1)
  num_pos = jnp.sum(neighbour_valid, axis=1, dtype=jnp.int32)
  precision = pos_le.astype(d.dtype) / jnp.maximum(all_le, 1).astype(d.dtype)
  ap = jnp.sum(jnp.where(neighbour_valid, precision, 0.0), axis=1) / jnp.maximum(num_pos, 1)
  return (jnp.where(row_valid, rank_sum, 0), jnp.where(row_valid, ap, 0.0),
          jnp.where(row_valid, num_pos, 0))


def reconstruction_metrics(embeddings, edges, *, manifold: Manifold, c=1.0,
                           num_nodes: int | None = None, symmetric: bool = False,
                           chunk_size: int | None = None, max_queries: int | None = None,
                           seed: int = 0, known_edges=None, translation=None) -> dict:
  """Reconstruction mean rank and MAP (Nickel & Kiela, NeurIPS 2017).

  Neighbours ``Nb(u)``: the closure rows are ``(child, ancestor)`` pairs; by default the
  neighbours of ``u`` are its ancestors (directed, as the reference implementation evaluates
  an unsymmetrised closure); with ``symmetric=True`` its ancestors and descendants. Distances
  are ``d(u, w) = manifold.pairwise_dist``. For every query ``u`` with ``Nb(u)`` non-empty
  and every ``v`` in ``Nb(u)``::

    rank(u, v) = 1 + #{w : w != u, w not in Nb(u), d(u, w) < d(u, v)}      (1 is perfect)
    AP(u)      = mean_{p in Nb(u)}  #{q in Nb(u) : d(u, q) <= d(u, p)}
                                    / #{w != u : d(u, w) <= d(u, p)}

    mean_rank  = mean of rank(u, v) over all pairs;   map = mean of AP(u) over queries.

  ``AP(u)`` equals ``sklearn.metrics.average_precision_score(Nb(u) indicator, -d(u, .))``
  over ``w != u`` (tied scores grouped), as in facebookresearch/poincare-embeddings.
  Ties: nodes whose computed distances are exactly equal are grouped as in these formulas
  (``<`` for ranks, ``<=`` for precision), never ordered by id. Distances come from the
  matmul-based ``pairwise_dist``, whose rounding can split a mathematical tie (or order two
  nodes differently than ``manifold.dist`` would): such ties between distinct nodes are
  effectively broken arbitrarily.

  Link prediction (``known_edges`` given): ``edges`` are the held-out rows to rank and
  ``known_edges`` every true row (training and held-out); a known ancestor of ``u`` that is not
  one of its held-out ones is removed from the candidates ``w`` in both formulas (the
  "filtered" setting), so a held-out edge is ranked only against non-edges and other held-out
  edges.

  Note: gensim's ``ReconstructionEvaluation`` counts ``u`` itself (at distance 0) as a
  non-neighbour, so its mean rank is exactly 1 higher than this one and its AP denominators
  are 1 larger (its MAP is lower).

  Cost: ``O(Q N (D + log N))`` for ``Q`` queries, in chunks of ``B`` query rows, so no
  ``N x N`` array ever exists. One jitted call per chunk computes the ``[B, N]`` distances,
  sorts each row once, and binary-searches the distances of the row's neighbours (``[B, P]``
  ids, built on the host from the closure's cached neighbour lists) in it and among
  themselves, which gives both counts of every formula above. Queries are grouped by degree,
  ``P`` is a power of two and the last chunk is padded to ``B``, so a call compiles a handful
  of shapes, and the jitted kernel is cached across calls with the same shapes and geometry.
  On a 2-core CPU the
  WordNet mammals (1,182 nodes) take well under a second; the nouns (82,115) take several
  minutes (a few ms per query), so pass ``max_queries`` for evaluations during training.

  Args:
    embeddings: ``[T, D]`` table, ``T >= num_nodes``; rows past ``num_nodes`` (padding of a
      training table) are ignored: they are never ranked. float16/bfloat16 are evaluated in
      float32; float64 is kept (with ``jax_enable_x64``).
    edges: the closure: a :class:`~embedlab.graphs.Closure` (its cached neighbour lists are
      reused across calls), or ``int [E, 2]`` rows ``(child id, ancestor id)``, ids in
      ``[0, num_nodes)``; duplicates are ignored, self-loops are an error.
    manifold: the geometry (a static pytree: the jitted kernel is reused across calls).
    c: curvature passed to ``manifold.pairwise_dist`` (traced, so changing it never retraces).
    num_nodes: ``N``, the number of real nodes; ``None`` means the closure's, or
      ``embeddings.shape[0]`` for rows.
    symmetric: rank ancestors and descendants instead of ancestors only.
    chunk_size: query rows per jitted call ``B``; default ``2**24 // N`` (about 16M distances
      per chunk), capped at the number of queries.
    max_queries: if set and smaller than the number of nodes with a neighbour, evaluate a
      uniform sample of that many query nodes (without replacement) instead of all of them.
    seed: seed of the numpy generator that draws that sample.
    known_edges: optional rows or ``Closure``, same format as ``edges``, excluded from the
      candidates (filtered link prediction); ``None`` ranks against every other node.
    translation: optional ``[D]`` vector ``r``: distances become ``d(u + r, w)``, the
      translational baseline of N&K (Euclidean only; ``u`` is the child, ``w`` a candidate).

  Returns:
    ``{"mean_rank": float, "map": float, "num_queries": int, "num_pairs": int,
    "sampled": bool}``: ``num_queries`` nodes evaluated (those with at least one neighbour,
    or the sample) and ``num_pairs`` ``(u, v)`` pairs ranked.

  Raises:
    ValueError: bad shapes or ids, self-loops, no edges, a ``Closure`` of another
      ``num_nodes``, non-finite embeddings, or non-positive ``chunk_size`` / ``max_queries``.
  """
  x = jnp.asarray(embeddings)
  if x.ndim != 2:
    raise ValueError(f"embeddings must be [N, D], got shape {x.shape}.")
  if num_nodes is None:
    num_nodes = edges.num_nodes if isinstance(edges, Closure) else x.shape[0]
  num_nodes = int(num_nodes)
  if not 0 < num_nodes <= x.shape[0]:
    raise ValueError(f"num_nodes={num_nodes} must lie in [1, embeddings.shape[0]="
                     f"{x.shape[0]}].")
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f"chunk_size must be positive, got {chunk_size}.")
  if max_queries is not None and max_queries < 1:
    raise ValueError(f"max_queries must be positive, got {max_queries}.")
  x = x[:num_nodes]
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  if not bool(jnp.all(jnp.isfinite(x))):
    raise ValueError("embeddings hold NaN or inf in the first num_nodes rows; ranks would be "
                     "meaningless.")

  if translation is not None:
    translation = jnp.asarray(translation, x.dtype)
    if translation.shape != x.shape[1:]:
      raise ValueError(f"translation must have shape {x.shape[1:]}, got {translation.shape}.")
  closure = graphs.as_closure(edges, num_nodes)
  if closure.num_edges == 0:
    raise ValueError("edges is empty: no node has a neighbour to rank.")
  ranked = closure.neighbours(symmetric=symmetric)
  offsets, targets = ranked
  if known_edges is not None:
    known_offsets, known_targets = _filter_csr(graphs.as_closure(known_edges, num_nodes),
                                               ranked, symmetric=symmetric)
  queries = np.flatnonzero(np.diff(offsets) > 0)
  sampled = max_queries is not None and max_queries < queries.size
  if sampled:
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(queries, size=max_queries, replace=False))

  degree = np.diff(offsets)
  # Grouping queries of similar degree keeps each chunk's neighbour lists narrow (a symmetric
  # closure's root has N - 1 neighbours, a leaf a handful); the sums do not depend on order.
  queries = queries[np.argsort(degree[queries], kind="stable")]
  batch = min(chunk_size or max(1, _DEFAULT_CHUNK_ELEMENTS // num_nodes), queries.size)
  c = jnp.asarray(c, dtype=x.dtype)
  pending = collections.deque()
  totals = np.zeros(3, np.float64)  # rank sum, AP sum, pair count

  def collect(result):
    rank_sum, ap, num_pos = (np.asarray(r, np.float64) for r in result)
    totals[:] += rank_sum.sum(), ap.sum(), num_pos.sum()

  for start in range(0, queries.size, batch):
    rows = queries[start:start + batch]
    # Widths are powers of two (capped at N - 1), so a call compiles at most ~log2(N) variants,
    # each cached for later calls.
    width = min(max(_MIN_WIDTH, 1 << int(degree[rows].max() - 1).bit_length()),
                num_nodes - 1)
    padded = np.zeros(batch, np.int32)
    padded[:rows.size] = rows
    row_valid = np.arange(batch) < rows.size
    ids, valid = _padded_neighbours(rows, offsets, targets, batch, width)
    excluded = None
    if known_edges is not None:
      known_degree = known_offsets[rows + 1] - known_offsets[rows]
      known_width = max(_MIN_WIDTH, 1 << int(max(known_degree.max(), 1) - 1).bit_length())
      excluded, _ = _padded_neighbours(rows, known_offsets, known_targets, batch, known_width)
    pending.append(_chunk_stats(manifold, x, c, padded, ids, valid, row_valid, excluded,
                                translation))
    # Dispatch is asynchronous: the host prepares the next chunk while the device works.
    if len(pending) > _MAX_IN_FLIGHT:
      collect(pending.popleft())
  while pending:
    collect(pending.popleft())

  rank_sum, ap_sum, num_pairs = totals
  return {
      "mean_rank": float(rank_sum / num_pairs),
      "map": float(ap_sum / queries.size),
      "num_queries": int(queries.size),
      "num_pairs": int(num_pairs),
      "sampled": bool(sampled),
  }
