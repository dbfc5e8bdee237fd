"""Distortion and graph MAP of an embedding of a graph (Sala, De Sa, Gu & Ré, ICML 2018).

Sala et al., "Representation Tradeoffs for Hyperbolic Embeddings", section 2, measure how well
embedded distances ``d_E(u, v)`` reproduce graph distances ``d_G(u, v)`` (shortest-path hop
counts) over the pairs ``u != v`` of one connected component::

  average distortion  D_avg = mean_{u != v} |d_E(u, v) / s - d_G(u, v)| / d_G(u, v)
  worst-case          D_wc  = max_{u != v} (d_E / d_G)  *  max_{u != v} (d_G / d_E)
  MAP = mean_u  1/deg(u)  sum_{v in N(u)}  |N(u) ∩ R(u, v)| / |R(u, v)|

where ``s`` is the embedding's scale (the combinatorial construction's ``tau``, h-MDS's
``scale``: both multiply every distance by it; ``D_wc`` does not depend on it), ``N(u)`` are
the graph neighbours of ``u`` and ``R(u, v)`` is the smallest set of nodes ``w != u`` nearest to
``u`` in the embedding that contains ``v``: every ``w`` with ``d_E(u, w) <= d_E(u, v)`` (tied
nodes all count). Pairs in different components (``d_G = inf``) are left out of the
distortions; nodes without neighbours are left out of MAP.

Embedded distances come in as a full ``[N, N]`` matrix, or as a function of a batch of source
nodes returning their ``[B, N]`` rows (so a high-precision embedding can evaluate its own
distances, see :mod:`embedlab.models.combinatorial`); :func:`poincare_distance_rows` builds one
from Poincaré-ball coordinates. For large graphs :func:`distortion_metrics` evaluates the rows
of a uniform sample of ``max_sources`` source nodes; graph distances come from one
breadth-first search per source, so no ``N x N`` array is ever built.

Everything here is float64 NumPy, on purpose: embeddings of deep trees live far from the
origin, where float32 cannot tell points apart (see :mod:`embedlab.geometry.poincare`), and
float64 in JAX needs the process-wide ``jax_enable_x64`` flag. The work is chunked over
source rows and vectorised within a chunk.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import tqdm

from embedlab import graphs

# Elements of one [B, N] block of rows: 4M float64 (32 MB) keeps the temporaries small.
_DEFAULT_CHUNK_ELEMENTS = 1 << 22

RowFunction = Callable[[np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------------------------
# Graph side: adjacency and breadth-first search.


def _adjacency(edges, num_nodes: int) -> graphs.Csr:
  """CSR of the undirected graph, neighbours sorted and deduplicated."""
  edges = np.asarray(edges)
  if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
    raise ValueError(f"edges must be an int array [E, 2], got {edges.dtype} {edges.shape}.")
  edges = edges.astype(np.int64)
  if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
    raise ValueError(f"edge ids must lie in [0, num_nodes={num_nodes}), got "
                     f"[{edges.min()}, {edges.max()}].")
  edges = edges[edges[:, 0] != edges[:, 1]]  # A self-loop is never a shortest path.
  return graphs.csr(graphs.symmetrize(edges, num_nodes), num_nodes)


def _bfs_rows(offsets, targets, sources: np.ndarray) -> np.ndarray:
  """``int32 [B, N]`` hop counts from each source, ``-1`` where unreachable.

  All sources advance one level per iteration; a level expands every (row, node) pair of the
  frontier through the CSR at once, so the cost is ``O(B (N + E))`` in vectorised steps.
  """
  num_nodes = offsets.size - 1
  dist = np.full((sources.size, num_nodes), -1, np.int32)
  # Scratch for deduplicating the next frontier: each new (row, node) pair writes its index
  # and keeps itself only if it reads it back (one winner per pair, no sort or hash).
  claim = np.empty((sources.size, num_nodes), np.int64)
  rows = np.arange(sources.size)
  dist[rows, sources] = 0
  nodes = sources.astype(np.int64)
  level = 0
  while nodes.size:
    level += 1
    counts = offsets[nodes + 1] - offsets[nodes]
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    reached = targets[np.repeat(offsets[nodes], counts) + within]
    rows = np.repeat(rows, counts)
    fresh = dist[rows, reached] < 0
    rows, reached = rows[fresh], reached[fresh]
    index = np.arange(rows.size)
    claim[rows, reached] = index
    first = claim[rows, reached] == index
    rows, nodes = rows[first], reached[first]
    dist[rows, nodes] = level
  return dist


def graph_distances(edges, *, num_nodes: int, sources=None) -> np.ndarray:
  """Shortest-path hop counts of an undirected graph, by breadth-first search.

  Args:
    edges: ``int [E, 2]`` undirected edges, ids in ``[0, num_nodes)``; duplicates, either
      orientation and self-loops are fine.
    num_nodes: ``N``.
    sources: ``int [S]`` source nodes; ``None`` means all nodes (an ``[N, N]`` matrix).

  Returns:
    ``int32 [S, N]``: ``d_G(sources[i], v)``, ``-1`` where ``v`` is unreachable.
  """
  offsets, targets = _adjacency(edges, num_nodes)
  sources = np.arange(num_nodes) if sources is None else _check_sources(sources, num_nodes)
  return _bfs_rows(offsets, targets, sources)


def _check_sources(sources, num_nodes: int) -> np.ndarray:
  sources = np.asarray(sources, np.int64).reshape(-1)
  if sources.size and (sources.min() < 0 or sources.max() >= num_nodes):
    raise ValueError(f"sources must lie in [0, {num_nodes}), got [{sources.min()}, "
                     f"{sources.max()}].")
  return sources


# ----------------------------------------------------------------------------------------------
# The metrics on blocks of rows. Each returns sums, so chunks add up exactly.


class _Sums(NamedTuple):
  """Distortion sums over the valid pairs of a block; ``kept`` ones leave out collapsed pairs."""
  total: float = 0.0           # sum of |d_E / s - d_G| / d_G
  count: int = 0
  kept_total: float = 0.0
  kept_count: int = 0
  expansion: float = 0.0       # max d_E / d_G (collapsed pairs never attain it)
  contraction: float = 0.0     # max d_G / d_E
  kept_contraction: float = 0.0

  def __add__(self, other):
    return _Sums(self.total + other.total, self.count + other.count,
                 self.kept_total + other.kept_total, self.kept_count + other.kept_count,
                 max(self.expansion, other.expansion), max(self.contraction, other.contraction),
                 max(self.kept_contraction, other.kept_contraction))


def _distortion_sums(embedded, graph, scale: float, collapse_tol: float = 0.0) -> _Sums:
  """The sums of every valid pair (``0 < d_G < inf``), and of those not collapsed.

  A pair is *collapsed* when ``d_E < collapse_tol * s * d_G``: the embedding put two distinct
  nodes on (numerically) one point.
  """
  embedded = np.asarray(embedded, np.float64)
  graph = np.asarray(graph, np.float64)
  if embedded.shape != graph.shape:
    raise ValueError(f"embedded and graph distances differ in shape: {embedded.shape} vs "
                     f"{graph.shape}.")
  valid = (graph > 0) & np.isfinite(graph)
  e, g = embedded[valid], graph[valid]
  if not g.size:
    return _Sums()
  e = np.where(np.isnan(e), np.inf, e)  # An undefined distance is as bad as it gets.
  with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
    relative = np.abs(e / scale - g) / g
    ratio = e / g
  kept = ~(e < collapse_tol * scale * g)

  def contraction(r):  # A zero d_E between distinct nodes contracts without bound: inf.
    return float(np.max(1.0 / r)) if r.size else 0.0

  with np.errstate(divide="ignore"):
    return _Sums(float(np.sum(relative)), int(g.size), float(np.sum(relative[kept])),
                 int(np.sum(kept)), float(np.max(ratio)), contraction(ratio),
                 contraction(ratio[kept]))


def average_distortion(embedded, graph, *, scale: float = 1.0) -> float:
  """``mean |d_E / scale - d_G| / d_G`` over the pairs with ``0 < d_G < inf``.

  Args:
    embedded: ``[...]`` embedded distances ``d_E``.
    graph: ``[...]`` graph distances ``d_G``, same shape; entries ``<= 0`` (a node and itself,
      or ``-1`` from :func:`graph_distances` for unreachable pairs) and non-finite entries are
      skipped.
    scale: ``s``; the embedding's distances are ``s`` times the graph's at best.

  Returns:
    The average distortion (0 is perfect); NaN when no pair is valid.
  """
  sums = _distortion_sums(embedded, graph, scale)
  return sums.total / sums.count if sums.count else float("nan")


def worst_case_distortion(embedded, graph) -> float:
  """``max(d_E / d_G) * max(d_G / d_E)`` over the pairs with ``0 < d_G < inf``.

  Invariant to scaling the embedding; 1 is perfect; ``inf`` when two distinct nodes land on
  the same point (or a distance is NaN).
  """
  sums = _distortion_sums(embedded, graph, 1.0)
  return sums.expansion * sums.contraction if sums.count else float("nan")


def _average_precisions(rows, sources, offsets, targets) -> np.ndarray:
  """``float64 [B]`` AP of each source whose row is given; NaN for nodes without neighbours."""
  rows = np.where(np.isnan(rows), np.inf, np.asarray(rows, np.float64))  # NaN ranks last.
  ordered = np.sort(rows, axis=1)
  ap = np.full(sources.size, np.nan)
  for i, u in enumerate(sources):
    neighbours = targets[offsets[u]:offsets[u + 1]]
    if not neighbours.size:
      continue
    d = rows[i, neighbours]
    # |R(u, v)|: nodes w != u with d(u, w) <= d(u, v); u itself is in the sorted row.
    ball = np.searchsorted(ordered[i], d, side="right") - (rows[i, u] <= d)
    hits = np.searchsorted(np.sort(d), d, side="right")  # |N(u) ∩ R(u, v)|
    ap[i] = np.mean(hits / np.maximum(ball, 1))
  return ap


def mean_average_precision(distances, edges, *, sources=None) -> float:
  """Sala et al.'s graph MAP: each node's graph neighbours ranked by embedded distance.

  Args:
    distances: ``[S, N]`` embedded distances from each of ``sources`` to every node.
    edges: ``int [E, 2]`` undirected graph edges, ids in ``[0, N)``.
    sources: ``int [S]`` the nodes whose rows are given; ``None`` means ``arange(N)``.

  Returns:
    The mean over sources with at least one neighbour of their average precision (1 is
    perfect); NaN if no source has a neighbour.
  """
  distances = np.asarray(distances, np.float64)
  if distances.ndim != 2:
    raise ValueError(f"distances must be [S, N], got shape {distances.shape}.")
  num_nodes = distances.shape[1]
  sources = np.arange(num_nodes) if sources is None else _check_sources(sources, num_nodes)
  if sources.size != distances.shape[0]:
    raise ValueError(f"{sources.size} sources but {distances.shape[0]} rows of distances.")
  offsets, targets = _adjacency(edges, num_nodes)
  ap = _average_precisions(distances, sources, offsets, targets)
  return float(np.nanmean(ap)) if np.any(~np.isnan(ap)) else float("nan")


# ----------------------------------------------------------------------------------------------
# Embedded distances as row functions, and the chunked driver.


def poincare_distance_rows(points, *, c: float = 1.0) -> RowFunction:
  """A row function for Poincaré-ball coordinates ``[N, d]`` (curvature ``-c``), in float64.

  ``d(x, y) = arcosh(1 + 2 c |x - y|^2 / ((1 - c|x|^2)(1 - c|y|^2))) / sqrt(c)``, with
  ``|x - y|^2`` from the differences (not a matmul, which cancels digits for nearby points)
  and ``arcosh(1 + z) = log1p(z + sqrt(z (z + 2)))``, exact for small ``z``. Points on or past
  the boundary (``c|x|^2 >= 1``) give ``inf`` distances.
  """
  x = np.asarray(points, np.float64)
  if x.ndim != 2:
    raise ValueError(f"points must be [N, d], got shape {x.shape}.")
  with np.errstate(divide="ignore"):
    inv_gap = 1.0 / np.maximum(1.0 - c * np.sum(x * x, axis=1), 0.0)  # inf on the boundary

  def rows(sources):
    sources = _check_sources(sources, x.shape[0])
    diff = x[sources, None, :] - x[None, :, :]
    with np.errstate(invalid="ignore", over="ignore"):
      z = 2.0 * c * np.sum(diff * diff, axis=-1) * inv_gap[sources, None] * inv_gap[None, :]
      z = np.where(np.isnan(z), np.inf, z)  # 0 * inf for a boundary point and itself
      z[np.arange(sources.size), sources] = 0.0
      return np.log1p(z + np.sqrt(z * (z + 2.0))) / np.sqrt(c)

  return rows


def _row_function(distances, num_nodes: int) -> RowFunction:
  if callable(distances):
    return distances
  matrix = np.asarray(distances)
  if matrix.shape != (num_nodes, num_nodes):
    raise ValueError(f"a distance matrix must be [N, N] = [{num_nodes}, {num_nodes}], got "
                     f"{matrix.shape}.")
  return lambda sources: matrix[sources]


def distortion_metrics(distances, edges, *, num_nodes: int, scale: float = 1.0,
                       max_sources: int | None = None, seed: int = 0,
                       collapse_tol: float = 1e-6, chunk_size: int | None = None,
                       progress: bool = False) -> dict:
  """Average and worst-case distortion and MAP of an embedding of a graph (Sala et al. 2018).

  For each source node ``u`` (all nodes, or a uniform sample of ``max_sources`` of them drawn
  without replacement by ``numpy.random.default_rng(seed)``), the graph distances ``d_G(u, .)``
  come from a breadth-first search and the embedded ones ``d_E(u, .)`` from ``distances``;
  the distortions average over all pairs ``(u, v)``, ``v != u`` in ``u``'s component (with all
  sources every unordered pair counts twice, which leaves the mean unchanged), MAP over the
  sources with a neighbour. See the module docstring for the formulas.

  Collapsed pairs: a low-rank embedding (h-MDS) can put distinct nodes on one point
  (``d_E < collapse_tol * scale * d_G``). They count in ``average_distortion`` (each about 1)
  and make ``worst_case_distortion`` infinite; Sala et al.'s h-MDS script reports them apart
  (as "bad" pairs) and averages over the rest, which the ``*_uncollapsed`` entries give.

  Cost: ``O(S (N + E))`` for the searches plus ``S`` rows of embedded distances and an
  ``O(N log N)`` sort per row, in chunks of ``B`` rows (never an ``N x N`` array unless the
  caller passed one).

  Args:
    distances: the ``[N, N]`` embedded distance matrix, or a function mapping ``int64 [B]``
      source ids to their ``float [B, N]`` rows (e.g. :func:`poincare_distance_rows`).
    edges: ``int [E, 2]`` undirected graph edges, ids in ``[0, num_nodes)``.
    num_nodes: ``N``.
    scale: ``s``, dividing ``d_E`` in the average distortion (``tau`` of the combinatorial
      construction, ``scale`` of h-MDS).
    max_sources: evaluate a sample of this many source nodes; ``None`` (or ``>= N``) uses all.
    seed: seed of the sample.
    collapse_tol: relative threshold for collapsed pairs (see above).
    chunk_size: source rows per block ``B``; default ``2**22 // N``.
    progress: show a progress bar over the blocks.

  Returns:
    ``{"average_distortion", "worst_case_distortion", "map", "collapsed_pairs",
    "average_distortion_uncollapsed", "worst_case_distortion_uncollapsed", "num_sources",
    "num_pairs", "num_map_nodes", "sampled"}``: ``num_sources`` rows evaluated,
    ``num_pairs`` ordered pairs in the distortions (``collapsed_pairs`` of them collapsed),
    ``num_map_nodes`` sources in the MAP.
  """
  if num_nodes < 2:
    raise ValueError(f"need at least two nodes, got num_nodes={num_nodes}.")
  if max_sources is not None and max_sources < 1:
    raise ValueError(f"max_sources must be positive, got {max_sources}.")
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f"chunk_size must be positive, got {chunk_size}.")
  rows_of = _row_function(distances, num_nodes)
  offsets, targets = _adjacency(edges, num_nodes)
  sources = np.arange(num_nodes)
  sampled = max_sources is not None and max_sources < num_nodes
  if sampled:
    sources = np.sort(np.random.default_rng(seed).choice(num_nodes, max_sources, replace=False))
  batch = min(chunk_size or max(1, _DEFAULT_CHUNK_ELEMENTS // num_nodes), sources.size)

  sums = _Sums()
  aps = []
  for start in tqdm.trange(0, sources.size, batch, disable=not progress, unit="block",
                           dynamic_ncols=True, desc="distortion/MAP"):
    chunk = sources[start:start + batch]
    embedded = np.asarray(rows_of(chunk), np.float64)
    if embedded.shape != (chunk.size, num_nodes):
      raise ValueError(f"the distance rows of {chunk.size} sources have shape "
                       f"{embedded.shape}; expected ({chunk.size}, {num_nodes}).")
    sums += _distortion_sums(embedded, _bfs_rows(offsets, targets, chunk), scale, collapse_tol)
    aps.append(_average_precisions(embedded, chunk, offsets, targets))
  aps = np.concatenate(aps)
  aps = aps[~np.isnan(aps)]
  nan = float("nan")
  return {
      "average_distortion": sums.total / sums.count if sums.count else nan,
      "worst_case_distortion": sums.expansion * sums.contraction if sums.count else nan,
      "map": float(np.mean(aps)) if aps.size else nan,
      "collapsed_pairs": sums.count - sums.kept_count,
      "average_distortion_uncollapsed": (sums.kept_total / sums.kept_count
                                         if sums.kept_count else nan),
      "worst_case_distortion_uncollapsed": (sums.expansion * sums.kept_contraction
                                            if sums.kept_count else nan),
      "num_sources": int(sources.size),
      "num_pairs": int(sums.count),
      "num_map_nodes": int(aps.size),
      "sampled": bool(sampled),
  }
