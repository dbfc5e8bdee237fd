"""Tests for embedlab.data.splits (N&K link-prediction splits)."""

import numpy as np
import pytest

from embedlab.data import closure as closure_lib
from embedlab.data import splits


def _brute_force_basic(edges):
  ancestors = {}
  for u, v in edges:
    ancestors.setdefault(int(u), set()).add(int(v))
  return np.array([not any(v in ancestors.get(w, ()) for w in ancestors[u] if w != v)
                   for u, v in edges.tolist()])


def test_basic_edges_of_a_chain():
  # a -> b -> c, and d -> b: the closure adds a -> c and d -> c, which are implied.
  edges = np.array([[0, 1], [0, 2], [1, 2], [3, 1], [3, 2]])
  closure = closure_lib.Closure.from_edges(edges, num_nodes=4)
  np.testing.assert_array_equal(closure.direct_edge_mask, [True, False, True, True, False])


def test_basic_edges_match_brute_force_on_mammals():
  mammals = closure_lib.mammal_closure()
  basic = mammals.direct_edge_mask
  np.testing.assert_array_equal(basic, _brute_force_basic(mammals.edges))
  # A tree-shaped hierarchy has (about) one direct parent per node.
  assert mammals.num_nodes - 1 <= basic.sum() <= mammals.num_nodes + 10


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_split_holds_out_only_non_basic_edges(fraction):
  mammals = closure_lib.mammal_closure()
  split = splits.link_prediction_split(mammals, test_fraction=fraction, seed=1)
  basic = mammals.direct_edge_mask
  key = lambda e: set(map(tuple, np.asarray(e).tolist()))
  train, test, full = key(split.train.edges), key(split.test), key(mammals.edges)
  assert not train & test and train | test == full
  assert test.isdisjoint(key(mammals.edges[basic]))
  assert len(test) == round(fraction * (~basic).sum())
  assert split.num_basic == basic.sum()
  again = splits.link_prediction_split(mammals, test_fraction=fraction, seed=1)
  np.testing.assert_array_equal(again.test, split.test)
  other = splits.link_prediction_split(mammals, test_fraction=fraction, seed=2)
  assert key(other.test) != test


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_rejects_bad_fractions(fraction):
  with pytest.raises(ValueError, match="test_fraction"):
    splits.link_prediction_split(closure_lib.mammal_closure(), test_fraction=fraction)


def test_split_needs_a_non_basic_edge():
  tree = closure_lib.Closure(names=("a", "b", "c"), edges=np.array([[0, 1], [2, 1]]))
  with pytest.raises(ValueError, match="no non-basic edge"):
    splits.link_prediction_split(tree, test_fraction=0.5)
