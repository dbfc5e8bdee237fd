"""Retrieval and clustering metrics of labelled embeddings, in any geometry.

Retrieval (:func:`retrieval_metrics`): every query ranks the reference set by
``manifold.pairwise_dist`` and is scored by the labels of its nearest references:
Precision@1, Recall@K as used in metric learning (Song et al., "Deep Metric Learning via Lifted
Structured Feature Embedding", CVPR 2016), R-precision and MAP@R (Musgrave et al., "A Metric
Learning Reality Check", ECCV 2020). Queries are processed in jitted chunks of ``[B, N]``
distances, of which only the ``k`` nearest per row (``jax.lax.top_k``) are kept, so no ``Q x N``
matrix ever exists.

Clustering (:func:`clustering_metrics`): k-means (k-means++ seeding, Lloyd iterations, in JAX)
on the embedding coordinates, scored against the labels with NMI and AMI computed in NumPy from
the contingency table (Vinh, Epps & Bailey, "Information Theoretic Measures for Clusterings
Comparison", JMLR 2010; arithmetic-mean normalisation, scikit-learn's default).
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

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


# ----------------------------------------------------------------------------------------------
# Retrieval.


def _as_points(name, x):
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must be [N, D], got shape {x.shape}.")
  if x.shape[0] == 0:
    raise ValueError(f"{name} is empty.")
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  if not bool(jnp.all(jnp.isfinite(x))):
    raise ValueError(f"{name} hold NaN or inf; neighbours would be meaningless.")
  return x


def _as_labels(name, labels, n, points_name):
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"{name} must be 1-D, got shape {labels.shape}.")
  if labels.shape[0] != n:
    raise ValueError(f"{name} has {labels.shape[0]} entries but {points_name} has {n} rows.")
  return labels


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
  ref = _as_points("reference", reference)
  ref_labels = _as_labels("reference_labels", reference_labels, ref.shape[0], "reference")
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
    qry = _as_points("queries", queries)
    qry_labels = _as_labels("query_labels", query_labels, qry.shape[0], "queries")
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


# ----------------------------------------------------------------------------------------------
# k-means.


def _sq_dist(x, centers):
  return jnp.maximum(jnp.sum(x * x, axis=1)[:, None] - 2.0 * x @ centers.T
                     + jnp.sum(centers * centers, axis=1)[None, :], 0.0)


@functools.partial(jax.jit, static_argnames=("num_clusters", "max_iters"))
def _kmeans(x, key, *, num_clusters, max_iters):
  n, dim = x.shape
  key, first_key = jax.random.split(key)
  first = x[jax.random.randint(first_key, (), 0, n)]
  centers = jnp.zeros((num_clusters, dim), x.dtype).at[0].set(first)
  min_sq = _sq_dist(x, first[None])[:, 0]

  def seed_one(i, state):
    centers, min_sq, key = state
    key, sub = jax.random.split(key)
    # D^2 sampling; if every point already coincides with a centre, sample uniformly.
    logits = jnp.where(jnp.sum(min_sq) > 0, jnp.log(min_sq), jnp.zeros_like(min_sq))
    new = x[jax.random.categorical(sub, logits)]
    return centers.at[i].set(new), jnp.minimum(min_sq, _sq_dist(x, new[None])[:, 0]), key

  centers, _, _ = jax.lax.fori_loop(1, num_clusters, seed_one, (centers, min_sq, key))

  def assign(centers):
    return jnp.argmin(_sq_dist(x, centers), axis=1).astype(jnp.int32)

  def update(centers, assignment):
    sums = jax.ops.segment_sum(x, assignment, num_segments=num_clusters)
    counts = jax.ops.segment_sum(jnp.ones((n,), x.dtype), assignment,
                                 num_segments=num_clusters)
    # An empty cluster keeps its previous centre.
    return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centers)

  def cond(state):
    _, _, changed, it = state
    return changed & (it < max_iters)

  def body(state):
    centers, assignment, _, it = state
    centers = update(centers, assignment)
    new_assignment = assign(centers)
    return centers, new_assignment, jnp.any(new_assignment != assignment), it + 1

  assignment = assign(centers)
  centers, assignment, _, iters = jax.lax.while_loop(
      cond, body, (centers, assignment, jnp.array(True), jnp.array(0, jnp.int32)))
  return centers, assignment, iters


def kmeans(x, *, num_clusters: int, seed: int = 0, max_iters: int = 300):
  """Euclidean k-means: k-means++ seeding (Arthur & Vassilvitskii, SODA 2007), Lloyd steps.

  One run (no restarts) of plain D^2 seeding, then Lloyd iterations until no assignment changes
  or ``max_iters``; an empty cluster keeps its previous centre. Distances are those of the
  ambient coordinates (``[N, K]`` squared distances held at once).

  Args:
    x: ``[N, D]`` points.
    num_clusters: ``K``, ``1 <= K <= N``.
    seed: seed of the ``jax.random`` key used by the seeding.
    max_iters: most Lloyd iterations.

  Returns:
    ``(centers [K, D], assignment int32 [N], num_iters int)``.
  """
  x = _as_points("x", x)
  if not 1 <= num_clusters <= x.shape[0]:
    raise ValueError(f"num_clusters={num_clusters} must lie in [1, N={x.shape[0]}].")
  if max_iters < 1:
    raise ValueError(f"max_iters must be positive, got {max_iters}.")
  centers, assignment, iters = _kmeans(x, jax.random.key(seed), num_clusters=int(num_clusters),
                                       max_iters=int(max_iters))
  return centers, assignment, int(iters)


# ----------------------------------------------------------------------------------------------
# NMI / AMI (NumPy, from the contingency table).


def _contingency(labels_true, labels_pred):
  labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
  if labels_true.ndim != 1 or labels_pred.ndim != 1:
    raise ValueError(f"labels must be 1-D, got shapes {labels_true.shape} and "
                     f"{labels_pred.shape}.")
  if labels_true.shape != labels_pred.shape:
    raise ValueError(f"labels_true has {labels_true.size} entries but labels_pred has "
                     f"{labels_pred.size}.")
  if labels_true.size == 0:
    raise ValueError("labels are empty.")
  _, rows = np.unique(labels_true, return_inverse=True)
  _, cols = np.unique(labels_pred, return_inverse=True)
  table = np.zeros((rows.max() + 1, cols.max() + 1), np.int64)
  np.add.at(table, (rows.reshape(-1), cols.reshape(-1)), 1)
  return table, labels_true.size


def _entropy(counts, n):
  p = counts[counts > 0] / n
  return float(-np.sum(p * np.log(p)))


def _mutual_info(table, n):
  """``(MI(U, V), (H(U) + H(V)) / 2)`` of a contingency table, natural logs."""
  a, b = table.sum(axis=1), table.sum(axis=0)
  i, j = np.nonzero(table)
  nij = table[i, j].astype(np.float64)
  mi = float(np.sum(nij / n * (np.log(nij) + math.log(n) - np.log(a[i]) - np.log(b[j]))))
  return mi, (_entropy(a, n) + _entropy(b, n)) / 2


def _expected_mutual_info(table, n):
  """E[MI] under the hypergeometric model of random labellings with these marginals.

  ``sum_{i,j} sum_{m} (m/N) log(N m / (a_i b_j)) P(m; a_i, b_j, N)``, ``m`` from
  ``max(1, a_i + b_j - N)`` to ``min(a_i, b_j)`` (Vinh et al., JMLR 2010, eq. 24a).
  """
  a, b = table.sum(axis=1), table.sum(axis=0)
  log_fact = np.array([math.lgamma(v + 1) for v in range(n + 1)])
  emi = 0.0
  for ai in a:
    m = np.arange(1, min(ai, b.max()) + 1)[None, :]  # [1, M]
    bb = b[:, None]  # [C, 1]
    valid = (m >= np.maximum(1, ai + bb - n)) & (m <= np.minimum(ai, bb))
    mm = np.where(valid, m, 1)
    log_p = (log_fact[ai] + log_fact[bb] + log_fact[n - ai] + log_fact[n - bb] - log_fact[n]
             - log_fact[mm] - log_fact[np.maximum(ai - mm, 0)]
             - log_fact[np.maximum(bb - mm, 0)] - log_fact[np.maximum(n - ai - bb + mm, 0)])
    term = mm / n * (np.log(mm) + math.log(n) - math.log(ai) - np.log(bb)) * np.exp(log_p)
    emi += float(np.sum(np.where(valid, term, 0.0)))
  return emi


def normalized_mutual_info(labels_true, labels_pred) -> float:
  """NMI with arithmetic-mean normalisation: ``MI(U, V) / ((H(U) + H(V)) / 2)``.

  Natural logs. Two labellings with a single cluster each score 1.0; otherwise ``MI == 0``
  scores 0.0 (scikit-learn's conventions).

  Args:
    labels_true: ``[N]`` class labels (any values ``np.unique`` can sort).
    labels_pred: ``[N]`` cluster labels.

  Returns:
    NMI in ``[0, 1]``.
  """
  table, n = _contingency(labels_true, labels_pred)
  if table.shape == (1, 1):
    return 1.0
  mi, mean_entropy = _mutual_info(table, n)
  return 0.0 if mi == 0 else float(mi / mean_entropy)


def adjusted_mutual_info(labels_true, labels_pred) -> float:
  """AMI: ``(MI - E[MI]) / ((H(U) + H(V)) / 2 - E[MI])`` (Vinh et al., JMLR 2010).

  Arithmetic-mean normalisation; ``E[MI]`` under the hypergeometric (permutation) model. Two
  single-cluster labellings score 1.0; a zero denominator is replaced by ``+-eps`` as in
  scikit-learn. Cost ``O(R C M)`` for ``R`` classes, ``C`` clusters and ``M`` the largest class.

  Args:
    labels_true: ``[N]`` class labels (any values ``np.unique`` can sort).
    labels_pred: ``[N]`` cluster labels.

  Returns:
    AMI: 1 for identical clusterings, about 0 in expectation for independent ones, can be
    negative.
  """
  table, n = _contingency(labels_true, labels_pred)
  if table.shape == (1, 1):
    return 1.0
  mi, mean_entropy = _mutual_info(table, n)
  emi = _expected_mutual_info(table, n)
  denominator = mean_entropy - emi
  eps = np.finfo(np.float64).eps
  denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
  return float((mi - emi) / denominator)


def clustering_metrics(embeddings, labels, *, num_clusters: int | None = None, seed: int = 0,
                       max_iters: int = 300) -> dict:
  """NMI and AMI of k-means clusters of ``embeddings`` against ``labels``.

  The usual metric-learning protocol (e.g. Song et al., CVPR 2016): k-means with as many
  clusters as classes, then NMI of the clustering. k-means runs on the ambient coordinates
  (see :func:`kmeans`); for hyperbolic embeddings map them first (e.g. ``logmap0``) if the
  Euclidean geometry of the chart is not what should be clustered.

  Args:
    embeddings: ``[N, D]`` points.
    labels: ``[N]`` class labels.
    num_clusters: ``K``; default the number of distinct labels.
    seed: k-means++ seed.
    max_iters: most Lloyd iterations.

  Returns:
    ``{"nmi": float, "ami": float, "num_clusters": int, "kmeans_iters": int}``.
  """
  x = _as_points("embeddings", embeddings)
  labels = _as_labels("labels", labels, x.shape[0], "embeddings")
  k = int(np.unique(labels).size) if num_clusters is None else int(num_clusters)
  _, assignment, iters = kmeans(x, num_clusters=k, seed=seed, max_iters=max_iters)
  assignment = np.asarray(assignment)
  return {"nmi": normalized_mutual_info(labels, assignment),
          "ami": adjusted_mutual_info(labels, assignment),
          "num_clusters": k, "kmeans_iters": iters}
