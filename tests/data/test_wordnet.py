"""Tests for embedlab.data.wordnet: the noun closures built from the WordNet database files."""

from __future__ import annotations

import gzip
import pathlib

import pytest

from embedlab.data import wordnet
from tests.conftest import data_dir_or_skip

_LICENSE = "  1 This is a license line.  \n  2 So is this one.  \n"

# A tiny database in the wndb(5WN) format: dog.n.01 has two hypernyms (mammal, pet), the capital
# "Dog" is the lemma's second sense, Lassie is an instance (@i), and the pointers that are not
# hypernyms (~ hyponym, #m member holonym, ! antonym) must be ignored.
_DATA = _LICENSE + "".join(line + "\n" for line in [
    "00001000 03 n 01 entity 0 002 ~ 00002000 n 0000 ~ 00006000 n 0000 | that which exists",
    "00002000 03 n 01 organism 0 003 @ 00001000 n 0000 ~ 00003000 n 0000 ~ 00004000 n 0000 "
    "| a living thing",
    "00003000 05 n 01 mammal 0 002 @ 00002000 n 0000 ~ 00005000 n 0000 | warm-blooded",
    "00004000 05 n 01 pet 0 001 @ 00002000 n 0000 | a tame animal",
    "00005000 05 n 02 dog 0 domestic_dog 0 004 @ 00003000 n 0000 @ 00004000 n 0000 "
    "#m 00003000 n 0000 ~ 00007000 n 0000 | a member of the genus Canis",
    "00006000 08 n 01 Dog 0 002 @ 00001000 n 0000 ! 00004000 n 0101 | a constellation",
    "00007000 18 n 01 Lassie 0 001 @i 00005000 n 0000 | a dog of films",
])
_INDEX = _LICENSE + "".join(line + "\n" for line in [
    "dog n 2 2 @ ! 2 1 00005000 00006000",
    "domestic_dog n 1 1 @ 1 0 00005000",
    "entity n 1 1 ~ 1 1 00001000",
    "lassie n 1 1 @i 1 0 00007000",
    "mammal n 1 2 @ ~ 1 1 00003000",
    "organism n 1 2 @ ~ 1 1 00002000",
    "pet n 1 1 @ 1 0 00004000",
])

_ANCESTORS = {  # worked out by hand from the pointers above
    "dog.n.01": ["entity.n.01", "mammal.n.01", "organism.n.01", "pet.n.01"],
    "dog.n.02": ["entity.n.01"],
    "lassie.n.01": ["dog.n.01", "entity.n.01", "mammal.n.01", "organism.n.01", "pet.n.01"],
    "mammal.n.01": ["entity.n.01", "organism.n.01"],
    "organism.n.01": ["entity.n.01"],
    "pet.n.01": ["entity.n.01", "organism.n.01"],
}
# M = {mammal.n.01, dog.n.01, lassie.n.01}: pet, organism and entity are left out.
_MAMMAL_ROWS = [("dog.n.01", "mammal.n.01"), ("lassie.n.01", "dog.n.01"),
                ("lassie.n.01", "mammal.n.01")]


def _database(tmp_path: pathlib.Path, data: str = _DATA, index: str = _INDEX) -> pathlib.Path:
  folder = tmp_path / "dict"
  folder.mkdir()
  (folder / "data.noun").write_text(data)
  (folder / "index.noun").write_text(index)
  return folder


def _rows(text: str) -> list[tuple[str, str]]:
  return [tuple(line.split("\t")) for line in text.splitlines()]


def test_names_follow_nltk(tmp_path):
  parents = wordnet.noun_hypernyms(_database(tmp_path))
  assert parents == {
      "entity.n.01": (), "organism.n.01": ("entity.n.01",), "mammal.n.01": ("organism.n.01",),
      "pet.n.01": ("organism.n.01",), "dog.n.01": ("mammal.n.01", "pet.n.01"),
      "dog.n.02": ("entity.n.01",), "lassie.n.01": ("dog.n.01",)}


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_cli_writes_the_exact_closures(tmp_path, line_end):
  folder = _database(tmp_path, _DATA.replace("\n", line_end), _INDEX.replace("\n", line_end))
  out = tmp_path / "data"
  wordnet.main(["--wordnet-dir", str(folder), "--out", str(out)])
  nouns = gzip.decompress((out / "wordnet/noun_closure.tsv.gz").read_bytes()).decode()
  expected = sorted((u, v) for u, above in _ANCESTORS.items() for v in above)
  assert _rows(nouns) == expected
  assert _rows((out / "wordnet/mammal_closure.tsv").read_text()) == _MAMMAL_ROWS


def test_output_loads_and_is_reproducible(tmp_path):
  folder = _database(tmp_path)
  first, second = tmp_path / "a", tmp_path / "b"
  wordnet.write_closures(folder, first)
  wordnet.write_closures(folder, second)
  for name in (wordnet.NOUN_CLOSURE_FILE, wordnet.MAMMAL_CLOSURE_FILE):
    assert (first / name).read_bytes() == (second / name).read_bytes()
  from embedlab.data import closure
  loaded = closure.load_closure(first / wordnet.NOUN_CLOSURE_FILE)
  assert loaded.num_edges == sum(map(len, _ANCESTORS.values()))


def _replace(text: str, old: str, new: str) -> str:
  assert old in text
  return text.replace(old, new)


# (file, the line to break -> its broken form, the line number, words the message must hold).
# Line 3 is the first line after the two license lines.
@pytest.mark.parametrize("which, old, new, line, words", [
    ("data", "| that which exists", "that which exists", 3, "no ' | '"),
    ("data", "00004000 05 n 01 pet", "00004000 05 n zz pet", 6, "not a hexadecimal count"),
    ("data", "00004000 05 n 01 pet", "00004000 05 v 01 pet", 6, "part of speech 'n'"),
    ("data", "mammal 0 002 @", "mammal 0 003 @", 5, "3 pointer(s) announced but 8"),
    ("data", "pet 0 001 @ 00002000", "pet 0 001 @ 0002000", 6, "8-digit noun offset"),
    ("data", "@i 00005000", "@i 00009999", 9, "offset 00009999, which is no synset"),
    ("data", "01 Lassie 0", "01 Lassy 0", 9, "'lassy' has no entry in index.noun"),
    ("index", "pet n 1 1 @ 1 0 00004000", "pet n 2 1 @ 1 0 00004000", 9, "synset_cnt 2"),
    ("index", "entity n 1 1 ~ 1 1 00001000", "entity 1 1 ~ 1 1 00001000", 5, "starts"),
])
def test_malformed_line_names_file_and_line(tmp_path, which, old, new, line, words):
  data = _replace(_DATA, old, new) if which == "data" else _DATA
  index = _replace(_INDEX, old, new) if which == "index" else _INDEX
  folder = _database(tmp_path, data, index)
  with pytest.raises(wordnet.WordNetFormatError) as info:
    wordnet.noun_hypernyms(folder)
  message = str(info.value)
  assert f"{folder / f'{which}.noun'}:{line}:" in message
  assert words in message


def test_missing_file_says_which_folder(tmp_path):
  folder = _database(tmp_path)
  (folder / "index.noun").unlink()
  with pytest.raises(FileNotFoundError, match="index.noun.*--wordnet-dir"):
    wordnet.noun_hypernyms(folder)


@pytest.mark.parametrize("parents, node", [
    ({"a": ("b",), "b": ("a",)}, "a"),
    ({"a": ("b",), "b": ("c",), "c": ("b",)}, "b"),
    ({"a": ("a",)}, "a"),
])
def test_cycle_is_an_error(parents, node):
  with pytest.raises(ValueError, match=f"cycle through '{node}'"):
    wordnet.transitive_closure(parents)


def test_deep_chain_needs_no_recursion():
  depth = 1500  # past Python's default recursion limit
  parents = {f"n{i}": (f"n{i - 1}",) for i in range(1, depth)}
  rows = wordnet.transitive_closure(parents)
  assert len(rows) == depth * (depth - 1) // 2


def test_subtree_of_a_leaf_is_an_error():
  rows = wordnet.transitive_closure({"b": ("a",)})
  with pytest.raises(ValueError, match="'b' is the ancestor of no row"):
    wordnet.subtree_closure(rows, "b")


def test_rebuilds_the_shared_closures(tmp_path):
  data_dir = data_dir_or_skip()
  source = data_dir / "wordnet/corpora/wordnet"
  if not (source / "data.noun").is_file():
    pytest.skip(f"no WordNet database files under {source}")
  counts = wordnet.write_closures(source, tmp_path)
  assert counts == {"noun_closure": 743_241, "mammal_closure": 6_542}
  for name in (wordnet.NOUN_CLOSURE_FILE, wordnet.MAMMAL_CLOSURE_FILE):
    built = (tmp_path / name).read_bytes()
    shared = (data_dir / name).read_bytes()
    if name.endswith(".gz"):
      built, shared = gzip.decompress(built), gzip.decompress(shared)
    assert built == shared, name
