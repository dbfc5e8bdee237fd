"""Tests for embedlab.graphs: each structure of a Closure against its definition, by brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from embedlab import graphs
from embedlab.graphs import Closure


def _closure_of_links(links, num_nodes):
  """Brute force: ``{(u, a)}`` with ``a`` reachable from ``u`` along ``(child, parent)`` links."""
  parents = [set() for _ in range(num_nodes)]
  for child, parent in links:
    parents[child].add(parent)
  rows = set()
  for u in range(num_nodes):
    stack, seen = list(parents[u]), set()
    while stack:
      a = stack.pop()
      if a not in seen:
        seen.add(a)
        stack.extend(parents[a])
    rows |= {(u, a) for a in seen}
  return rows


def _random_dag(num_nodes, seed, *, max_parents=3, isolated=2):
  """Links of a random DAG: node ``i`` gets 0..max_parents parents among the nodes before it;
  the last ``isolated`` nodes take part in no link."""
  rng = np.random.default_rng(seed)
  links = []
  linked = num_nodes - isolated
  for i in range(1, linked):
    for p in rng.choice(i, size=min(i, int(rng.integers(0, max_parents + 1))), replace=False):
      links.append((i, int(p)))
  return links


# Hand-made: 0 root; 1, 2 children of 0; 3 under 1 and 2 (equally deep: tie to 1); 4 under 3
# and 2; 5 under 1; 6 isolated; 7 a second root with child 8.
_HAND_LINKS = [(1, 0), (2, 0), (3, 1), (3, 2), (4, 3), (4, 2), (5, 1), (8, 7)]
_HAND_N = 9


def _cases():
  yield "hand", _HAND_LINKS, _HAND_N
  yield "no_rows", [], 3
  yield "chain", [(i, i - 1) for i in range(1, 6)], 6
  # The deeper parent has the larger id: 3's parents are 1 (depth 1) and 2 (depth 2).
  yield "deeper_larger_id", [(1, 0), (2, 1), (3, 1), (3, 2)], 4
  for n, seed in [(12, 0), (30, 1), (60, 2), (60, 3)]:
    yield f"random_{n}_{seed}", _random_dag(n, seed), n


CASES = list(_cases())


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def case(request):
  _, links, n = request.param
  rows = _closure_of_links(links, n)
  edges = np.asarray(sorted(rows), np.int64).reshape(-1, 2)
  return Closure.from_edges(edges, num_nodes=n), rows, n


def _ancestors(rows, u):
  return sorted(a for (v, a) in rows if v == u)


def _descendants(rows, a):
  return sorted(v for (v, b) in rows if b == a)


def _direct(rows, u, a):
  """``(u, a)`` is a row and no other ancestor ``w`` of ``u`` has ``a`` above it."""
  return (u, a) in rows and not any((w, a) in rows for (v, w) in rows if v == u)


def _csr_rows(csr):
  return [list(csr.row(i)) for i in range(csr.num_rows)]


def test_ancestors_descendants_and_counts(case):
  closure, rows, n = case
  assert _csr_rows(closure.ancestors) == [_ancestors(rows, u) for u in range(n)]
  assert _csr_rows(closure.descendants) == [_descendants(rows, u) for u in range(n)]
  np.testing.assert_array_equal(closure.num_ancestors, [len(_ancestors(rows, u))
                                                        for u in range(n)])
  np.testing.assert_array_equal(closure.ancestors.targets, closure.edges[:, 1])
  assert closure.ancestors.offsets.dtype == closure.ancestors.targets.dtype == np.int32
  assert closure.ancestors.max_degree == max([len(_ancestors(rows, u)) for u in range(n)])


def test_direct_edges_parents_and_deepest_parent(case):
  closure, rows, n = case
  expected = [_direct(rows, int(u), int(a)) for u, a in closure.edges]
  np.testing.assert_array_equal(closure.direct_edge_mask, np.asarray(expected, bool))
  parents = [[a for a in _ancestors(rows, u) if _direct(rows, u, a)] for u in range(n)]
  assert _csr_rows(closure.parents) == parents
  depth = [len(_ancestors(rows, u)) for u in range(n)]
  # Most ancestors first, then the smallest id.
  deepest = [min(p, key=lambda a: (-depth[a], a)) if p else -1 for p in parents]
  np.testing.assert_array_equal(closure.deepest_parent, deepest)
  assert closure.deepest_parent.dtype == np.int64


def test_leaves(case):
  closure, rows, n = case
  expected = [u for u in range(n) if not _descendants(rows, u)]
  np.testing.assert_array_equal(closure.leaves, expected)
  assert closure.leaves.dtype == np.int32


@pytest.mark.parametrize("include_self, pad", [(True, None), (False, -1), (True, -1),
                                               (False, None)])
def test_ancestor_matrix(case, include_self, pad):
  closure, rows, n = case
  lists = [([u] if include_self else []) + _ancestors(rows, u) for u in range(n)]
  width = max(len(row) for row in lists)
  expected = [row + [u if pad is None else pad] * (width - len(row))
              for u, row in enumerate(lists)]
  matrix = closure.ancestor_matrix(include_self=include_self, pad=pad)
  assert matrix.dtype == np.int32 and matrix.shape == (n, width)
  np.testing.assert_array_equal(matrix, np.asarray(expected, np.int64).reshape(n, width))
  # Documented slot of each closure row.
  offsets = closure.ancestors.offsets
  for e, (u, a) in enumerate(closure.edges):
    assert matrix[u, int(include_self) + e - offsets[u]] == a


@pytest.mark.parametrize("symmetric", [False, True])
def test_neighbours(case, symmetric):
  closure, rows, n = case
  expected = [sorted(set(_ancestors(rows, u)) | (set(_descendants(rows, u)) if symmetric
                                                 else set())) for u in range(n)]
  assert _csr_rows(closure.neighbours(symmetric=symmetric)) == expected


def test_transitive_closure_matches_brute_force(case):
  closure, rows, n = case
  # Closing the direct links gives the closure back; so does closing the closure itself.
  direct = closure.edges[closure.direct_edge_mask]
  np.testing.assert_array_equal(graphs.transitive_closure(direct, n), closure.edges)
  np.testing.assert_array_equal(graphs.transitive_closure(closure.edges, n), closure.edges)
  closure.check_closed()


@pytest.mark.parametrize("name, links, n", [c for c in CASES if c[0] != "no_rows"])
def test_transitive_closure_of_raw_links(name, links, n):
  del name
  shuffled = np.random.default_rng(0).permutation(np.asarray(links + links[:3]))
  got = graphs.transitive_closure(shuffled, n)
  assert got.dtype == np.int32
  assert list(map(tuple, got.tolist())) == sorted(_closure_of_links(links, n))


def test_hand_made_values():
  # Written out by hand from the picture above _HAND_LINKS.
  closure = Closure.from_edges(np.asarray(sorted(_closure_of_links(_HAND_LINKS, _HAND_N))),
                               num_nodes=_HAND_N)
  np.testing.assert_array_equal(closure.deepest_parent, [-1, 0, 0, 1, 3, 1, -1, -1, 7])
  assert _csr_rows(closure.parents) == [[], [0], [0], [1, 2], [3], [1], [], [], [7]]
  np.testing.assert_array_equal(closure.leaves, [4, 5, 6, 8])
  np.testing.assert_array_equal(closure.num_ancestors, [0, 1, 1, 3, 4, 2, 0, 0, 1])


@pytest.mark.parametrize("rows, message", [
    ([(1, 0), (2, 1)], "not transitively closed: node 2 reaches ancestor 0"),
    ([(1, 0), (0, 1)], "cycle through node 0"),
    ([(2, 1), (1, 2), (2, 0), (1, 0)], "cycle through node 1"),
])
def test_check_closed_refuses(rows, message):
  closure = Closure.from_edges(np.asarray(rows), num_nodes=3)
  with pytest.raises(ValueError, match=message):
    closure.check_closed()


@pytest.mark.parametrize("links, cycle_nodes", [
    ([(1, 0), (0, 1)], {0, 1}),
    ([(1, 0), (2, 1), (3, 2), (1, 3), (4, 3)], {1, 2, 3}),
    ([(3, 3)], {3}),
    # A cycle below a DAG part: only its nodes are named.
    ([(1, 0), (2, 1), (3, 2), (4, 3), (2, 4)], {2, 3, 4}),
])
def test_transitive_closure_refuses_cycles(links, cycle_nodes):
  with pytest.raises(graphs.CycleError, match="cycle") as info:
    graphs.transitive_closure(np.asarray(links), 5)
  cycle = info.value.cycle
  assert set(cycle) == cycle_nodes
  # Each node is a child of the next, the last a child of the first.
  assert all((a, b) in set(links) for a, b in zip(cycle, cycle[1:] + cycle[:1]))


def test_constructor_sorts_dedupes_and_refuses_bad_rows():
  closure = Closure.from_edges(np.asarray([[2, 0], [1, 0], [2, 1], [2, 0]]), num_nodes=3)
  np.testing.assert_array_equal(closure.edges, [[1, 0], [2, 0], [2, 1]])
  assert closure.names == ("0", "1", "2")
  assert closure.edges.dtype == np.int32
  for bad, message in [([[1, 1]], "self-loop"), ([[0, 3]], "must lie in"),
                       ([[0.0, 1.0]], "int array"), ([1, 0], "int array")]:
    with pytest.raises(ValueError, match=message):
      Closure.from_edges(np.asarray(bad), num_nodes=3)
  with pytest.raises(ValueError, match="distinct"):
    Closure(names=("a", "b", "a"), edges=np.zeros((0, 2), np.int32))
  with pytest.raises(ValueError, match="names has 2"):
    Closure.from_edges(np.zeros((0, 2), np.int32), num_nodes=3, names=("a", "b"))


def test_structures_are_cached_and_read_only():
  closure = Closure.from_edges(np.asarray(sorted(_closure_of_links(_HAND_LINKS, _HAND_N))),
                               num_nodes=_HAND_N)
  for name in ("ancestors", "descendants", "parents"):
    first = getattr(closure, name)
    assert getattr(closure, name) is first
    assert not first.offsets.flags.writeable and not first.targets.flags.writeable
  for name in ("num_ancestors", "direct_edge_mask", "deepest_parent", "leaves", "edges"):
    first = getattr(closure, name)
    assert getattr(closure, name) is first
    with pytest.raises(ValueError):
      first[0] = 1
  for include_self, pad in itertools.product([True, False], [None, -1]):
    matrix = closure.ancestor_matrix(include_self=include_self, pad=pad)
    assert closure.ancestor_matrix(include_self=include_self, pad=pad) is matrix
    assert not matrix.flags.writeable
  assert (closure.ancestor_matrix(include_self=True, pad=None)
          is not closure.ancestor_matrix(include_self=True, pad=-1))
  assert closure.neighbours(symmetric=True) is closure.neighbours(symmetric=True)
  assert closure.neighbours(symmetric=False) is closure.ancestors


def test_as_closure():
  closure = Closure.from_edges(np.asarray([[1, 0]]), num_nodes=2)
  assert graphs.as_closure(closure) is closure
  assert graphs.as_closure(closure, 2) is closure
  with pytest.raises(ValueError, match="num_nodes=3 differs"):
    graphs.as_closure(closure, 3)
  with pytest.raises(ValueError, match="num_nodes is required"):
    graphs.as_closure(np.asarray([[1, 0]]))
  built = graphs.as_closure(np.asarray([[1, 0]]), 4)
  assert built.num_nodes == 4 and built.num_edges == 1


@pytest.mark.parametrize("edges, num_nodes, offsets, targets", [
    ([[2, 0], [0, 2], [0, 1], [2, 1]], 3, [0, 2, 2, 4], [1, 2, 0, 1]),
    ([[1, 0], [1, 0]], 3, [0, 0, 2, 2], [0, 0]),   # duplicates kept
    (np.zeros((0, 2), np.int32), 2, [0, 0, 0], []),
])
def test_csr(edges, num_nodes, offsets, targets):
  got = graphs.csr(edges, num_nodes)
  assert isinstance(got, graphs.Csr)
  np.testing.assert_array_equal(got.offsets, offsets)
  np.testing.assert_array_equal(got.targets, targets)
  np.testing.assert_array_equal(got.counts, np.diff(offsets))
  assert got.max_degree == int(np.max(np.diff(offsets)))
  assert got.num_rows == num_nodes


@pytest.mark.parametrize("edges, num_nodes, expected", [
    ([[1, 0], [2, 0]], None, [[0, 1], [0, 2], [1, 0], [2, 0]]),
    ([[1, 0], [0, 1], [1, 0]], 5, [[0, 1], [1, 0]]),
])
def test_symmetrize(edges, num_nodes, expected):
  np.testing.assert_array_equal(graphs.symmetrize(edges, num_nodes), expected)
