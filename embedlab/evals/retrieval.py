"""Retrieval metrics of labelled embeddings, in any geometry.

:func:`retrieval_metrics`: every query ranks the reference set by
``manifold.pairwise_dist`` and is scored by the labels of its nearest references:
Precision@1, Recall@K as used in metric learning (Song et al., "Deep Metric Learning via Lifted
Structured Feature Embedding", CVPR 2016), R-precision and MAP@R (Musgrave et al., "A Metric
Learning Reality Check", ECCV 2020). Queries are processed in jitted chunks of ``[B, N]``
distances, of which only the ``k`` nearest per row (``jax.lax.top_k``) are kept, so no ``Q x N``
matrix ever exists. Clustering metrics (k-means, NMI, AMI) are in :mod:`embedlab.evals
.clustering`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from embedlab.evals._inputs import as_labels, as_points
from embedlab.geometry import euclidean, row_dots, sphere
from embedlab.geometry.base import Manifold

# Elements of one [B, N] distance block: 4M (16 MiB in float32) keeps the blocks in flight
# small; 16M was slower and held ~4x the memory (benchmarks/pml_retrieval.py, 20k x 128).
_DEFAULT_CHUNK_ELEMENTS = 1 << 22
_MAX_CHUNK_WORKERS = 4


def _chunk_workers() -> int:
  """Threads dispatching chunks: one more than the usable cores, at most 4.

  One more, because a chunk's matmul runs on XLA's own thread pool while its ``top_k`` runs
  on the dispatching thread: with one worker per core the cores idle between the two
  (20k x 128 on 2 cores: 1.99 s with 2 workers, 1.82 s with 3, 1.90 s with 4).
  """
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    cores = os.cpu_count() or 1
  return max(1, min(_MAX_CHUNK_WORKERS, cores + 1))


DEFAULT_RECALL_KS = (1, 2, 4, 8)


def _euclidean_key(queries, reference):
  """``|x|^2 - 2 q.x``: the squared distance minus the row's constant ``|q|^2``."""
  return jnp.sum(reference * reference, axis=-1)[None, :] - 2.0 * row_dots(queries, reference)


def _sphere_key(queries, reference):
  """``-q.x``: the distance ``arccos(c q.x) / sqrt(c)`` decreases in ``q.x``."""
  return -row_dots(queries, reference)


# Geometries whose distance is an increasing function of a cheaper per-row key: ranking by
# the key gives the same neighbours without the square root / arccos over the [B, N] block.
# Other geometries rank by pairwise_dist itself.
_RANKING_KEYS = {euclidean.MANIFOLD: _euclidean_key, sphere.MANIFOLD: _sphere_key}


@functools.partial(jax.jit, static_argnames=("k", "ks", "exclude_self"))
def _chunk_stats(manifold: Manifold, reference, reference_labels, c, query_points, query_labels,
                 query_ids, num_relevant, row_valid, offset, *, k, ks, exclude_self):
  """Per-row P@1, Recall@ks, R-precision and AP@R of one chunk of queries.

  The reference is scanned starting at row ``offset`` (rows ``offset .. N-1, 0 .. offset-1``),
  which changes nothing but the order ``top_k`` meets the candidates in, and so which of
  exactly equal distances comes first: ``tied`` flags the rows where that order matters.

  Args:
    manifold: static pytree.
    reference: ``[N, D]`` points; ``reference_labels``: ``int32 [N]`` dense label ids.
    c: curvature (traced).
    query_points: ``[B, D]``; ``query_labels``: ``int32 [B]``.
    query_ids: ``int32 [B]`` row of each query in ``reference`` (used when ``exclude_self``).
    num_relevant: ``int32 [B]``, ``R`` of each query (``<= k``).
    row_valid: ``bool [B]``, false on padding rows and on queries with ``R == 0``.
    offset: ``int32`` scalar (traced), the first reference row scanned.
    k: neighbours kept per row (static); ``ks``: tuple of Recall@K cut-offs (static).
    exclude_self: whether column ``query_ids[b]`` is removed from row ``b``'s candidates.

  Returns:
    ``(p_at_1 [B], recall [B, len(ks)], r_precision [B], ap_at_r [B], tied [B])``, zero
    (false) on invalid rows; ``tied``: two of the ``k + 1`` nearest are at exactly the same
    distance (so the scan order may have decided which comes first).
  """
  n = reference.shape[0]
  reference = jnp.roll(reference, -offset, axis=0)
  reference_labels = jnp.roll(reference_labels, -offset)
  query_ids = jnp.mod(query_ids - offset, n)
  ranking_key = _RANKING_KEYS.get(manifold)
  d = (manifold.pairwise_dist(query_points, reference, c=c) if ranking_key is None
       else ranking_key(query_points, reference))
  # -0.0 -> 0.0 so equal values compare equal in top_k too (it orders by bits); NaN/inf ->
  # the largest finite value, so a candidate always ranks above an excluded query (+inf).
  d = jnp.where(d > 0, d, 0.0) if ranking_key is None else jnp.where(d == 0, 0.0, d)
  d = jnp.where(d < jnp.inf, d, jnp.finfo(d.dtype).max)
  if exclude_self:
    d = jnp.where(query_ids[:, None] == jnp.arange(n)[None, :], jnp.inf, d)
  # top_k returns the lower index first among equal values: ties go to the lower scanned row.
  # One neighbour more than needed: if the (k+1)-th equals the k-th, a tie straddles the cut.
  # The barrier keeps XLA from folding the slices below into the top_k's own slice: then
  # XLA:CPU no longer recognises it and lowers a full sort of the [B, N] block (~10x slower).
  neg_nearest_d, nearest = jax.lax.optimization_barrier(jax.lax.top_k(-d, min(k + 1, n)))
  tied = jnp.any(neg_nearest_d[:, 1:] == neg_nearest_d[:, :-1], axis=1)
  nearest = nearest[:, :k]
  relevant = reference_labels[nearest] == query_labels[:, None]  # [B, k]
  position = jnp.arange(1, k + 1)
  within_r = position[None, :] <= num_relevant[:, None]
  hits = jnp.cumsum(relevant, axis=1).astype(d.dtype)
  r = jnp.maximum(num_relevant, 1).astype(d.dtype)
  rel_r = relevant & within_r
  r_precision = jnp.sum(rel_r, axis=1).astype(d.dtype) / r
  ap_at_r = jnp.sum(jnp.where(rel_r, hits / position, 0.0), axis=1) / r
  p_at_1 = relevant[:, 0].astype(d.dtype)
  recall = jnp.stack([jnp.any(relevant[:, :kk], axis=1) for kk in ks], axis=1).astype(d.dtype)
  zero = jnp.zeros((), d.dtype)
  return (jnp.where(row_valid, p_at_1, zero), jnp.where(row_valid[:, None], recall, zero),
          jnp.where(row_valid, r_precision, zero), jnp.where(row_valid, ap_at_r, zero),
          row_valid & tied)


def retrieval_metrics(reference, reference_labels, *, queries=None, query_labels=None,
                      query_is_reference: bool | None = None, manifold: Manifold | None = None,
                      c=1.0, recall_ks=DEFAULT_RECALL_KS,
                      chunk_size: int | None = None) -> dict:
  """Precision@1, Recall@K, R-precision and MAP@R of labelled embeddings.

  For a query ``q`` with label ``y_q``, let ``n_1, n_2, ...`` be the references sorted by
  ``d(q, n) = manifold.pairwise_dist`` (ties broken by lower reference row), with ``q`` itself
  removed when the query set is the reference set; ``rel(i) = [label(n_i) == y_q]`` and
  ``R = #{references n != q with label y_q}``. Then::

    P@1(q)          = rel(1)
    Recall@K(q)     = [rel(i) = 1 for some i <= K]     (Song et al., CVPR 2016; not the IR recall)
    R-precision(q)  = (1/R) sum_{i <= R} rel(i)
    AP@R(q)         = (1/R) sum_{i <= R} rel(i) * (1/i) sum_{j <= i} rel(j)
                                                        (Musgrave et al., ECCV 2020, eq. 2)

  and each metric is the mean over queries. Queries with ``R == 0`` (their label has no other
  reference) are skipped for all metrics, as ``pytorch-metric-learning``'s AccuracyCalculator
  skips "lone" queries; ``num_skipped`` counts them.

  Cost: ``O(Q N D + Q N log k)`` in chunks of ``B`` queries, ``k = max(R_max, max(recall_ks))``;
  one jitted call per chunk keeps ``[B, N]`` distances and ``[B, k]`` neighbour ids. The last
  chunk is padded to ``B``, so a call compiles one shape, cached across calls. Queries run in
  label order and each chunk scans the references sorted by label, starting at its own label:
  the same-label neighbours then come first, which makes XLA:CPU's ``top_k`` ~1.5x faster on
  clustered embeddings. Rows where that order decided between exactly equal distances (float32
  ties; duplicated points) are recomputed in the given order, so the result is the same as a
  plain scan. The call holds one extra ``[N, D]`` copy of the reference, sorted.

  Args:
    reference: ``[N, D]`` points searched (the gallery). float16/bfloat16 are evaluated in
      float32; float64 is kept (with ``jax_enable_x64``).
    reference_labels: ``[N]`` labels (any values ``np.unique`` can sort).
    queries: ``[Q, D]`` query points; ``None`` means the reference set queries itself.
    query_labels: ``[Q]`` labels of ``queries``; required iff ``queries`` is given.
    query_is_reference: query ``i`` is reference row ``i`` and is removed from its own
      candidates (and from its ``R``); default ``queries is None``. With ``queries`` given it
      requires ``Q == N``.
    manifold: the geometry; default Euclidean.
    c: curvature passed to ``manifold.pairwise_dist`` (traced: a new value never retraces).
    recall_ks: the ``K`` of Recall@K, positive ints, each at most the number of candidates.
    chunk_size: queries per jitted call ``B``; default ``2**22 // N``, capped at ``Q``.

  Returns:
    ``{"precision_at_1", "recall_at_<K>" for each K, "r_precision", "map_at_r": float,
    "num_queries": int (queries scored), "num_skipped": int (queries with R == 0)}``.

  Raises:
    ValueError: bad shapes, label/embedding length mismatch, non-finite embeddings, a ``K``
      larger than the candidate set, non-positive ``chunk_size``, or no query with ``R > 0``.
  """
  manifold = euclidean.MANIFOLD if manifold is None else manifold
  ref = as_points("reference", reference)
  ref_labels = as_labels("reference_labels", reference_labels, ref.shape[0], "reference")
  if query_is_reference is None:
    query_is_reference = queries is None
  if queries is None:
    if query_labels is not None:
      raise ValueError("query_labels given without queries.")
    if not query_is_reference:
      raise ValueError("queries=None means the reference set queries itself: "
                       "query_is_reference must not be False.")
    qry, qry_labels = ref, ref_labels
  else:
    if query_labels is None:
      raise ValueError("queries given without query_labels.")
    qry = as_points("queries", queries)
    qry_labels = as_labels("query_labels", query_labels, qry.shape[0], "queries")
    if qry.shape[1] != ref.shape[1]:
      raise ValueError(f"queries have dimension {qry.shape[1]} but reference has "
                       f"{ref.shape[1]}.")
    if query_is_reference and qry.shape[0] != ref.shape[0]:
      raise ValueError(f"query_is_reference=True needs as many queries as references, got "
                       f"{qry.shape[0]} and {ref.shape[0]}.")
    qry = qry.astype(jnp.promote_types(qry.dtype, ref.dtype))
    ref = ref.astype(qry.dtype)
  ks = tuple(int(k) for k in np.atleast_1d(np.asarray(recall_ks)))
  if not ks or any(k != kk or k < 1 for k, kk in zip(ks, np.atleast_1d(recall_ks))):
    raise ValueError(f"recall_ks must be positive ints, got {recall_ks!r}.")
  num_candidates = ref.shape[0] - int(query_is_reference)
  if max(ks) > num_candidates:
    raise ValueError(f"recall@{max(ks)} needs at least {max(ks)} candidates per query, but "
                     f"there are {num_candidates} (references"
                     f"{' minus the query itself' if query_is_reference else ''}).")
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f"chunk_size must be positive, got {chunk_size}.")

  # Dense label ids shared by queries and references; R from the reference label counts.
  values, dense = np.unique(np.concatenate([ref_labels, qry_labels]), return_inverse=True)
  dense = dense.reshape(-1).astype(np.int32)
  ref_ids, qry_ids = dense[:ref.shape[0]], dense[ref.shape[0]:]
  counts = np.bincount(ref_ids, minlength=values.size)
  num_relevant = counts[qry_ids] - int(query_is_reference)
  scored = np.flatnonzero(num_relevant > 0)
  if scored.size == 0:
    raise ValueError("no query has a reference with its label (R == 0 for every query).")
  k = max(max(ks), int(num_relevant.max()))

  batch = min(chunk_size or max(1, _DEFAULT_CHUNK_ELEMENTS // ref.shape[0]), scored.size)
  c = jnp.asarray(c, dtype=ref.dtype)
  totals = np.zeros(3 + len(ks), np.float64)  # P@1, R-precision, AP@R, Recall@ks sums

  # XLA:CPU's top_k keeps a heap of the k best and pays ~100 ns for each candidate that enters
  # it; in random order ~k (1 + ln(N / k)) do, most of the time of a chunk. Scanning the
  # references sorted by label, from the block of the chunk's first query label, meets the
  # same-label neighbours first, so few later candidates enter (benchmarks/pml_retrieval.py).
  # Queries are taken in label order so a chunk holds one or a few labels.
  by_label = np.argsort(ref_ids, kind="stable")
  sorted_row = np.empty_like(by_label)
  sorted_row[by_label] = np.arange(by_label.size)
  sorted_ids = ref_ids[by_label]
  label_start = np.searchsorted(sorted_ids, np.arange(values.size)).astype(np.int32)
  scored = scored[np.argsort(qry_ids[scored], kind="stable")]
  layouts = {  # name -> (reference, its label ids, row of query i in it or None)
      "label_sorted": (ref[by_label], jnp.asarray(sorted_ids), sorted_row),
      "given": (ref, jnp.asarray(ref_ids), None),
  }
  x64 = bool(jax.config.jax_enable_x64)

  def run_chunk(layout, rows, offset):
    reference, reference_ids, row_of = layouts[layout]
    padded = np.zeros(batch, np.int32)
    padded[:rows.size] = rows
    row_valid = np.arange(batch) < rows.size
    # Query i is reference row i only when the query set is the reference set.
    self_rows = row_of[padded].astype(np.int32) if query_is_reference and row_of is not None \
        else padded
    result = _chunk_stats(
        manifold, reference, reference_ids, c, qry[padded], qry_ids[padded], self_rows,
        num_relevant[padded].astype(np.int32), row_valid, np.int32(offset), k=k, ks=ks,
        exclude_self=bool(query_is_reference))
    return tuple(np.asarray(r) for r in result)

  def chunk(layout, rows):
    """Sums of the chunk's per-row stats, and the rows left out of them to redo."""
    # jax.enable_x64 is a thread-local context: carry the caller's setting into the workers.
    with jax.enable_x64(x64):
      offset = label_start[qry_ids[rows[0]]] if layout == "label_sorted" else 0
      p1, recall, rprec, ap, tied = run_chunk(layout, rows, offset)
      # The given order is the documented tie order itself: nothing to redo there.
      redo = tied[:rows.size] if layout == "label_sorted" else np.zeros(rows.size, bool)
      keep = ~redo
      sums = [p1[:rows.size][keep].sum(), rprec[:rows.size][keep].sum(),
              ap[:rows.size][keep].sum(), *recall[:rows.size][keep].sum(axis=0)]
      return np.asarray(sums, np.float64), rows[redo]

  def accumulate(layout, rows):
    # XLA:CPU runs top_k single-threaded; chunks dispatched from several threads execute
    # concurrently (benchmarks/pml_retrieval.py: 3.37 s -> 2.44 s on 2 cores). map() keeps
    # the order, so the sums do not depend on thread timing; at most `workers` [B, N] blocks
    # are live at once.
    chunks = [rows[i:i + batch] for i in range(0, rows.size, batch)]
    # The first chunk runs alone, so the kernel is compiled before the workers start (it did
    # not measurably change the first call's peak memory; benchmarks/README.md).
    sums, tied_rows = chunk(layout, chunks[0])
    totals[:] += sums
    redo = [tied_rows]
    with concurrent.futures.ThreadPoolExecutor(max_workers=_chunk_workers()) as pool:
      for sums, tied_rows in pool.map(functools.partial(chunk, layout), chunks[1:]):
        totals[:] += sums
        redo.append(tied_rows)
    return np.concatenate(redo)

  # Rows whose result depends on the order of exactly equal distances (in float32 ~1% of rows
  # on 20k x 128 Gaussian clusters) are redone in the given order, which breaks those ties by
  # the lower reference row, as documented.
  redo = accumulate("label_sorted", scored)
  if redo.size:
    accumulate("given", redo)

  totals /= scored.size
  result = {"precision_at_1": float(totals[0])}
  result.update({f"recall_at_{kk}": float(v) for kk, v in zip(ks, totals[3:])})
  result.update({
      "r_precision": float(totals[1]),
      "map_at_r": float(totals[2]),
      "num_queries": int(scored.size),
      "num_skipped": int(qry_labels.shape[0] - scored.size),
  })
  return result
