"""Tests for embedlab.data.trees: edge-list parsing, errors, relabelling, BFS spanning trees."""

import gzip
import os

import numpy as np
import pytest

from embedlab import data
from tests.conftest import data_dir_or_skip

# A 5-cycle 0-1-2-3-4-0 plus a pendant 5 on 2: written with a comment, a blank line, tabs,
# a reversed duplicate and runs of spaces.
_CYCLE = "# a comment\n0 1\n1\t2\n\n2   3\n3 4\n4 0\n1 0\n2 5\n"
_CYCLE_EDGES = [[0, 1], [0, 4], [1, 2], [2, 3], [2, 5], [3, 4]]


def _write(tmp_path, text, name="graph.edges", compress=False):
  path = tmp_path / name
  raw = text.encode("utf-8")
  path.write_bytes(gzip.compress(raw) if compress else raw)
  return path


@pytest.mark.parametrize("name, compress, crlf", [
    ("graph.edges", False, False),
    ("graph.edges.gz", True, False),
    ("gzipped_without_suffix.edges", True, False),  # Detected by content, not by name.
    ("crlf.edges", False, True),
])
def test_round_trip(tmp_path, name, compress, crlf):
  text = _CYCLE.replace("\n", "\r\n") if crlf else _CYCLE
  graph = data.load_edge_list(_write(tmp_path, text, name, compress))
  np.testing.assert_array_equal(graph.edges, _CYCLE_EDGES)
  assert graph.edges.dtype == np.int32
  np.testing.assert_array_equal(graph.ids, np.arange(6))  # contiguous: kept as they are
  assert (graph.num_nodes, graph.num_edges) == (6, 6)
  np.testing.assert_array_equal(graph.degrees(), [2, 2, 3, 2, 2, 1])
  assert not graph.is_tree() and graph.num_components() == 1


def test_non_contiguous_ids_are_relabelled_in_id_order(tmp_path):
  graph = data.load_edge_list(_write(tmp_path, "30 10\n10 7\n7 100\n"))
  np.testing.assert_array_equal(graph.ids, [7, 10, 30, 100])
  # Every edge maps back to a line of the file.
  original = {tuple(sorted(graph.ids[e])) for e in graph.edges}
  assert original == {(10, 30), (7, 10), (7, 100)}
  assert graph.is_tree()


def test_graph_is_frozen(tmp_path):
  graph = data.load_edge_list(_write(tmp_path, _CYCLE))
  with pytest.raises(ValueError):
    graph.edges[0, 0] = 3
  with pytest.raises(ValueError):
    graph.ids[0] = 3
  with pytest.raises(AttributeError):
    graph.source = "x"


# line None: the error is about the whole file.
@pytest.mark.parametrize("text, line, found", [
    ("0 1\n2\n", 2, "found 1 field"),
    ("0 1\n1 2 0.5\n", 2, "found 3 field"),
    ("0 1\n\n1 x\n", 3, "non-integer id"),
    ("0 1\n1 -2\n", 2, "negative id"),
    ("0 1\n3 3\n", 2, "self-loop"),
    ("# only a comment\n\n", None, "found no edges"),
])
def test_format_errors_name_file_and_line(tmp_path, text, line, found):
  path = _write(tmp_path, text)
  with pytest.raises(data.EdgeListFormatError) as info:
    data.load_edge_list(path)
  message = str(info.value)
  where = f"{path}:{line}:" if line else f"{path}:"
  assert message.startswith(where), message
  assert found in message and "expected" in message


def test_missing_file_says_how_to_find_the_data(tmp_path):
  with pytest.raises(FileNotFoundError, match="EMBEDLAB_DATA_DIR"):
    data.load_edge_list(tmp_path / "nope.edges")


def _tree_depths(parent):
  depth = np.full(parent.size, -1)
  for v in range(parent.size):
    path = [v]
    while parent[path[-1]] >= 0:
      path.append(parent[path[-1]])
    depth[v] = len(path) - 1
  return depth


@pytest.mark.parametrize("text, root, roots", [
    (_CYCLE, 0, [0]),
    (_CYCLE, 3, [3]),
    ("0 1\n1 2\n3 4\n5 6\n6 7\n", 1, [1, 3, 5]),  # three components: a forest
])
def test_bfs_tree_is_a_shortest_path_spanning_forest(tmp_path, text, root, roots):
  graph = data.load_edge_list(_write(tmp_path, text))
  parent = data.bfs_tree(graph, root=root)
  np.testing.assert_array_equal(np.flatnonzero(parent < 0), roots)
  edges = {tuple(e) for e in graph.edges}
  kept = [tuple(sorted((v, p))) for v, p in enumerate(parent) if p >= 0]
  assert set(kept) <= edges and len(kept) == graph.num_nodes - len(roots)
  # Breadth first: tree depth == graph distance from the root of the node's component.
  depth = _tree_depths(parent)
  for r in roots:
    for v, hops in _plain_bfs(edges, r).items():
      assert depth[v] == hops


def _plain_bfs(edges, source):
  """``{node: hops}`` over the nodes reachable from ``source``, one edge at a time."""
  neighbours = {}
  for a, b in edges:
    neighbours.setdefault(a, []).append(b)
    neighbours.setdefault(b, []).append(a)
  dist, frontier = {source: 0}, [source]
  while frontier:
    following = []
    for a in frontier:
      for b in neighbours.get(a, []):
        if b not in dist:
          dist[b] = dist[a] + 1
          following.append(b)
    frontier = following
  return dist


def test_bfs_tree_rejects_a_bad_root(tmp_path):
  graph = data.load_edge_list(_write(tmp_path, _CYCLE))
  with pytest.raises(ValueError, match="root"):
    data.bfs_tree(graph, root=6)


@pytest.mark.parametrize("branching, depth, num_nodes", [(1, 3, 4), (2, 3, 15), (3, 2, 13),
                                                         (4, 0, 1)])
def test_balanced_tree(branching, depth, num_nodes):
  graph = data.balanced_tree(branching=branching, depth=depth)
  assert graph.num_nodes == num_nodes and graph.num_edges == num_nodes - 1
  if num_nodes > 1:
    assert graph.is_tree()
    parent = data.bfs_tree(graph)
    np.testing.assert_array_equal(parent[1:], (np.arange(1, num_nodes) - 1) // branching)


def test_named_tree_errors(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="Unknown tree 'oak'.*phylo"):
    data.load_named_tree("oak", data_dir=tmp_path)
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  with pytest.raises(ValueError, match="No data directory"):
    data.load_named_tree("phylo")
  with pytest.raises(FileNotFoundError, match="EMBEDLAB_DATA_DIR"):
    data.load_named_tree("phylo", data_dir=tmp_path)  # a folder without the file


# Sizes from the data README, section 7.
@pytest.mark.parametrize("name, num_nodes, num_edges, is_tree", [
    ("smalltree", 40, 39, True),
    ("phylo", 344, 343, True),
    ("diseasome", 516, 1188, False),
    ("csphd", 1025, 1043, False),
    ("wordnet", 74374, 75834, False),
])
def test_named_trees_from_the_shared_data(name, num_nodes, num_edges, is_tree):
  graph = data.load_named_tree(name, data_dir=data_dir_or_skip())
  assert (graph.num_nodes, graph.num_edges) == (num_nodes, num_edges)
  assert graph.is_tree() == is_tree
  assert os.path.basename(graph.source) == os.path.basename(data.TREES[name])
