"""Undirected graphs from ``u v`` edge lists, and the BFS spanning trees Sala et al. embed.

File format (one edge a line, plain or gzipped)::

  u v

``u`` and ``v`` are non-negative integer node ids separated by whitespace (spaces or tabs).
Blank lines and lines starting with ``#`` are skipped; anything else that is not exactly two
integer fields, or that is a self-loop, raises :class:`EdgeListFormatError` naming the file,
the 1-based line and what was expected. Edges are undirected: ``u v`` and ``v u`` (and repeats)
are one edge.

Node ids: when the file's ids are exactly ``0 .. n-1`` they are kept as they are; otherwise they
are relabelled to ``0 .. n-1`` in increasing order of the original id, and :attr:`Graph.ids`
keeps the original id of each node (it is ``arange(n)`` when nothing was relabelled).

Trees and graphs. The combinatorial construction of Sala, De Sa, Gu & Ré, "Representation
Tradeoffs for Hyperbolic Embeddings" (ICML 2018) embeds a tree. Some of their graphs are not
trees (``diseasome`` and ``csphd`` have cycles, as has the WordNet hypernym graph, where a
synset can have two hypernyms); like the paper, we embed a breadth-first-search spanning tree
(:func:`bfs_tree`) and evaluate against the *original* graph, so each edge the tree drops costs
distortion and MAP. A graph with several connected components gives a spanning forest (one
root per component); :mod:`embedlab.models.combinatorial` hangs the roots from a virtual node.

Data that does not ship with the package is found through ``data_dir`` (``--config.data_dir``)
or the ``EMBEDLAB_DATA_DIR`` environment variable (see :func:`resolve_data_dir`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from embedlab.data import closure as closure_lib
from embedlab.data.closure import resolve_data_dir

# The graphs of Sala et al. (2018), under the shared data folder (data README, section 7).
TREES = {
    "smalltree": "trees/smalltree.edges",
    "phylo": "trees/phylo_tree.edges",
    "diseasome": "trees/bio-diseasome.edges",
    "csphd": "trees/ca-CSphd.edges",
    "wordnet": "trees/wordnet_hypernym_tree.edges.gz",
}

_EXPECTED = "two non-negative integer node ids 'u v' separated by whitespace"


class EdgeListFormatError(ValueError):
  """An edge-list file that does not follow the ``u v`` format."""


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
  """An undirected simple graph on nodes ``0 .. num_nodes-1``.

  Attributes:
    edges: ``int32 [E, 2]`` rows ``(u, v)`` with ``u < v``, sorted, no duplicates or loops.
      Read-only.
    ids: ``int64 [N]`` the original id of each node (``arange(N)`` when the file's ids were
      already contiguous). Read-only.
    source: where the graph came from (a path, or a description), for messages and results.
  """

  edges: np.ndarray
  ids: np.ndarray
  source: str = ""

  def __post_init__(self):
    edges = np.asarray(self.edges)
    if edges.ndim != 2 or edges.shape[1] != 2:
      raise ValueError(f"edges must have shape [E, 2], got {edges.shape}.")
    ids = np.asarray(self.ids, np.int64).reshape(-1)
    if edges.size and (edges.min() < 0 or edges.max() >= ids.size):
      raise ValueError(f"edge ids must lie in [0, {ids.size}), got [{edges.min()}, "
                       f"{edges.max()}].")
    edges = _canonical_edges(edges, ids.size)
    # Frozen means frozen: a caller writing into an array would silently change every user.
    for array in (edges, ids):
      array.flags.writeable = False
    object.__setattr__(self, "edges", edges)
    object.__setattr__(self, "ids", ids)

  @property
  def num_nodes(self) -> int:
    return int(self.ids.size)

  @property
  def num_edges(self) -> int:
    return int(self.edges.shape[0])

  def degrees(self) -> np.ndarray:
    """``int64 [N]``: the number of neighbours of each node."""
    return np.bincount(self.edges.reshape(-1), minlength=self.num_nodes)

  def num_components(self) -> int:
    parent = bfs_tree(self, root=0)
    return int(np.sum(parent < 0))

  def is_tree(self) -> bool:
    """Connected and acyclic (exactly ``N - 1`` edges)."""
    return self.num_edges == self.num_nodes - 1 and self.num_components() == 1

  def __repr__(self) -> str:
    return f"Graph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, source={self.source!r})"


def _canonical_edges(edges: np.ndarray, num_nodes: int) -> np.ndarray:
  """``int32 [E, 2]``: each undirected edge once as ``(min, max)``, sorted."""
  return closure_lib.sorted_unique_edges(np.sort(np.asarray(edges).reshape(-1, 2), axis=1),
                                         num_nodes)


def load_edge_list(path: str | os.PathLike) -> Graph:
  """Reads an undirected ``u v`` edge list (plain or gzipped).

  Args:
    path: the file; gzip compression is detected from the content.

  Returns:
    The :class:`Graph`; ids relabelled to ``0 .. n-1`` only if they were not already.

  Raises:
    FileNotFoundError: the file does not exist (the message says how to point
      ``EMBEDLAB_DATA_DIR`` at the data).
    EdgeListFormatError: a line is not two non-negative integers, is a self-loop, the file
      is not UTF-8, or it holds no edge. The message names the file and the 1-based line.
  """
  path = pathlib.Path(path)
  text = closure_lib.read_data_text(path, kind="Edge list", error=EdgeListFormatError,
                                    expected=_EXPECTED)
  pairs = []
  for number, line in enumerate(text.split("\n"), start=1):
    fields = line.split()  # Any whitespace; also drops a Windows '\r'.
    if not fields or fields[0].startswith("#"):
      continue
    shown = line.strip() if len(line) <= 80 else line[:77] + "..."
    if len(fields) != 2:
      raise EdgeListFormatError(f"{path}:{number}: found {len(fields)} field(s) in {shown!r}; "
                                f"expected {_EXPECTED}.")
    try:
      u, v = int(fields[0]), int(fields[1])
    except ValueError:
      raise EdgeListFormatError(f"{path}:{number}: found a non-integer id in {shown!r}; "
                                f"expected {_EXPECTED}.") from None
    if u < 0 or v < 0:
      raise EdgeListFormatError(f"{path}:{number}: found a negative id in {shown!r}; "
                                f"expected {_EXPECTED}.")
    if u == v:
      raise EdgeListFormatError(f"{path}:{number}: found the self-loop {shown!r}; expected "
                                "two different nodes (a node is never its own neighbour).")
    pairs.append((u, v))
  if not pairs:
    raise EdgeListFormatError(f"{path}: found no edges (the file is empty or holds only blank "
                              f"and '#' lines); expected lines of {_EXPECTED}.")
  edges = np.asarray(pairs, np.int64)
  ids, labels = np.unique(edges, return_inverse=True)
  if ids[-1] == ids.size - 1:  # Already 0..n-1 (unique ids are sorted and non-negative).
    labels = edges.reshape(-1)
  return Graph(edges=labels.reshape(-1, 2), ids=ids, source=str(path))


def load_named_tree(name: str, *, data_dir: str | os.PathLike | None = None) -> Graph:
  """Loads the graph registered as ``name`` in :data:`TREES` from the data folder.

  Args:
    name: a key of :data:`TREES`.
    data_dir: the shared data folder; ``None`` means ``$EMBEDLAB_DATA_DIR``.

  Raises:
    ValueError: ``name`` is not registered, or no data folder is given.
    FileNotFoundError: the data folder or the file is missing.
  """
  if name not in TREES:
    raise ValueError(f"Unknown tree {name!r}; valid names: {', '.join(sorted(TREES))}.")
  return load_edge_list(resolve_data_dir(data_dir) / TREES[name])


def balanced_tree(*, branching: int, depth: int) -> Graph:
  """The complete ``branching``-ary tree of the given depth (root 0, breadth-first ids).

  ``(branching^(depth+1) - 1) / (branching - 1)`` nodes; node ``i > 0`` has parent
  ``(i - 1) // branching``. Needs no data: tests and the smoke preset use it.
  """
  if branching < 1 or depth < 0:
    raise ValueError(f"branching must be >= 1 and depth >= 0, got {branching}, {depth}.")
  num_nodes = sum(branching ** level for level in range(depth + 1))
  child = np.arange(1, num_nodes)
  edges = np.stack([(child - 1) // branching, child], axis=1)
  return Graph(edges=edges.reshape(-1, 2), ids=np.arange(num_nodes),
               source=f"balanced_tree(branching={branching}, depth={depth})")


def bfs_tree(graph: Graph, *, root: int = 0) -> np.ndarray:
  """A breadth-first-search spanning forest, as a parent array.

  The search starts at ``root``; each further component (if any) is searched from its
  smallest node id. Neighbours are visited in increasing id order, so the result is
  deterministic. Every graph edge between a node and its BFS parent is kept; the others
  (``num_edges - (N - #components)`` of them) are dropped.

  Args:
    graph: the undirected graph.
    root: the node at the top of the first tree.

  Returns:
    ``int64 [N]``: ``parent[v]``, with ``-1`` for each root (one per component).
  """
  n = graph.num_nodes
  if not 0 <= root < n:
    raise ValueError(f"root must lie in [0, {n}), got {root}.")
  both = np.concatenate([graph.edges, graph.edges[:, ::-1]]).astype(np.int64)
  both = both[np.lexsort((both[:, 1], both[:, 0]))]
  offsets = np.zeros(n + 1, np.int64)
  np.cumsum(np.bincount(both[:, 0], minlength=n), out=offsets[1:])
  targets = both[:, 1]
  parent = np.full(n, -1, np.int64)
  seen = np.zeros(n, bool)
  start = root
  while True:
    seen[start] = True
    frontier = np.array([start])
    while frontier.size:
      # Expand the whole level at once. The frontier is sorted by id, so among several
      # frontier nodes reaching the same new node the smallest id becomes its parent.
      counts = offsets[frontier + 1] - offsets[frontier]
      sources = np.repeat(frontier, counts)
      within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
      reached = targets[np.repeat(offsets[frontier], counts) + within]
      fresh = ~seen[reached]
      reached, sources = reached[fresh], sources[fresh]
      reached, first = np.unique(reached, return_index=True)
      parent[reached] = sources[first]
      seen[reached] = True
      frontier = reached
    unseen = np.flatnonzero(~seen)
    if not unseen.size:
      return parent
    start = int(unseen[0])
