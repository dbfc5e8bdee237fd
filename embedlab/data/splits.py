"""Link-prediction splits of a transitive closure (Nickel & Kiela, NeurIPS 2017, section 4.1).

N&K hold out a random share of the closure's *non-basic* edges: an edge ``(u, v)`` is basic
when no other ancestor ``w`` of ``u`` lies between them (``(u, w)`` and ``(w, v)`` both in the
closure), i.e. it belongs to the transitive reduction — the direct hypernym links. Basic edges
always stay in training, so every held-out edge is implied by training edges and the
hierarchy's shape can, in principle, predict it. Which edges are basic is
:attr:`embedlab.graphs.Closure.direct_edge_mask`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from embedlab.graphs import Closure


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
  basic = closure.direct_edge_mask
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
