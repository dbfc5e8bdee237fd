"""Tests for embedlab.export: word2vec and projector files that read back as the stored tables."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from embedlab import export
from embedlab import train
from tests.conftest import load_experiment, quiet_config

# Names a closure file may hold (one tab-free field each): accents, CJK, quotes, '#', a
# backslash, a lone dot, leading digits. None holds whitespace.
_ODD_NAMES = ["dog.n.01", "café_au_lait.n.01", "日本.n.01", "o'neill\"s", "#hash", "back\\slash",
              ".", "123", "ünïcødé→∞"]
# Values whose shortest decimals are long, tiny, huge or subnormal in float64.
_F64_VALUES = [0.1, 1 / 3, -2 / 3, 1e-300, -1e300, 5e-324, 1 - 2**-53, 0.0, -0.0]


def _hierarchy_npz(tmp_path: pathlib.Path, names, vectors) -> pathlib.Path:
  workdir = tmp_path / "run"
  workdir.mkdir()
  np.savez(workdir / "embeddings.npz", names=np.asarray(names), vectors=vectors,
           geometry="poincare", curvature=1.0)
  return workdir


def _table(dtype: str, n: int = len(_ODD_NAMES), d: int = len(_F64_VALUES)) -> np.ndarray:
  rng = np.random.default_rng(0)
  x = rng.standard_normal((n, d)).astype(dtype) * np.logspace(-20, 20, d).astype(dtype)
  if dtype == "float64" and d == len(_F64_VALUES):
    x[0] = _F64_VALUES
  return x


def _read_word2vec(path: pathlib.Path, dtype: str) -> tuple[list[str], np.ndarray]:
  lines = path.read_text(encoding="utf-8").splitlines()
  count, dim = map(int, lines[0].split(" "))
  rows = [line.split(" ") for line in lines[1:]]
  assert len(rows) == count and all(len(r) == dim + 1 for r in rows)
  return [r[0] for r in rows], np.array([r[1:] for r in rows], dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_word2vec_round_trip_is_exact(tmp_path, dtype):
  x = _table(dtype)
  workdir = _hierarchy_npz(tmp_path, _ODD_NAMES, x)
  out = tmp_path / "w2v.txt"
  export.main([str(workdir), "--format", "word2vec", "--out", str(out)])
  names, back = _read_word2vec(out, dtype)
  assert names == _ODD_NAMES
  assert back.tobytes() == x.tobytes()  # bit for bit, signed zeros and subnormals included


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_projector_round_trip_is_exact(tmp_path, dtype):
  x = _table(dtype)
  workdir = _hierarchy_npz(tmp_path, _ODD_NAMES, x)
  out = tmp_path / "projector"
  export.main([str(workdir / "embeddings.npz"), "--format", "projector", "--out", str(out)])
  back = np.loadtxt(out / "vectors.tsv", delimiter="\t", dtype=dtype, ndmin=2)
  assert back.tobytes() == x.tobytes()
  # One column: no header, one name a line, in row order.
  assert (out / "metadata.tsv").read_text(encoding="utf-8").split("\n") == _ODD_NAMES + [""]


def test_dtype_option_converts_first(tmp_path):
  x = _table("float64", d=4)  # within float32's range
  workdir = _hierarchy_npz(tmp_path, _ODD_NAMES, x)
  out = tmp_path / "w2v32.txt"
  export.main([str(workdir), "--format", "word2vec", "--out", str(out), "--dtype", "float32"])
  _, back = _read_word2vec(out, "float32")
  np.testing.assert_array_equal(back, x.astype(np.float32))


def test_conversion_that_overflows_is_an_error(tmp_path):
  workdir = _hierarchy_npz(tmp_path, _ODD_NAMES, _table("float64"))  # holds -1e300
  with pytest.raises(ValueError, match="overflow float32"):
    export.write_word2vec(export.read_table(workdir), tmp_path / "x.txt", dtype="float32")


@pytest.mark.parametrize("fmt, name, space, expected", [
    ("word2vec", "two words", "_", "two_words"),
    ("word2vec", "tab\there", "_", "tab_here"),
    ("word2vec", "no\u00a0break", "-", "no-break"),  # any Unicode whitespace
    ("projector", "two words", None, "two words"),   # a space is fine in a TSV field
    ("projector", "tab\there", "_", "tab_here"),
    ("projector", "line\nbreak", " ", "line break"),
])
def test_whitespace_in_names(tmp_path, fmt, name, space, expected):
  names = ["a", name]
  workdir = _hierarchy_npz(tmp_path, names, _table("float32", n=2, d=3))
  out = tmp_path / "out"
  table = export.read_table(workdir)
  write = export.write_word2vec if fmt == "word2vec" else export.write_projector
  if space is not None:
    with pytest.raises(ValueError, match=r"row 1's name .* --space"):
      write(table, out)
  write(table, out, space=space)
  if fmt == "word2vec":
    assert _read_word2vec(out, "float32")[0] == ["a", expected]
  else:
    assert (out / "metadata.tsv").read_text(encoding="utf-8") == f"a\n{expected}\n"


def test_replacement_that_merges_two_names_is_an_error(tmp_path):
  workdir = _hierarchy_npz(tmp_path, ["a b", "a_b"], _table("float32", n=2, d=3))
  with pytest.raises(ValueError, match="'a b' and 'a_b' both become 'a_b'"):
    export.write_word2vec(export.read_table(workdir), tmp_path / "out.txt", space="_")


def _metric_learning_npz(tmp_path: pathlib.Path) -> pathlib.Path:
  workdir = tmp_path / "ml"
  workdir.mkdir()
  np.savez(workdir / "embeddings.npz", class_names=np.array(["five", "six\tsix"]),
           geometry="sphere", curvature=1.0,
           unseen_embeddings=_table("float32", n=3, d=4), unseen_labels=np.array([1, 0, 1]),
           seen_embeddings=_table("float32", n=2, d=4), seen_labels=np.array([0, 0]))
  return workdir


def test_metric_learning_exports_to_the_projector_with_labels(tmp_path):
  workdir = _metric_learning_npz(tmp_path)
  out = tmp_path / "projector"
  export.main([str(workdir), "--format", "projector", "--out", str(out), "--space", " "])
  back = np.loadtxt(out / "vectors.tsv", delimiter="\t", dtype=np.float32)
  assert back.tobytes() == _table("float32", n=3, d=4).tobytes()
  assert (out / "metadata.tsv").read_text().splitlines() == [
      "label\tclass", "1\tsix six", "0\tfive", "1\tsix six"]
  export.main([str(workdir), "--format", "projector", "--out", str(out), "--set", "seen",
               "--space", " "])
  assert (out / "metadata.tsv").read_text().splitlines()[1:] == ["0\tfive", "0\tfive"]


def test_tree_runs_are_named_by_node_id(tmp_path):
  workdir = tmp_path / "tree"
  workdir.mkdir()
  points = _table("float64", n=3, d=2)
  np.savez_compressed(workdir / "embeddings.npz", points=points, ids=np.array([7, 3, 10]),
                      method="combinatorial")
  out = tmp_path / "tree.txt"
  export.main([str(workdir), "--format", "word2vec", "--out", str(out)])
  names, back = _read_word2vec(out, "float64")
  assert names == ["7", "3", "10"] and back.tobytes() == points.tobytes()


def _bad_npz(tmp_path, kind):
  workdir = tmp_path / kind
  workdir.mkdir()
  path = workdir / "embeddings.npz"
  if kind == "not_npz":
    path.write_text("hello")
  elif kind == "unknown_keys":
    np.savez(path, table=np.zeros((2, 2)))
  elif kind == "non_finite":
    np.savez(path, names=np.array(["a", "b"]), vectors=np.array([[0.0, 1.0], [np.nan, 0.0]]))
  elif kind == "count_mismatch":
    np.savez(path, names=np.array(["a"]), vectors=np.zeros((2, 2)))
  elif kind == "labels_out_of_range":
    np.savez(path, class_names=np.array(["x"]), unseen_embeddings=np.zeros((2, 2)),
             unseen_labels=np.array([0, 1]))
  return workdir


@pytest.mark.parametrize("kind, words", [
    ("not_npz", "not a readable .npz"),
    ("unknown_keys", "holds ['table']; expected the arrays of a hierarchy run"),
    ("non_finite", "1 row(s) hold non-finite values (the first: row 1)"),
    ("count_mismatch", "1 names for 2 rows of vectors"),
    ("labels_out_of_range", "unseen_labels must hold one class id in [0, 1)"),
])
def test_bad_npz_names_the_file(tmp_path, kind, words):
  workdir = _bad_npz(tmp_path, kind)
  with pytest.raises(ValueError) as info:
    export.read_table(workdir)
  assert str(workdir / "embeddings.npz") in str(info.value) and words in str(info.value)


def test_missing_workdir_or_set(tmp_path):
  with pytest.raises(FileNotFoundError, match="embeddings.npz not found: WORKDIR must be"):
    export.read_table(tmp_path)
  with pytest.raises(ValueError, match=r"no evaluation set 'test' \(--set\); the run wrote "
                                       r"\['seen', 'unseen'\]"):
    export.read_table(_metric_learning_npz(tmp_path), subset="test")
  with pytest.raises(ValueError, match="items have none: use --format projector"):
    export.write_word2vec(export.read_table(tmp_path / "ml"), tmp_path / "x.txt")


@pytest.mark.parametrize("args, words", [
    (["--format", "word2vec"], "embeddings.npz not found"),       # an empty workdir
    (["--format", "glove"], "invalid choice: 'glove'"),
    (["--format", "projector", "--dtype", "float16"], "invalid choice: 'float16'"),
])
def test_cli_errors_exit_2_with_the_reason(tmp_path, capsys, args, words):
  with pytest.raises(SystemExit) as info:
    export.main([str(tmp_path), *args, "--out", str(tmp_path / "out")])
  assert info.value.code == 2
  assert words in capsys.readouterr().err


def test_gensim_loads_the_word2vec_file(tmp_path):
  gensim_models = pytest.importorskip("gensim.models")
  x = _table("float64")
  workdir = _hierarchy_npz(tmp_path, _ODD_NAMES, x)
  out = tmp_path / "w2v.txt"
  export.main([str(workdir), "--format", "word2vec", "--out", str(out)])
  kv = gensim_models.KeyedVectors.load_word2vec_format(str(out), datatype=np.float64)
  assert list(kv.index_to_key) == _ODD_NAMES
  assert kv.vectors.tobytes() == x.tobytes()
  default = gensim_models.KeyedVectors.load_word2vec_format(str(out))  # float32 by default
  np.testing.assert_array_equal(default.vectors, x.astype(np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("experiment, fmt", [
    ("hierarchy", "word2vec"), ("trees", "word2vec"), ("metric_learning", "projector")])
def test_export_of_a_smoke_run(tmp_path, experiment, fmt):
  """What the runs really write exports and reads back (guards the npz keys)."""
  workdir = tmp_path / "run"
  train.run(quiet_config(load_experiment(experiment), "smoke"), workdir)
  table = export.read_table(workdir)
  out = tmp_path / "out"
  export.main([str(workdir), "--format", fmt, "--out", str(out)])
  dtype = table.vectors.dtype.name
  if fmt == "word2vec":
    names, back = _read_word2vec(out, dtype)
    assert names == list(table.names)
  else:
    back = np.loadtxt(out / "vectors.tsv", delimiter="\t", dtype=dtype, ndmin=2)
  assert back.tobytes() == table.vectors.tobytes()
