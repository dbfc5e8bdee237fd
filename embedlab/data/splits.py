"""Link-prediction splits of a transitive closure (Nickel & Kiela, NeurIPS 2017, section 4.1).

N&K hold out a random share of the closure's *non-basic* edges: an edge ``(u, v)`` is basic
when no other ancestor ``w`` of ``u`` lies between them (``(u, w)`` and ``(w, v)`` both in the
closure), i.e. it belongs to the transitive reduction — the direct hypernym links. Basic edges
always stay in training, so every held-out edge is implied by training edges and the
hierarchy's shape can, in principle, predict it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from embedlab.data.closure import Closure
from embedlab.data.closure import csr


def basic_edge_mask(edges, num_nodes: int) -> np.ndarray:
  """Which closure rows belong to the transitive reduction.

  ``(u, v)`` is implied when ``v`` is an ancestor of some ancestor ``w`` of ``u``; the pairs
  ``(u, ancestor of w)`` are enumerated for every edge ``(u, w)`` (``sum_w |anc(w)|`` of them,
  about 7M for the WordNet nouns) and looked up by one int64 key per pair.

  Args:
    edges: ``int [E, 2]`` rows ``(child, ancestor)`` of a transitive closure (no self-loops).
    num_nodes: ``N``; ids lie in ``[0, N)``.

  Returns:
    ``bool [E]``: true for basic (direct) edges.
  """
  edges = np.asarray(edges, np.int64)
  offsets, targets = csr(edges, num_nodes)
  middles = edges[:, 1]
  counts = offsets[middles + 1] - offsets[middles]
  children = np.repeat(edges[:, 0], counts)
  starts = np.repeat(offsets[middles], counts)
  within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
  implied = np.unique(children * num_nodes + targets[starts + within])
  keys = edges[:, 0] * num_nodes + edges[:, 1]
  return ~np.isin(keys, implied, assume_unique=False)


@dataclasses.dataclass(frozen=True, eq=False)
class LinkPredictionSplit:
  """A closure split for link prediction.

  Attributes:
    train: the training closure (all basic edges and the kept non-basic ones); same names.
    test: ``int32 [T, 2]`` held-out rows ``(child, ancestor)``.
    all_edges: ``int32 [E, 2]`` every closure row (train and test), for filtered ranking.
    num_basic: how many training edges are basic.
  """

  train: Closure
  test: np.ndarray
  all_edges: np.ndarray
  num_basic: int


def link_prediction_split(closure: Closure, *, test_fraction: float,
                          seed: int = 0) -> LinkPredictionSplit:
  """Holds out ``test_fraction`` of the non-basic edges, uniformly at random.

  Args:
    closure: the full transitive closure.
    test_fraction: share of the *non-basic* edges to hold out, in ``(0, 1)``.
    seed: seed of the numpy generator that picks them (the split is reproducible).

  Returns:
    A :class:`LinkPredictionSplit`.

  Raises:
    ValueError: ``test_fraction`` outside ``(0, 1)``, or a closure with no non-basic edge.
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
  edges = closure.edges
  basic = basic_edge_mask(edges, closure.num_nodes)
  candidates = np.flatnonzero(~basic)
  if candidates.size == 0:
    raise ValueError("the closure has no non-basic edge to hold out (it is its own "
                     "transitive reduction).")
  rng = np.random.default_rng(seed)
  held_out = np.zeros(edges.shape[0], bool)
  held_out[rng.choice(candidates, size=max(1, round(test_fraction * candidates.size)),
                      replace=False)] = True
  train = Closure(names=closure.names, edges=edges[~held_out])
  return LinkPredictionSplit(train=train, test=edges[held_out].copy(), all_edges=edges,
                             num_basic=int(basic.sum()))
