"""tfds builders written as array_record and read with as_data_source (no TensorFlow)."""

from __future__ import annotations

import gzip
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from embedlab.data import builders
from embedlab.data import features
from embedlab.data.builders import source
from embedlab.data.builders import wordnet_noun_gloss as gloss
from tests.conftest import ROOT, data_dir_or_skip

_NAMES = ["'hood.n.01", "1530s.n.01", "a.n.01", "a1.n.01", "a2.n.01", "b.n.01", "b1.n.01"]
# float16 corner values, bit for bit: -0, the smallest subnormal, the largest finite, 1 - ulp.
_SPECIAL = np.asarray([-0.0, 2.0 ** -24, 65504.0, 1.0 - 2.0 ** -11], np.float16)


def _gloss_arrays(names=tuple(_NAMES), seed=0):
  rng = np.random.default_rng(seed)
  embeddings = rng.standard_normal((len(names), 384)).astype(np.float16)
  embeddings[0, :_SPECIAL.size] = _SPECIAL
  return {"synsets": np.asarray(names), "features": embeddings,
          "model": np.asarray("test model"), "recipe": np.asarray("test recipe")}


def _write(data_dir: pathlib.Path, arrays) -> pathlib.Path:
  path = data_dir / gloss.SOURCE_PATH
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(path, **arrays)
  return path


def _version_dir(tfds_dir: pathlib.Path) -> pathlib.Path:
  return tfds_dir / "wordnet_noun_gloss" / str(gloss.WordnetNounGloss.VERSION)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
  return a.dtype == b.dtype == np.float16 and np.array_equal(a.view(np.uint16),
                                                             b.view(np.uint16))


def test_registry_names_match_the_tfds_names():
  for name, cls in builders.BUILDERS.items():
    assert cls.name == name
    assert issubclass(cls, tfds.core.GeneratorBasedBuilder) and cls.SOURCE_FILES


@pytest.mark.parametrize("names", [_NAMES, _NAMES[:1]])
def test_build_and_read_back_every_value(tmp_path, names):
  arrays = _gloss_arrays(names)
  _write(tmp_path / "data", arrays)
  builder = source.prepare(gloss.WordnetNounGloss, source_dir=tmp_path / "data",
                           tfds_dir=tmp_path / "tfds")
  shards = sorted(p.name for p in _version_dir(tmp_path / "tfds").iterdir())
  assert any(".array_record-" in s for s in shards) and "dataset_info.json" in shards
  records = builder.as_data_source(split="train")
  assert len(records) == len(names)
  for i, name in enumerate(names):  # one record per synset, in the file's row order
    record = records[i]
    assert record["synset"].decode() == name and record["index"] == i
    assert _same_bits(record["embedding"], arrays["features"][i])
  got_names, got = gloss.load(tmp_path / "data", tfds_dir=tmp_path / "tfds")
  assert got_names.tolist() == list(names) and _same_bits(got, arrays["features"])


def test_second_prepare_reuses_the_dataset(tmp_path, monkeypatch):
  arrays = _gloss_arrays()
  _write(tmp_path / "data", arrays)
  gloss.load(tmp_path / "data", tfds_dir=tmp_path / "tfds")
  files = sorted(_version_dir(tmp_path / "tfds").iterdir())
  stamps = [f.stat().st_mtime_ns for f in files]

  def no_rebuild(*args, **kwargs):
    raise AssertionError("download_and_prepare called on a prepared dataset")

  monkeypatch.setattr(gloss.WordnetNounGloss, "download_and_prepare", no_rebuild)
  names, got = gloss.load(tmp_path / "data", tfds_dir=tmp_path / "tfds")
  assert names.tolist() == _NAMES and _same_bits(got, arrays["features"])
  assert sorted(_version_dir(tmp_path / "tfds").iterdir()) == files
  assert [f.stat().st_mtime_ns for f in files] == stamps


def test_nothing_is_downloaded(tmp_path, monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError("a download was attempted")

  for method in ["download", "download_and_extract", "extract", "iter_archive",
                 "download_checksums"]:
    monkeypatch.setattr(tfds.download.DownloadManager, method, refuse)
  _write(tmp_path / "data", _gloss_arrays())
  gloss.load(tmp_path / "data", tfds_dir=tmp_path / "tfds")
  assert not (tmp_path / "tfds" / "downloads").exists()


def _bad_arrays(**changes):
  arrays = _gloss_arrays()
  arrays.update(changes)
  return {k: v for k, v in arrays.items() if v is not None}


_ARR = _gloss_arrays()
_NAN = _ARR["features"].copy()
_NAN[3, 7] = np.nan


@pytest.mark.parametrize("content, message", [
    (b"not a zip archive", "not a readable .npz"),
    (np.zeros(3), "not a readable .npz"),                       # a bare .npy under that name
    (_bad_arrays(features=None), r"missing \['features'\]"),
    (_bad_arrays(synsets=None), r"missing \['synsets'\]"),
    (_bad_arrays(features=_ARR["features"][:, :383]), r"'features' is float16 \[7, 383\]"),
    (_bad_arrays(features=_ARR["features"][:6]), r"'features' is float16 \[6, 384\] for 7"),
    (_bad_arrays(features=_ARR["features"].astype(np.float32)), "'features' is float32"),
    (_bad_arrays(synsets=np.arange(7)), r"'synsets' is int64 \[7\]"),
    (_bad_arrays(synsets=np.asarray(_NAMES).reshape(7, 1)), r"'synsets' is <U10 \[7, 1\]"),
    (_bad_arrays(synsets=np.asarray(_NAMES, object)), r"an object \(pickled\) array"),
    (_bad_arrays(synsets=np.asarray(_NAMES[::-1])), "rows 0 and 1 .* not strictly increasing"),
    (_bad_arrays(synsets=np.asarray(_NAMES[:3] + _NAMES[2:6])), "rows 2 and 3"),
    (_bad_arrays(features=_NAN), "'features' row 3 is not finite"),
])
def test_bad_source_files_are_refused_by_name(tmp_path, content, message):
  path = tmp_path / "data" / gloss.SOURCE_PATH
  path.parent.mkdir(parents=True)
  if isinstance(content, bytes):
    path.write_bytes(content)
  elif isinstance(content, dict):
    np.savez(path, **content)
  else:
    with open(path, "wb") as f:
      np.save(f, content)
  with pytest.raises(ValueError, match=message) as info:
    gloss.load(tmp_path / "data", tfds_dir=tmp_path / "tfds")
  assert str(path) in str(info.value) and "expected arrays 'synsets'" in str(info.value)
  assert not _version_dir(tmp_path / "tfds").exists()
  assert not list((tmp_path / "tfds" / "wordnet_noun_gloss").glob("*"))


def test_missing_source_names_the_path_and_the_variable(tmp_path, monkeypatch):
  (tmp_path / "wordnet").mkdir()
  with pytest.raises(FileNotFoundError, match="EMBEDLAB_DATA_DIR") as info:
    gloss.load(tmp_path, tfds_dir=tmp_path / "tfds")
  assert str(tmp_path / gloss.SOURCE_PATH) in str(info.value)
  monkeypatch.delenv("EMBEDLAB_DATA_DIR", raising=False)
  with pytest.raises(ValueError, match="EMBEDLAB_DATA_DIR"):
    gloss.load(tfds_dir=tmp_path / "tfds")
  assert not (tmp_path / "tfds").exists()


def test_a_dataset_from_another_source_is_not_reused(tmp_path):
  _write(tmp_path / "data", _gloss_arrays(seed=0))
  gloss.load(tmp_path / "data", tfds_dir=tmp_path / "tfds")
  changed = _gloss_arrays(seed=1)
  _write(tmp_path / "data", changed)
  with pytest.raises(ValueError, match="built from other source files") as info:
    gloss.load(tmp_path / "data", tfds_dir=tmp_path / "tfds")
  assert str(_version_dir(tmp_path / "tfds")) in str(info.value)
  _, got = gloss.load(tmp_path / "data", tfds_dir=tmp_path / "other")
  assert _same_bits(got, changed["features"])


# Dies (os._exit: no cleanup, like a kill) or raises after writing 3 of the 7 examples.
_INTERRUPT = """
import os, sys
from embedlab.data.builders import source, wordnet_noun_gloss as gloss
original = gloss.WordnetNounGloss._generate_examples
def interrupted(self, names, embeddings):
  for i, example in enumerate(original(self, names, embeddings)):
    if i == 3:
      if sys.argv[3] == "killed":
        os._exit(3)
      raise RuntimeError("interrupted")
    yield example
gloss.WordnetNounGloss._generate_examples = interrupted
source.prepare(gloss.WordnetNounGloss, source_dir=sys.argv[1], tfds_dir=sys.argv[2])
"""


@pytest.mark.parametrize("how, leftover", [("killed", True), ("exception", False)])
def test_an_interrupted_build_is_never_loaded(tmp_path, how, leftover):
  arrays = _gloss_arrays()
  _write(tmp_path / "data", arrays)
  tfds_dir = tmp_path / "tfds"
  proc = subprocess.run([sys.executable, "-c", _INTERRUPT, str(tmp_path / "data"),
                         str(tfds_dir), how], cwd=ROOT, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode != 0, proc.stdout + proc.stderr
  assert not _version_dir(tfds_dir).exists()
  # tfds' temporary folder: left behind by a kill, removed on an exception; never read.
  incomplete = list((tfds_dir / "wordnet_noun_gloss").glob("incomplete*"))
  assert bool(incomplete) == leftover
  names, got = gloss.load(tmp_path / "data", tfds_dir=tfds_dir)
  assert names.tolist() == _NAMES and _same_bits(got, arrays["features"])


_PREPARE = """
import sys
from embedlab.data.builders import wordnet_noun_gloss as gloss
names, embeddings = gloss.load(sys.argv[1], tfds_dir=sys.argv[2])
print(len(names))
"""


def test_concurrent_builds_wait_for_each_other(tmp_path):
  arrays = _gloss_arrays()
  _write(tmp_path / "data", arrays)
  args = [sys.executable, "-c", _PREPARE, str(tmp_path / "data"), str(tmp_path / "tfds")]
  procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for _ in range(2)]
  for proc in procs:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.split()[-1] == str(len(_NAMES))
  _, got = gloss.load(tmp_path / "data", tfds_dir=tmp_path / "tfds")
  assert _same_bits(got, arrays["features"])


@pytest.mark.parametrize("env, expected", [
    ({"EMBEDLAB_TFDS_DIR": "{tmp}/mine", "XDG_CACHE_HOME": "{tmp}/xdg"}, "{tmp}/mine"),
    ({"XDG_CACHE_HOME": "{tmp}/xdg"}, "{tmp}/xdg/embedlab/tfds"),
    ({}, "{tmp}/home/.cache/embedlab/tfds"),
])
def test_default_tfds_dir(tmp_path, monkeypatch, env, expected):
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  for name in ["EMBEDLAB_TFDS_DIR", "XDG_CACHE_HOME"]:
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value.format(tmp=tmp_path))
  assert builders.default_tfds_dir() == pathlib.Path(expected.format(tmp=tmp_path))


def test_wordnet_gloss_features_come_through_the_builder(tmp_path):
  # root -> a -> a1, a2;  root -> b -> b1, '1530s', 'hood: classes at depth 1 are a and b.
  parents = {"a.n.01": "root", "b.n.01": "root", "a1.n.01": "a.n.01", "a2.n.01": "a.n.01",
             "b1.n.01": "b.n.01", "1530s.n.01": "b.n.01", "'hood.n.01": "b.n.01"}
  names = sorted([*parents, "root"])
  rows = sorted({(c, p) for c, p in parents.items()}
                | {(c, "root") for c, p in parents.items() if p != "root"})
  (tmp_path / "data" / "wordnet").mkdir(parents=True)
  with gzip.open(tmp_path / "data" / "wordnet" / "noun_closure.tsv.gz", "wt") as f:
    f.writelines(f"{c}\t{p}\n" for c, p in rows)
  arrays = _gloss_arrays(names)
  _write(tmp_path / "data", arrays)
  ds = features.wordnet_gloss(tmp_path / "data", depth=1, min_items=2, max_items=None,
                              tfds_dir=tmp_path / "tfds")
  assert ds.class_names == ("a.n.01", "b.n.01")
  by_class = {ds.class_names[l]: sorted(n for n, k in zip(ds.item_names, ds.labels) if k == l)
              for l in range(2)}
  assert by_class == {"a.n.01": ["a1.n.01", "a2.n.01"],
                      "b.n.01": ["'hood.n.01", "1530s.n.01", "b1.n.01"]}
  row = {n: i for i, n in enumerate(names)}
  expected = arrays["features"][[row[n] for n in ds.item_names]].astype(np.float32)
  np.testing.assert_array_equal(ds.features, expected)
  assert _version_dir(tmp_path / "tfds").is_dir()


@pytest.fixture(scope="session")
def real_gloss(tmp_path_factory):
  """The real 82,115 x 384 file prepared once per session into a temporary tfds folder."""
  data_dir = data_dir_or_skip()
  tfds_dir = tmp_path_factory.mktemp("tfds")
  builder = source.prepare(gloss.WordnetNounGloss, source_dir=data_dir, tfds_dir=tfds_dir)
  return data_dir, builder, gloss.read_all(builder)


def test_the_real_file_round_trips(real_gloss):
  data_dir, builder, (names, embeddings) = real_gloss
  with np.load(data_dir / gloss.SOURCE_PATH) as stored:
    expected_names, expected = stored["synsets"], stored["features"]
  assert expected.shape == (82115, 384)     # shared/data README, section 9
  assert len(builder.as_data_source(split="train")) == 82115
  assert embeddings.shape == (82115, 384) and names.tolist() == expected_names.tolist()
  assert _same_bits(embeddings, expected)
  records = builder.as_data_source(split="train")
  for i in [0, 1, 41_057, 82_114]:
    assert records[i]["synset"].decode() == expected_names[i] and records[i]["index"] == i
    assert _same_bits(records[i]["embedding"], expected[i])
