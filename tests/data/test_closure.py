"""Tests for embedlab.data.closure: parsing, errors, CSR helpers, packaged and named closures."""

import gzip
import os
import pathlib

import numpy as np
import pytest

from embedlab import data
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


@pytest.mark.parametrize("edges, num_nodes, offsets, targets", [
    ([[2, 0], [0, 2], [0, 1], [2, 1]], 3, [0, 2, 2, 4], [1, 2, 0, 1]),
    ([[1, 0]], 3, [0, 0, 1, 1], [0]),
    (np.zeros((0, 2), np.int32), 2, [0, 0, 0], []),
])
def test_csr(edges, num_nodes, offsets, targets):
  got_offsets, got_targets = data.csr(edges, num_nodes)
  assert got_offsets.dtype == got_targets.dtype == np.int32
  np.testing.assert_array_equal(got_offsets, offsets)
  np.testing.assert_array_equal(got_targets, targets)


def test_csr_rejects_out_of_range_ids():
  with pytest.raises(ValueError, match="must lie in"):
    data.csr([[0, 3]], 3)


@pytest.mark.parametrize("edges, expected", [
    ([[1, 0], [2, 0]], [[0, 1], [0, 2], [1, 0], [2, 0]]),
    ([[1, 0], [0, 1], [1, 0]], [[0, 1], [1, 0]]),
])
def test_symmetrize(edges, expected):
  np.testing.assert_array_equal(data.symmetrize(edges), expected)


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
  with pytest.raises(ValueError, match="Unknown closure 'birds'.*mammals, nouns"):
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
