r"""The WordNet noun closures, built from the WordNet 3.0 database files (no NLTK needed).

Reads ``data.noun`` and ``index.noun`` of a WordNet 3.0 ``dict`` folder (the documented
``wndb(5WN)`` format) and writes the two closures the hierarchy experiments use, in the layout
the loaders of :mod:`embedlab.data.closure` expect under ``EMBEDLAB_DATA_DIR``::

  python -m embedlab.data.wordnet --wordnet-dir WordNet-3.0/dict --out DATA_DIR
  # DATA_DIR/wordnet/noun_closure.tsv.gz   82,115 nodes, 743,241 rows
  # DATA_DIR/wordnet/mammal_closure.tsv    1,182 nodes, 6,542 rows

Definitions (those of Nickel & Kiela, "Poincaré Embeddings for Learning Hierarchical
Representations", NeurIPS 2017, and of their reference pipeline):

* Nodes are the noun synsets, named as NLTK names them: the synset's first lemma, lowercased,
  then ``.n.`` and a two-digit sense number, ``1 +`` the position of the synset's offset in
  that lemma's list of offsets in ``index.noun`` (``dog.n.01``).
* The noun closure has a row ``u<TAB>v`` for every proper ancestor ``v`` of ``u`` along
  hypernym (``@``) and instance-hypernym (``@i``) pointers; rows sorted, no header.
* The mammal closure keeps the rows ``(u, v)`` of the noun closure with both ``u`` and ``v`` in
  ``M = {mammal.n.01} ∪ {u : (u, mammal.n.01) is a row}``.

The format, per line of ``data.noun`` (license lines start with two spaces and are skipped)::

  offset lex_filenum n w_cnt(2 hex digits) [word lex_id(1 hex digit)]*w_cnt
      p_cnt(3 digits) [pointer_symbol offset pos source/target]*p_cnt | gloss

and per line of ``index.noun``::

  lemma n synset_cnt p_cnt [pointer_symbol]*p_cnt sense_cnt tagsense_cnt [offset]*synset_cnt

A line that does not follow it raises :class:`WordNetFormatError` naming the file, the 1-based
line and what was expected. Building both closures takes a few seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import pathlib
from typing import Iterable, Mapping, Sequence

from embedlab.data import closure as closure_lib

HYPERNYM_POINTERS = frozenset({"@", "@i"})  # hypernym, instance hypernym
MAMMAL_ROOT = "mammal.n.01"
NOUN_CLOSURE_FILE = closure_lib.NOUN_CLOSURE_PATH  # "wordnet/noun_closure.tsv.gz"
MAMMAL_CLOSURE_FILE = "wordnet/mammal_closure.tsv"

_DATA_EXPECTED = ("'offset lex_filenum n w_cnt [word lex_id]... p_cnt "
                  "[symbol offset pos source/target]... | gloss'")
_INDEX_EXPECTED = ("'lemma n synset_cnt p_cnt [symbol]... sense_cnt tagsense_cnt "
                   "[offset]...'")


class WordNetFormatError(ValueError):
  """A WordNet database line that does not follow the ``wndb(5WN)`` format."""


@dataclasses.dataclass(frozen=True)
class NounSynset:
  """One line of ``data.noun``.

  Attributes:
    offset: the synset's 8-digit byte offset, as written (its id in the database).
    first_lemma: the first word of the synset, as written (case kept).
    hypernyms: offsets of the ``@`` and ``@i`` pointers' targets, in file order.
    line: the 1-based line of ``data.noun`` it came from (for error messages).
  """

  offset: str
  first_lemma: str
  hypernyms: tuple[str, ...]
  line: int


def _lines(path: pathlib.Path) -> Iterable[tuple[int, str]]:
  """``(1-based number, line)`` of the database lines, license header skipped."""
  if not path.is_file():
    raise FileNotFoundError(f"WordNet file not found: '{path}'; --wordnet-dir must be the folder "
                            "that holds data.noun and index.noun (WordNet 3.0's 'dict').")
  text = closure_lib.read_data_text(path, kind="WordNet file", error=WordNetFormatError,
                                    expected="the WordNet wndb(5WN) format")
  for number, line in enumerate(text.split("\n"), start=1):
    line = line.rstrip("\r")  # copies with Windows line ends
    if line.strip() and not line.startswith("  "):
      yield number, line


def _is_offset(field: str) -> bool:
  return len(field) == 8 and field.isdigit()


def read_data_noun(path: str | pathlib.Path) -> list[NounSynset]:
  """Parses ``data.noun``.

  Raises:
    FileNotFoundError: no such file.
    WordNetFormatError: a line breaks the format (file, line and what was expected).
  """
  path = pathlib.Path(path)
  synsets = []
  for number, line in _lines(path):

    def bad(found: str, number=number) -> WordNetFormatError:
      return WordNetFormatError(f"{path}:{number}: {found}; expected {_DATA_EXPECTED}.")

    head, bar, _ = line.partition(" | ")
    if not bar:
      raise bad("no ' | ' before the gloss")
    fields = head.split()
    if len(fields) < 4 or not _is_offset(fields[0]) or fields[2] != "n":
      raise bad(f"the line starts {' '.join(fields[:4])!r}, not an 8-digit offset, a lexicographer "
                "file number and the part of speech 'n'")
    try:
      num_words = int(fields[3], 16)
    except ValueError:
      raise bad(f"w_cnt {fields[3]!r} is not a hexadecimal count") from None
    p_cnt_at = 4 + 2 * num_words
    if num_words < 1 or len(fields) <= p_cnt_at or not fields[p_cnt_at].isdigit():
      raise bad(f"{num_words} word(s) announced, then no 3-digit pointer count where it "
                "should be")
    num_pointers = int(fields[p_cnt_at])
    pointers = fields[p_cnt_at + 1:]
    if len(pointers) != 4 * num_pointers:
      raise bad(f"{num_pointers} pointer(s) announced but {len(pointers)} field(s) follow the "
                "count (4 per pointer)")
    hypernyms = []
    for i in range(0, len(pointers), 4):
      symbol, target, pos, _ = pointers[i:i + 4]
      if symbol in HYPERNYM_POINTERS:
        if not _is_offset(target) or pos != "n":
          raise bad(f"the hypernym pointer {' '.join(pointers[i:i + 4])!r} does not name an "
                    "8-digit noun offset")
        hypernyms.append(target)
    synsets.append(NounSynset(offset=fields[0], first_lemma=fields[4],
                              hypernyms=tuple(hypernyms), line=number))
  if not synsets:
    raise WordNetFormatError(f"{path}: found no synset line; expected lines of "
                             f"{_DATA_EXPECTED}.")
  return synsets


def read_index_noun(path: str | pathlib.Path) -> dict[str, list[str]]:
  """Parses ``index.noun``: ``{lemma: [synset offsets, in the file's (sense) order]}``.

  Raises:
    FileNotFoundError: no such file.
    WordNetFormatError: a line breaks the format (file, line and what was expected).
  """
  path = pathlib.Path(path)
  index = {}
  for number, line in _lines(path):
    fields = line.split()
    found = None
    if len(fields) < 6 or fields[1] != "n" or not (fields[2] + fields[3]).isdigit():
      found = f"the line starts {' '.join(fields[:4])!r}"
    else:
      num_synsets, num_pointers = int(fields[2]), int(fields[3])
      offsets = fields[6 + num_pointers:]
      if len(offsets) != num_synsets or not all(map(_is_offset, offsets)):
        found = (f"synset_cnt {num_synsets} and p_cnt {num_pointers}, then "
                 f"{len(offsets)} field(s) where {num_synsets} 8-digit offsets should be")
    if found:
      raise WordNetFormatError(f"{path}:{number}: found {found}; expected {_INDEX_EXPECTED}.")
    index[fields[0]] = offsets
  return index


def noun_hypernyms(wordnet_dir: str | pathlib.Path) -> dict[str, tuple[str, ...]]:
  """``{synset name: names of its direct hypernyms and instance hypernyms}``, every noun.

  Args:
    wordnet_dir: the folder holding ``data.noun`` and ``index.noun`` (WordNet 3.0's ``dict``,
      or NLTK's ``corpora/wordnet``).

  Raises:
    FileNotFoundError: a file is missing.
    WordNetFormatError: a malformed line, a first lemma without an ``index.noun`` entry that
      lists the synset, or a pointer to an offset that is not a synset of ``data.noun``.
  """
  wordnet_dir = pathlib.Path(wordnet_dir)
  data_path = wordnet_dir / "data.noun"
  index = read_index_noun(wordnet_dir / "index.noun")
  synsets = read_data_noun(data_path)
  names = {}
  for synset in synsets:
    lemma = synset.first_lemma.lower()
    offsets = index.get(lemma, ())
    if synset.offset not in offsets:
      raise WordNetFormatError(
          f"{data_path}:{synset.line}: synset {synset.offset}'s first lemma {lemma!r} has no "
          f"entry in index.noun that lists {synset.offset}; expected the two files of one "
          "WordNet release.")
    names[synset.offset] = f"{lemma}.n.{offsets.index(synset.offset) + 1:02d}"
  parents = {}
  for synset in synsets:
    missing = [o for o in synset.hypernyms if o not in names]
    if missing:
      raise WordNetFormatError(f"{data_path}:{synset.line}: a hypernym pointer names offset "
                               f"{missing[0]}, which is no synset of this file.")
    parents[names[synset.offset]] = tuple(names[o] for o in synset.hypernyms)
  return parents


def transitive_closure(parents: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
  """Every ``(node, proper ancestor)`` of a DAG given by its direct parents, sorted.

  Args:
    parents: ``{node: its direct parents}``; a parent need not be a key (then it is a root).

  Raises:
    ValueError: the parent links hold a cycle (the message names a node on it).
  """
  ancestors: dict[str, frozenset[str]] = {}
  for start in parents:
    # Iterative depth-first search: a deep chain must not hit Python's recursion limit.
    stack, on_path = [start], {start}
    while stack:
      node = stack[-1]
      pending = [p for p in parents.get(node, ()) if p not in ancestors]
      if pending:
        for p in pending:
          if p in on_path:
            raise ValueError(f"the parent links hold a cycle through {p!r}.")
        stack.append(pending[0])
        on_path.add(pending[0])
        continue
      stack.pop()
      on_path.discard(node)
      ancestors[node] = frozenset().union(
          *((p, *ancestors[p]) for p in parents.get(node, ())))
  return sorted((node, a) for node, above in ancestors.items() for a in above)


def subtree_closure(rows: Iterable[tuple[str, str]], root: str) -> list[tuple[str, str]]:
  """The rows of a closure among ``root`` and its descendants (the data's mammal rule).

  Raises:
    ValueError: ``root`` is the ancestor of no row.
  """
  rows = list(rows)
  members = {root} | {u for u, v in rows if v == root}
  if len(members) == 1:
    raise ValueError(f"{root!r} is the ancestor of no row of the closure.")
  return [(u, v) for u, v in rows if u in members and v in members]


def _tsv(rows: Iterable[tuple[str, str]]) -> bytes:
  return "".join(f"{u}\t{v}\n" for u, v in rows).encode("utf-8")


def write_closures(wordnet_dir: str | pathlib.Path, out_dir: str | pathlib.Path, *,
                   subtree_root: str = MAMMAL_ROOT) -> dict[str, int]:
  """Writes ``out_dir/wordnet/noun_closure.tsv.gz`` and ``out_dir/wordnet/mammal_closure.tsv``.

  The gzip stream carries no timestamp, so the same database gives the same bytes.

  Returns:
    Row counts: ``{"noun_closure": ..., "mammal_closure": ...}``.
  """
  rows = transitive_closure(noun_hypernyms(wordnet_dir))
  mammals = subtree_closure(rows, subtree_root)
  out_dir = pathlib.Path(out_dir)
  (out_dir / NOUN_CLOSURE_FILE).parent.mkdir(parents=True, exist_ok=True)
  with open(out_dir / NOUN_CLOSURE_FILE, "wb") as raw:
    with gzip.GzipFile(filename="noun_closure.tsv", fileobj=raw, mode="wb", mtime=0) as f:
      f.write(_tsv(rows))
  (out_dir / MAMMAL_CLOSURE_FILE).write_bytes(_tsv(mammals))
  return {"noun_closure": len(rows), "mammal_closure": len(mammals)}


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m embedlab.data.wordnet",
      description="Build the WordNet noun and mammal closures from the WordNet 3.0 database "
                  f"files: writes OUT/{NOUN_CLOSURE_FILE} and OUT/{MAMMAL_CLOSURE_FILE}.")
  parser.add_argument("--wordnet-dir", required=True,
                      help="folder with data.noun and index.noun (WordNet 3.0 'dict')")
  parser.add_argument("--out", required=True,
                      help="the data folder to write into (point EMBEDLAB_DATA_DIR at it)")
  args = parser.parse_args(argv)
  counts = write_closures(args.wordnet_dir, args.out)
  out = pathlib.Path(args.out)
  print(f"{out / NOUN_CLOSURE_FILE}: {counts['noun_closure']:,} rows")
  print(f"{out / MAMMAL_CLOSURE_FILE}: {counts['mammal_closure']:,} rows")


if __name__ == "__main__":
  main()
