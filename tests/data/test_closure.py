"""Tests for embedlab.data.closure: the file formats, their errors, packaged and named closures."""

import gzip
import os
import pathlib

import numpy as np
import pytest

from embedlab import data
from embedlab import graphs
from embedlab.data import closure

# Rows out of order, one duplicate, a comment and a blank line.
_SMALL = "b\ta\n# a comment\nc\ta\n\nc\tb\nb\ta\nd\tc\n"
_SMALL_NAMES = ("a", "b", "c", "d")
# Ids by sorted name: a=0, b=1, c=2, d=3.
_SMALL_EDGES = [[1, 0], [2, 0], [2, 1], [3, 2]]


def _write(tmp_path, text, name="closure.tsv", compress=False):
  path = tmp_path / name
  raw = text.encode("utf-8")
  path.write_bytes(gzip.compress(raw) if compress else raw)
  return path


@pytest.mark.parametrize("name, compress", [
    ("closure.tsv", False),
    ("closure.tsv.gz", True),
    ("gzipped_without_suffix.tsv", True),  # Detected by content, not by name.
    ("closure_crlf.tsv", False),
])
def test_round_trip(tmp_path, name, compress):
  text = _SMALL.replace("\n", "\r\n") if "crlf" in name else _SMALL
  result = data.load_closure(_write(tmp_path, text, name, compress))
  assert result.names == _SMALL_NAMES
  assert result.edges.dtype == np.int32
  np.testing.assert_array_equal(result.edges, _SMALL_EDGES)
  assert (result.num_nodes, result.num_edges) == (4, 4)
  assert result.name_to_id() == {"a": 0, "b": 1, "c": 2, "d": 3}
  names = np.array(result.names)
  # Every edge reads back as a row of the file.
  rows = {tuple(line.split("\t")) for line in _SMALL.splitlines() if line and line[0] != "#"}
  assert {tuple(names[e]) for e in result.edges} == rows


def test_closure_is_frozen(tmp_path):
  result = data.load_closure(_write(tmp_path, _SMALL))
  with pytest.raises(ValueError):
    result.edges[0, 0] = 3
  with pytest.raises(AttributeError):
    result.names = ()


# text None means "no file at all"; line None: errors about the whole file name no line.
@pytest.mark.parametrize("text, error, line, found", [
    ("a\tb\nlonely\n", data.ClosureFormatError, 2, "found 1 field"),
    ("a\tb\nc\td\te\n", data.ClosureFormatError, 2, "found 3 field"),
    ("a\tb\n# ok\n\tb\n", data.ClosureFormatError, 3, "found an empty child"),
    ("a\t\n", data.ClosureFormatError, 1, "found an empty ancestor"),
    ("a\tb\nb\tb\n", data.ClosureFormatError, 2, "found the self-loop"),
    ("a b\n", data.ClosureFormatError, 1, "found 1 field"),  # Spaces do not separate.
    ("a\tb\n\xff\tc\n", data.ClosureFormatError, 2, "not valid UTF-8"),
    ("", data.ClosureFormatError, None, "found no edges"),
    ("\n# only a comment\n", data.ClosureFormatError, None, "found no edges"),
    (None, FileNotFoundError, None, "EMBEDLAB_DATA_DIR"),
])
def test_malformed_input(tmp_path, text, error, line, found):
  path = tmp_path / "bad.tsv"
  if text is not None:
    path.write_bytes(text.encode("latin-1"))  # Latin-1 keeps \xff a non-UTF-8 byte.
  with pytest.raises(error) as info:
    data.load_closure(path)
  message = str(info.value)
  assert "bad.tsv" in message
  if line is not None:
    assert f"bad.tsv:{line}:" in message
  assert found in message
  if error is data.ClosureFormatError:
    assert "child<TAB>ancestor" in message or "child != ancestor" in message


def test_format_error_is_a_value_error():
  assert issubclass(data.ClosureFormatError, ValueError)


def test_structure_is_re_exported_from_graphs():
  assert data.Closure is graphs.Closure and data.csr is graphs.csr
  assert data.symmetrize is graphs.symmetrize


def test_mammal_closure():
  mammals = data.mammal_closure()
  assert (mammals.num_nodes, mammals.num_edges) == (1182, 6542)
  root = mammals.name_to_id()["mammal.n.01"]
  assert int(np.sum(mammals.edges[:, 1] == root)) == 1181
  assert list(mammals.names) == sorted(mammals.names)
  # Sorted, unique rows, no self-loops.
  keys = mammals.edges[:, 0].astype(np.int64) * mammals.num_nodes + mammals.edges[:, 1]
  assert np.all(np.diff(keys) > 0)
  assert not np.any(mammals.edges[:, 0] == mammals.edges[:, 1])


def test_load_named_closure_mammals_ignores_data_dir(tmp_path):
  mammals = data.load_named_closure("mammals", data_dir=tmp_path)
  assert mammals.num_nodes == 1182


def test_load_named_closure_unknown_name():
  with pytest.raises(ValueError, match="Unknown closure 'birds'.*mammals, nouns.*existing file"):
    data.load_named_closure("birds")


@pytest.mark.parametrize("argument, env, error, fragment", [
    (None, None, ValueError, "No data directory"),
    (None, "", ValueError, "No data directory"),
    ("{tmp}/absent", None, FileNotFoundError, "absent"),
    (None, "{tmp}/absent", FileNotFoundError, "$EMBEDLAB_DATA_DIR"),
    ("{tmp}/a_file", None, FileNotFoundError, "is not a folder"),
])
def test_resolve_data_dir_errors(tmp_path, monkeypatch, argument, env, error, fragment):
  (tmp_path / "a_file").write_text("x")
  if env is None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  else:
    monkeypatch.setenv(data.DATA_DIR_ENV, env.format(tmp=tmp_path))
  argument = None if argument is None else argument.format(tmp=tmp_path)
  with pytest.raises(error) as info:
    data.resolve_data_dir(argument)
  message = str(info.value)
  assert fragment in message
  assert "--config.data_dir" in message and "EMBEDLAB_DATA_DIR=/path/to/data" in message


@pytest.mark.parametrize("use_env", [False, True])
def test_resolve_data_dir(tmp_path, monkeypatch, use_env):
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path) if use_env else "/does/not/matter")
  assert data.resolve_data_dir(None if use_env else tmp_path) == tmp_path


def test_noun_closure_reads_from_data_dir(tmp_path):
  (tmp_path / "wordnet").mkdir()
  _write(tmp_path / "wordnet", _SMALL, "noun_closure.tsv.gz", compress=True)
  nouns = data.load_named_closure("nouns", data_dir=tmp_path)
  assert nouns.names == _SMALL_NAMES


def test_noun_closure_missing_file_names_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="noun_closure.tsv.gz.*EMBEDLAB_DATA_DIR"):
    data.noun_closure(tmp_path)


def _shared_data_dir():
  path = os.environ.get(data.DATA_DIR_ENV)
  if not path or not (pathlib.Path(path) / closure.NOUN_CLOSURE_PATH).is_file():
    pytest.skip(f"set {data.DATA_DIR_ENV} to the shared data folder "
                "to test the full WordNet noun closure")
  return path


def test_full_noun_closure():
  nouns = data.noun_closure(_shared_data_dir())
  assert (nouns.num_nodes, nouns.num_edges) == (82115, 743241)
  mammals = data.mammal_closure()
  # The packaged mammal closure is the noun closure restricted to mammal.n.01's subtree.
  noun_id = nouns.name_to_id()
  members = np.array([noun_id[name] for name in mammals.names])
  to_mammal_id = np.full(nouns.num_nodes, -1)
  to_mammal_id[members] = np.arange(members.size)
  mapped = to_mammal_id[nouns.edges]
  # Both name lists are sorted, so the id map is monotone and keeps the rows sorted.
  np.testing.assert_array_equal(mapped[np.all(mapped >= 0, axis=1)], mammals.edges)


# ----------------------------------------------------------------------------------------------
# The three formats: one hierarchy written each way. r is the root; a and b under r; c under a
# and b (two parents); d under c. Ids by sorted name: a=0, b=1, c=2, d=3, r=4.

_H_NAMES = ("a", "b", "c", "d", "r")
_H_LINKS = [("a", "r"), ("b", "r"), ("c", "a"), ("c", "b"), ("d", "c")]
_H_ROWS = _H_LINKS + [("c", "r"), ("d", "a"), ("d", "b"), ("d", "r")]
_H_EDGES = [[0, 4], [1, 4], [2, 0], [2, 1], [2, 4], [3, 0], [3, 1], [3, 2], [3, 4]]


def _tsv(rows):
  return "".join(f"{child}\t{above}\n" for child, above in rows)


def _csv(rows, header="id1,id2,weight", row="{0},{1},1"):
  return header + "\n" + "".join(row.format(child, above) + "\n" for child, above in rows)


@pytest.mark.parametrize("text, name, format, compress", [
    (_tsv(_H_ROWS), "h.tsv", "tsv", False),
    (_tsv(_H_ROWS), "h.tsv", "auto", False),
    ("# a comment\n\n" + _tsv(_H_ROWS[::-1]), "h.txt", "auto", False),
    (_csv(_H_ROWS), "h.csv", "csv", False),
    (_csv(_H_ROWS), "h.csv", "auto", False),
    (_csv(_H_ROWS), "h.csv.gz", "auto", True),
    (_csv(_H_ROWS), "h_without_suffix.txt", "auto", False),      # by its header
    # Header variants: case and spaces, a byte-order mark, another column order, an extra
    # column, quoted fields, Windows line ends, a float weight.
    (_csv(_H_ROWS, header="ID1, Id2 ,WEIGHT"), "h.csv", "auto", False),
    ("\ufeff" + _csv(_H_ROWS), "h.csv", "auto", False),
    (_csv(_H_ROWS, header="weight,id2,id1", row="0.5,{1},{0}"), "h.csv", "csv", False),
    (_csv(_H_ROWS, header="id1,id2,weight,source", row="{0},{1},1,wordnet"), "h.csv", "csv",
     False),
    (_csv(_H_ROWS, row='"{0}","{1}","1e0"'), "h.csv", "csv", False),
    (_csv(_H_ROWS).replace("\n", "\r\n"), "h.csv", "auto", False),
    (_tsv(_H_LINKS), "h.edges", "edges", False),
    (_tsv(_H_LINKS[::-1] + _H_LINKS[:2]), "h.edges.gz", "edges", True),   # repeats are fine
    (_tsv(_H_ROWS), "h.edges", "edges", False),     # a closed file closes to itself
])
def test_each_format_gives_the_same_closure(tmp_path, text, name, format, compress):
  path = _write(tmp_path, text, name, compress)
  for loaded in (data.load_closure(path, format=format),
                 data.load_named_closure(str(path), format=format)):
    assert loaded.names == _H_NAMES
    np.testing.assert_array_equal(loaded.edges, _H_EDGES)


def _brute_closure(links):
  parents = {}
  for child, parent in links:
    parents.setdefault(child, set()).add(parent)
  rows = set()
  for child in parents:
    stack = list(parents[child])
    while stack:
      above = stack.pop()
      if (child, above) not in rows:
        rows.add((child, above))
        stack.extend(parents.get(above, ()))
  return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_edge_list_is_closed_like_the_brute_force(tmp_path, seed):
  rng = np.random.default_rng(seed)
  links = [(f"n{i}", f"n{int(p)}") for i in range(1, 80)
           for p in rng.choice(i, size=min(i, int(rng.integers(1, 4))), replace=False)]
  order = rng.permutation(len(links))
  loaded = data.load_closure(_write(tmp_path, _tsv([links[i] for i in order])), format="edges")
  names = np.asarray(loaded.names)
  assert {tuple(row) for row in names[loaded.edges]} == _brute_closure(links)


def test_the_direct_links_of_mammals_close_to_the_mammal_closure(tmp_path):
  mammals = data.mammal_closure()
  names = np.asarray(mammals.names)
  links = names[mammals.edges[mammals.direct_edge_mask]]
  loaded = data.load_closure(_write(tmp_path, _tsv(links.tolist()), "links.tsv"),
                             format="edges")
  assert loaded.names == mammals.names
  np.testing.assert_array_equal(loaded.edges, mammals.edges)


# (format, text, line or None, what the message must say)
@pytest.mark.parametrize("format, text, line, found", [
    ("csv", "b,a,1\n", 1, "found the header 'b,a,1'"),
    ("csv", "id1,id2\nb,a\n", 1, "no single weight column"),
    ("csv", "id1,id1,weight\nb,a,1\n", 1, "no single id1, id2 column"),
    ("csv", "id1,id2,weight\nb,a\n", 2, "found 2 comma-separated field(s)"),
    ("csv", "id1,id2,weight\nb,a,1\n\nc,a,heavy\n", 4, "found the weight 'heavy'"),
    ("csv", "id1,id2,weight\n,a,1\n", 2, "found an empty id1 (child) field"),
    ("csv", "id1,id2,weight\nb, ,1\n", 2, "found an empty id2 (ancestor) field"),
    ("csv", "id1,id2,weight\nb,b,1\n", 2, "found the self-loop"),
    ("csv", "id1,id2,weight\n", None, "a header but no rows"),
    ("csv", "", None, "found no header"),
    ("csv", "id1,id2,weight\nb,a,1\n\xff,a,1\n", 3, "not valid UTF-8"),
    ("edges", "b\ta\nc\n", 2, "found 1 field"),
    ("edges", "b\ta\nc\t\n", 2, "found an empty parent field"),
    ("edges", "b\ta\nc\tc\n", 2, "found the self-loop"),
    ("edges", "", None, "found no edges"),
    ("tsv", "b,a,1\n", 1, "found 1 field"),      # a CSV read as TSV: says what it expected
])
def test_malformed_files_name_the_file_and_line(tmp_path, format, text, line, found):
  path = tmp_path / "bad.txt"
  path.write_bytes(text.encode("latin-1"))
  with pytest.raises(data.ClosureFormatError) as info:
    data.load_closure(path, format=format)
  message = str(info.value)
  assert (f"bad.txt:{line}:" if line else "bad.txt:") in message
  assert found in message
  expected = {"csv": "id1,id2,weight", "edges": "child<TAB>parent",
              "tsv": "child<TAB>ancestor"}[format]
  assert expected in message or "!=" in message


@pytest.mark.parametrize("links, cycle, lines", [
    ([("a", "b"), ("b", "c"), ("c", "a")], {"a", "b", "c"}, {1, 2, 3}),
    # Only the nodes on the cycle are named, not x, which merely hangs below it.
    ([("x", "a"), ("a", "b"), ("b", "a"), ("r", "q")], {"a", "b"}, {2, 3}),
])
def test_an_edge_list_with_a_cycle_is_refused(tmp_path, links, cycle, lines):
  path = _write(tmp_path, _tsv(links), "cyclic.tsv")
  with pytest.raises(data.ClosureFormatError, match="cycle") as info:
    data.load_closure(path, format="edges")
  message = str(info.value)
  shown = message.split("closure: ")[1].split(" (")[0].split(" -> ")
  assert set(shown) == cycle and shown[0] == shown[-1]
  assert any(f"cyclic.tsv:{line}:" in message for line in lines)


def test_unknown_format_and_formats_of_registered_closures(tmp_path):
  path = _write(tmp_path, _tsv(_H_ROWS))
  with pytest.raises(ValueError, match="unknown closure format 'json'"):
    data.load_closure(path, format="json")
  with pytest.raises(ValueError, match="registered closure"):
    data.load_named_closure("mammals", format="csv")


def test_a_relative_path_is_read_from_the_working_directory(tmp_path, monkeypatch):
  _write(tmp_path, _tsv(_H_ROWS), "h.tsv")
  monkeypatch.chdir(tmp_path)
  assert data.load_named_closure("h.tsv").names == _H_NAMES
