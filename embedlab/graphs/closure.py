"""Transitive closures of hierarchies and their derived structure, computed once and cached.

A closure is a set of rows ``(child, ancestor)``: ``v`` is a proper ancestor of ``u`` (Nickel &
Kiela, "Poincaré Embeddings for Learning Hierarchical Representations", NeurIPS 2017, embed the
transitive closure of WordNet's hypernym relation). :class:`Closure` holds the rows as
``int32 [E, 2]``, sorted and deduplicated, and derives from them, on first use:

=====================  ===========================================================
``ancestors``          :class:`Csr` of each node's proper ancestors
``descendants``        :class:`Csr` of the reverse relation
``num_ancestors``      ``int64 [N]``, the depth by count
``direct_edge_mask``   ``bool [E]``: the rows of the transitive reduction
``parents``            :class:`Csr` of each node's direct parents
``deepest_parent``     ``int64 [N]``: the direct parent with the most ancestors
``leaves``             ``int32 [L]``: nodes that are nobody's ancestor
``ancestor_matrix``    ``int32 [N, W]``: ancestors as a padded table
``neighbours``         :class:`Csr` of ancestors, or ancestors and descendants
=====================  ===========================================================

Every derived array is read-only and cached on the instance, so each is built once per
closure however many parts of a run ask for it (the WordNet nouns: 82,115 nodes, 743,241
rows, take about a second for all of them). Only :meth:`Closure.check_closed` verifies that
the rows are transitively closed and acyclic; the structures assume it (on other input they
are computed from the rows as given).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import NamedTuple

import numpy as np

# Two-step pairs (u, ancestor of an ancestor of u) enumerated per block: about 7M for the
# WordNet nouns, so blocks keep the temporaries at tens of MB.
_PAIRS_PER_BLOCK = 1 << 21


class CycleError(ValueError):
  """Links that contain a cycle, so they have no transitive closure.

  Attributes:
    cycle: node ids ``(a, b, ..., z)`` on the cycle, each one a child of the next and ``z`` a
      child of ``a``.
  """

  def __init__(self, message: str, cycle: tuple[int, ...]):
    super().__init__(message)
    self.cycle = cycle


class Csr(NamedTuple):
  """Compressed sparse rows: row ``i`` is ``targets[offsets[i]:offsets[i + 1]]``, ascending.

  Attributes:
    offsets: ``int32 [N + 1]``, non-decreasing, ``offsets[0] == 0``.
    targets: ``int32 [nnz]``.
  """

  offsets: np.ndarray
  targets: np.ndarray

  @property
  def num_rows(self) -> int:
    return int(self.offsets.shape[0]) - 1

  @property
  def counts(self) -> np.ndarray:
    """``int32 [N]``: the length of each row."""
    return np.diff(self.offsets)

  @property
  def max_degree(self) -> int:
    """The length of the longest row (0 without rows)."""
    return int(self.counts.max(initial=0))

  def row(self, i: int) -> np.ndarray:
    """The targets of row ``i`` (a read-only view)."""
    return self.targets[self.offsets[i]:self.offsets[i + 1]]


def _read_only(array: np.ndarray) -> np.ndarray:
  array = array.view()
  array.flags.writeable = False
  return array


def _check_edges(edges, num_nodes: int, what: str = "(child, ancestor)") -> np.ndarray:
  """``edges`` as ``int64 [E, 2]``; ``ValueError`` for another shape, dtype or id range."""
  edges = np.asarray(edges)
  if edges.size == 0:
    return np.zeros((0, 2), np.int64)
  if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
    raise ValueError(f"edges must be an int array [E, 2] of {what} rows, got {edges.dtype} "
                     f"{edges.shape}.")
  edges = edges.astype(np.int64)
  if edges.min() < 0 or edges.max() >= num_nodes:
    raise ValueError(f"edge ids must lie in [0, num_nodes={num_nodes}), got "
                     f"[{edges.min()}, {edges.max()}].")
  return edges


def _within(counts: np.ndarray) -> np.ndarray:
  """``[sum(counts)]``: each element's position inside its group of a ragged layout."""
  counts = np.asarray(counts, np.int64)
  return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def _gather_rows(rows: Csr, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(which, targets)``: the rows ``ids`` concatenated; ``which[k]`` indexes ``ids``."""
  counts = rows.offsets[ids + 1].astype(np.int64) - rows.offsets[ids]
  which = np.repeat(np.arange(ids.size), counts)
  return which, rows.targets[np.repeat(rows.offsets[ids].astype(np.int64), counts)
                             + _within(counts)]


def sorted_unique_edges(edges, num_nodes: int) -> np.ndarray:
  """``int32 [E', 2]``: ``[E, 2]`` rows sorted lexicographically, duplicates dropped.

  Packs each row into one int64 key: a 1-D sort is ~20x faster than ``np.unique(axis=0)``.
  """
  edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
  key = np.sort(edges[:, 0] * max(num_nodes, 1) + edges[:, 1])
  if key.size:
    key = key[np.concatenate([[True], key[1:] != key[:-1]])]
  out = np.empty((key.size, 2), np.int32)
  out[:, 0], out[:, 1] = np.divmod(key, max(num_nodes, 1))
  return out


def symmetrize(edges, num_nodes: int | None = None) -> np.ndarray:
  """``int32 [E', 2]``: every edge in both directions, sorted and deduplicated.

  ``num_nodes`` only sizes the sort keys; ``None`` takes the largest id plus one.
  """
  edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
  if num_nodes is None:
    num_nodes = int(edges.max()) + 1 if edges.size else 0
  return sorted_unique_edges(np.concatenate([edges, edges[:, ::-1]], axis=0), num_nodes)


def csr(edges, num_nodes: int) -> Csr:
  """Compressed sparse rows of a directed edge list.

  Args:
    edges: ``int [E, 2]`` rows ``(source, target)``.
    num_nodes: ``N``; ids must lie in ``[0, N)``.

  Returns:
    A read-only :class:`Csr`: the targets of node ``i`` are
    ``targets[offsets[i]:offsets[i + 1]]``, ascending (duplicates kept). On rows that are
    already sorted (a :class:`Closure`'s), ``targets`` is ``edges[:, 1]`` in the same order.
  """
  edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
  if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
    raise ValueError(f"edge ids must lie in [0, {num_nodes}), got "
                     f"[{edges.min()}, {edges.max()}].")
  order = np.lexsort((edges[:, 1], edges[:, 0]))
  targets = edges[order, 1].astype(np.int32)
  counts = np.bincount(edges[:, 0], minlength=num_nodes)
  offsets = np.zeros(num_nodes + 1, np.int32)
  np.cumsum(counts, out=offsets[1:])
  return Csr(_read_only(offsets), _read_only(targets))


@dataclasses.dataclass(frozen=True, eq=False)
class Closure:
  """A transitive closure over named nodes, with its structure computed on demand.

  Build one from a file with :func:`embedlab.data.load_closure`, or from integer rows with
  :meth:`from_edges`. The constructor sorts and deduplicates the rows (already sorted rows
  are kept as they are) and refuses self-loops.

  Attributes:
    names: ``N`` distinct node names; the index of a name is its node id (loaded closures
      number nodes in sorted name order).
    edges: ``int32 [E, 2]`` rows ``(child id, ancestor id)``, sorted lexicographically, no
      duplicates, no self-loops. Read-only.
  """

  names: tuple[str, ...]
  edges: np.ndarray

  def __post_init__(self):
    names = tuple(self.names)
    num_nodes = len(names)
    edges = _check_edges(self.edges, num_nodes)
    loops = edges[:, 0] == edges[:, 1]
    if loops.any():
      raise ValueError(f"edges hold {int(loops.sum())} self-loop(s), e.g. node "
                       f"{int(edges[loops][0, 0])}; a closure row names a proper ancestor.")
    if len(set(names)) != num_nodes:
      repeated = [name for name, count in collections.Counter(names).items() if count > 1]
      raise ValueError(f"node names must be distinct; {repeated[0]!r} appears more than once.")
    key = edges[:, 0] * max(num_nodes, 1) + edges[:, 1]
    if not np.all(key[1:] > key[:-1]):
      edges = sorted_unique_edges(edges, num_nodes)
    # Frozen means frozen: a caller writing into `edges` would silently change every user.
    object.__setattr__(self, "names", names)
    object.__setattr__(self, "edges", _read_only(edges.astype(np.int32)))

  @classmethod
  def from_edges(cls, edges, *, num_nodes: int, names=None) -> Closure:
    """A closure over ids ``0 .. num_nodes - 1`` from integer rows.

    Args:
      edges: ``int [E, 2]`` rows ``(child, ancestor)``, ids in ``[0, num_nodes)``, any order,
        duplicates allowed, no self-loops. Transitivity is not checked here
        (:meth:`check_closed` does).
      num_nodes: ``N``; nodes in no row are isolated (no ancestor, no descendant).
      names: ``N`` distinct names; default ``str(i)``.

    Raises:
      ValueError: not an int ``[E, 2]`` array, ids out of range, a self-loop, or ``names`` of
        another length.
    """
    if names is None:
      names = tuple(map(str, range(num_nodes)))
    elif len(names) != num_nodes:
      raise ValueError(f"names has {len(names)} entries for num_nodes={num_nodes}.")
    return cls(names=names, edges=edges)

  @property
  def num_nodes(self) -> int:
    return len(self.names)

  @property
  def num_edges(self) -> int:
    return int(self.edges.shape[0])

  def name_to_id(self) -> dict[str, int]:
    """A fresh ``{name: id}`` dict (built on each call; keep it if you need it often)."""
    return {name: i for i, name in enumerate(self.names)}

  def __repr__(self) -> str:
    return f"Closure(num_nodes={self.num_nodes}, num_edges={self.num_edges})"

  # --- derived structure (cached) ------------------------------------------------------------

  @functools.cached_property
  def ancestors(self) -> Csr:
    """Each node's proper ancestors, ascending. ``targets`` is ``edges[:, 1]``, in row order."""
    return csr(self.edges, self.num_nodes)

  @functools.cached_property
  def descendants(self) -> Csr:
    """Each node's proper descendants, ascending."""
    return csr(self.edges[:, ::-1], self.num_nodes)

  @functools.cached_property
  def num_ancestors(self) -> np.ndarray:
    """``int64 [N]``: the number of proper ancestors of each node (0 for roots)."""
    return _read_only(np.bincount(self.edges[:, 0], minlength=self.num_nodes))

  @functools.cached_property
  def _two_step(self) -> tuple[np.ndarray, int, tuple[int, int] | None]:
    """One pass over the pairs ``(u, x)`` with ``(u, w)`` and ``(w, x)`` rows.

    Returns ``(implied bool [E], cycle node, missing pair)``: which rows are such a pair;
    the smallest ``u`` with ``(u, u)`` among them (``-1`` if none: no 2-step cycle); the
    smallest pair that is not a row (``None`` if all are: the rows are closed).
    """
    n = max(self.num_nodes, 1)
    edges = self.edges.astype(np.int64)
    keys = edges[:, 0] * n + edges[:, 1]
    offsets = self.ancestors.offsets.astype(np.int64)
    targets = self.ancestors.targets
    counts = offsets[edges[:, 1] + 1] - offsets[edges[:, 1]]
    ends = np.cumsum(counts)
    implied = np.zeros(edges.shape[0], bool)
    cycle, missing = -1, None
    start = 0
    while start < edges.shape[0]:
      before = ends[start - 1] if start else 0
      stop = max(int(np.searchsorted(ends, before + _PAIRS_PER_BLOCK, side="right")), start + 1)
      block = counts[start:stop]
      children = np.repeat(edges[start:stop, 0], block)
      through = targets[np.repeat(offsets[edges[start:stop, 1]], block) + _within(block)]
      loops = children == through
      if loops.any():
        found = int(children[loops].min())
        cycle = found if cycle < 0 else min(cycle, found)
      pair_keys = children * n + through
      position = np.minimum(np.searchsorted(keys, pair_keys), max(keys.size - 1, 0))
      hit = keys[position] == pair_keys if keys.size else np.zeros(pair_keys.size, bool)
      implied[position[hit]] = True
      absent = ~hit & ~loops
      if absent.any():
        smallest = int(pair_keys[absent].min())
        if missing is None or smallest < missing:
          missing = smallest
      start = stop
    pair = None if missing is None else tuple(int(i) for i in divmod(missing, n))
    return _read_only(implied), cycle, pair

  def check_closed(self) -> None:
    """Raises ``ValueError`` unless the rows are transitively closed and acyclic.

    A cycle is reported first (naming the smallest node that is its own ancestor in two
    steps), then a pair ``(u, a)`` reachable in two steps that is not a row (the smallest).
    Costs one pass over the two-step pairs, shared with :attr:`direct_edge_mask`.
    """
    _, cycle, missing = self._two_step
    if cycle >= 0:
      raise ValueError(f"the closure has a cycle through node {cycle}: it is its own ancestor.")
    if missing is not None:
      u, a = missing
      raise ValueError(f"edges are not transitively closed: node {u} reaches ancestor {a} in "
                       f"two steps but ({u}, {a}) is not a row.")

  @functools.cached_property
  def direct_edge_mask(self) -> np.ndarray:
    """``bool [E]``: the rows of the transitive reduction (the direct, or basic, edges).

    A row ``(u, v)`` is direct when no other ancestor ``w`` of ``u`` has ``v`` as an ancestor.
    The pairs ``(u, ancestor of w)`` are enumerated for every row ``(u, w)``
    (``sum_w |anc(w)|`` of them, about 7M for the WordNet nouns) and looked up among the rows
    by one int64 key each.
    """
    return _read_only(~self._two_step[0])

  @functools.cached_property
  def parents(self) -> Csr:
    """Each node's direct parents (ancestors that are no other ancestor's ancestor),
    ascending id."""
    return csr(self.edges[self.direct_edge_mask], self.num_nodes)

  @functools.cached_property
  def deepest_parent(self) -> np.ndarray:
    """``int64 [N]``: the direct parent with the most ancestors, the smallest id on ties;
    ``-1`` for nodes without ancestors.

    Computed over all ancestors, which needs no transitive reduction: on a closed acyclic
    closure an ancestor ``a`` that is not direct lies above some ancestor ``w`` of ``u``, which
    then has more ancestors than ``a``, so every deepest ancestor is a direct parent. Used as
    the layout tree of the nested caps and as the drawn tree of a plot.
    """
    parent = np.full(self.num_nodes, -1, np.int64)
    if self.num_edges:
      child, ancestor = self.edges[:, 0], self.edges[:, 1]
      depth = self.num_ancestors[ancestor]
      starts = self.ancestors.offsets[:-1][self.num_ancestors > 0]
      deepest = np.zeros(self.num_nodes, np.int64)
      deepest[self.num_ancestors > 0] = np.maximum.reduceat(depth, starts)
      best = np.flatnonzero(depth == deepest[child])
      # Rows are sorted by ancestor within a child: the first deepest one has the smallest id.
      first = np.concatenate([[True], child[best][1:] != child[best][:-1]])
      parent[child[best[first]]] = ancestor[best[first]]
    return _read_only(parent)

  @functools.cached_property
  def leaves(self) -> np.ndarray:
    """``int32 [L]``: nodes without descendants (isolated nodes included), ascending."""
    return _read_only(np.flatnonzero(self.descendants.counts == 0).astype(np.int32))

  def ancestor_matrix(self, *, include_self: bool, pad: int | None) -> np.ndarray:
    """Each node's ancestors as a padded table (cached per arguments).

    Args:
      include_self: put ``u`` itself first in row ``u``.
      pad: the filler after a row's ids; ``None`` fills row ``u`` with ``u`` (a table of ids
        to exclude then excludes nothing new), ``-1`` marks empty slots.

    Returns:
      ``int32 [N, W]``: row ``u`` is ``u`` (if ``include_self``), then its ancestors
      ascending, then ``pad``; ``W`` is the widest such row. The ancestors of row ``u`` sit
      in the order of ``u``'s closure rows, so row ``e = (u, a)`` of ``edges`` is at column
      ``include_self + e - ancestors.offsets[u]``.
    """
    cache = self.__dict__.setdefault("_ancestor_matrices", {})
    key = (bool(include_self), None if pad is None else int(pad))
    if key not in cache:
      ancestors = self.ancestors
      counts = ancestors.counts
      shift = int(include_self)
      width = ancestors.max_degree + shift
      own = np.arange(self.num_nodes, dtype=np.int32)
      if pad is None:
        matrix = np.repeat(own[:, None], width, axis=1)
      else:
        matrix = np.full((self.num_nodes, width), pad, np.int32)
      if include_self:
        matrix[:, 0] = own
      matrix[np.repeat(own, counts), shift + _within(counts)] = ancestors.targets
      cache[key] = _read_only(matrix)
    return cache[key]

  def neighbours(self, *, symmetric: bool) -> Csr:
    """Each node's ancestors, or (``symmetric``) its ancestors and descendants, deduplicated
    and ascending: the neighbours a reconstruction evaluation ranks (cached per argument)."""
    if not symmetric:
      return self.ancestors
    if "_symmetric_neighbours" not in self.__dict__:
      self.__dict__["_symmetric_neighbours"] = csr(symmetrize(self.edges, self.num_nodes),
                                                   self.num_nodes)
    return self.__dict__["_symmetric_neighbours"]


def as_closure(edges_or_closure, num_nodes: int | None = None) -> Closure:
  """A :class:`Closure` as is, or one built from ``int [E, 2]`` rows over ``num_nodes`` nodes.

  For functions that take either: a ``Closure`` keeps its cached structure across calls.

  Raises:
    ValueError: rows without ``num_nodes``, or a ``Closure`` with another number of nodes.
  """
  if isinstance(edges_or_closure, Closure):
    if num_nodes is not None and int(num_nodes) != edges_or_closure.num_nodes:
      raise ValueError(f"num_nodes={num_nodes} differs from the closure's "
                       f"{edges_or_closure.num_nodes} nodes.")
    return edges_or_closure
  if num_nodes is None:
    raise ValueError("num_nodes is required when the closure is given as an edges array.")
  return Closure.from_edges(edges_or_closure, num_nodes=int(num_nodes))


def transitive_closure(links, num_nodes: int) -> np.ndarray:
  """The transitive closure of direct links ``(child, parent)``.

  Nodes are processed level by level in topological order (Kahn's algorithm: roots first,
  then every node whose parents are all done), and a node's ancestors are its parents and
  their ancestors, deduplicated with one int64 key per pair: vectorised within a level, so the
  cost is about the size of the result times the number of levels.

  Args:
    links: ``int [E, 2]`` rows ``(child, parent)``, ids in ``[0, num_nodes)``; duplicates are
      fine.
    num_nodes: ``N``.

  Returns:
    ``int32 [E', 2]`` closure rows ``(child, ancestor)``, sorted, no duplicates.

  Raises:
    CycleError: the links contain a cycle (self-loops included); ``error.cycle`` lists its
      nodes.
    ValueError: not an int ``[E, 2]`` array, or ids out of range.
  """
  links = _check_edges(links, num_nodes, what="(child, parent)")
  loops = links[:, 0] == links[:, 1]
  if loops.any():
    node = int(links[loops][0, 0])
    raise CycleError(f"the links have a cycle: node {node} is its own parent.", (node,))
  links = sorted_unique_edges(links, num_nodes)
  parents = csr(links, num_nodes)
  children = csr(links[:, ::-1], num_nodes)
  waiting = parents.counts.astype(np.int64)  # parents not yet done
  frontier = np.flatnonzero(waiting == 0)
  levels = []
  while frontier.size:
    levels.append(frontier)
    _, reached = _gather_rows(children, frontier)
    hits = np.bincount(reached, minlength=num_nodes)
    waiting -= hits
    frontier = np.flatnonzero((waiting == 0) & (hits > 0))
  if sum(level.size for level in levels) < num_nodes:
    # Every node still waiting has a parent still waiting: walking up such parents from any of
    # them must come back to a node already seen, and the walk from there is a cycle.
    node = int(np.flatnonzero(waiting > 0)[0])
    path, seen = [], {}
    while node not in seen:
      seen[node] = len(path)
      path.append(node)
      up = parents.row(node)
      node = int(up[waiting[up] > 0][0])
    cycle = tuple(path[seen[node]:])
    shown = " -> ".join(map(str, cycle + cycle[:1]))
    raise CycleError(f"the links have a cycle (each node a child of the next): {shown}.", cycle)

  n = max(num_nodes, 1)
  # Each node's ancestors, appended level by level: node u's are pool[start[u]:start[u] + count[u]].
  pool = np.zeros(0, np.int64)
  start = np.zeros(num_nodes, np.int64)
  count = np.zeros(num_nodes, np.int64)
  rows = []
  for nodes in levels[1:]:
    which, up = _gather_rows(parents, nodes)
    child = nodes[which]
    inherited = np.repeat(child, count[up])
    above = pool[np.repeat(start[up], count[up]) + _within(count[up])]
    keys = np.unique(np.concatenate([child * n + up, inherited * n + above]))
    row, ancestor = np.divmod(keys, n)
    per_node = np.bincount(row, minlength=num_nodes)[nodes]  # nodes and rows both ascending
    start[nodes] = pool.size + np.cumsum(per_node) - per_node
    count[nodes] = per_node
    pool = np.concatenate([pool, ancestor])
    rows.append(keys)
  keys = np.sort(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
  out = np.empty((keys.size, 2), np.int32)
  out[:, 0], out[:, 1] = np.divmod(keys, n)
  return out
