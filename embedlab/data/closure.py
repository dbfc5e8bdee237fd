"""Hierarchies from files: transitive closures (e.g. WordNet nouns) as integer edge lists.

The structure itself (:class:`~embedlab.graphs.Closure`, :class:`~embedlab.graphs.Csr`,
:func:`~embedlab.graphs.csr`) lives in :mod:`embedlab.graphs` and is re-exported here; this
module reads files and knows the named datasets. Three file formats (UTF-8, plain or gzipped,
detected from the content), selected by ``format``:

``"tsv"``: a closure, one row a line, no header::

  child<TAB>ancestor

  A row ``u<TAB>v`` says that ``v`` is a proper ancestor of ``u`` (hypernym and
  instance-hypernym links for WordNet, as in Nickel & Kiela, "Poincaré Embeddings for
  Learning Hierarchical Representations", NeurIPS 2017). gensim's ``PoincareRelations`` reads
  the same layout (two tab-separated nodes a line, ``kangaroo<TAB>mammal`` for "a kangaroo is
  a mammal"), so its relation files load as they are. The rows are used as given: they should
  already be transitively closed (use ``"edges"`` to have embedlab close them).

``"csv"``: the closure CSV of the reference implementation (facebookresearch/
poincare-embeddings), with a header::

  id1,id2,weight

  ``id1`` is the child, ``id2`` its ancestor; ``weight`` must parse as a number and is
  ignored. The header names the columns (any order, extra columns allowed and ignored, names
  case-insensitive); fields may be quoted as in any CSV.

``"edges"``: direct links only, one a line, no header, in the same column order::

  child<TAB>parent

  The second column is the parent. embedlab computes the transitive closure
  (:func:`embedlab.graphs.transitive_closure`) and refuses links that form a cycle, naming
  the nodes on it.

``"auto"`` reads CSV when the file name ends in ``.csv`` (or ``.csv.gz``) or its first line is
a header naming ``id1`` and ``id2``, else the closure TSV; an edge list is never guessed (its
rows look like a closure's), so ask for ``"edges"``. In the TSV formats blank lines and lines
starting with ``#`` are skipped; in every format anything else that does not match, a
self-loop, or bytes that are not UTF-8 raise :class:`ClosureFormatError` naming the file, the
1-based line and what was expected.

Node ids are positions in the sorted list of names, so the same file always gives the same ids,
whatever the row order. Edges are ``int32 [E, 2]`` rows ``(child id, ancestor id)``, sorted and
deduplicated.

Data that does not ship with the package is found through ``data_dir`` (``--config.data_dir``)
or the ``EMBEDLAB_DATA_DIR`` environment variable; nothing is downloaded.
"""

from __future__ import annotations

import csv
import gzip
import importlib.resources
import io
import os
import pathlib
from typing import Callable

import numpy as np

from embedlab.graphs import Closure
from embedlab.graphs import CycleError
from embedlab.graphs import csr
from embedlab.graphs import sorted_unique_edges
from embedlab.graphs import symmetrize
from embedlab.graphs import transitive_closure

DATA_DIR_ENV = "EMBEDLAB_DATA_DIR"
NOUN_CLOSURE_PATH = "wordnet/noun_closure.tsv.gz"
# Accepted by load_closure(format=...); "auto" picks "csv" or "tsv" (module docstring).
CLOSURE_FORMATS = ("auto", "tsv", "csv", "edges")
_MAMMAL_RESOURCE = "resources/mammal_closure.tsv"
_EXPECTED = "exactly two non-empty tab-separated fields 'child<TAB>ancestor'"
_EXPECTED_LINK = "exactly two non-empty tab-separated fields 'child<TAB>parent'"
_EXPECTED_CSV = ("a header naming the columns id1,id2,weight, then rows 'child,ancestor,weight' "
                 "(the reference implementation's closure CSV)")
_CSV_COLUMNS = ("id1", "id2", "weight")
_GZIP_MAGIC = b"\x1f\x8b"

__all__ = ["CLOSURES", "CLOSURE_FORMATS", "Closure", "ClosureFormatError", "DATA_DIR_ENV",
           "csr", "load_closure", "load_named_closure", "mammal_closure", "noun_closure",
           "read_data_text", "resolve_data_dir", "sorted_unique_edges", "symmetrize"]


class ClosureFormatError(ValueError):
  """A closure or edge file that does not follow its format."""


def read_data_text(path: pathlib.Path, *, kind: str = "Closure file",
                   error: type[ValueError] | None = None, expected: str = _EXPECTED) -> str:
  """The whole file as text; gzip is detected by its magic bytes, not the suffix.

  Shared by the data loaders: a missing file says how to point at the data folder, and bytes
  that are not UTF-8 raise ``error`` (default :class:`ClosureFormatError`) naming the file, the
  1-based line and ``expected``.
  """
  if not path.is_file():
    hint = (f" Set {DATA_DIR_ENV} (e.g. {DATA_DIR_ENV}=/path/to/data) or --config.data_dir "
            "to the folder that holds the data.")
    raise FileNotFoundError(f"{kind} not found: '{path}'." + hint)
  raw = path.read_bytes()
  if raw[:2] == _GZIP_MAGIC:
    raw = gzip.decompress(raw)
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    raise (error or ClosureFormatError)(f"{path}:{line}: not valid UTF-8 ({e.reason}); "
                                        f"expected {expected}.") from None


def _describe(line: str) -> str:
  num_fields = line.count("\t") + 1
  shown = line if len(line) <= 80 else line[:77] + "..."
  return f"{num_fields} field(s) in {shown!r}"


def _read_pairs(text: str, path: pathlib.Path, *, upper: str):
  """``(children, uppers, line numbers)`` of a two-column TSV; ``upper`` names column 2."""
  expected = _EXPECTED if upper == "ancestor" else _EXPECTED_LINK
  children, uppers, lines = [], [], []
  # A plain loop over str.split is the fast path here (~1 s for the 743k-line noun closure);
  # every check is a cheap comparison so the error can name the exact line.
  for number, line in enumerate(text.split("\n"), start=1):
    line = line.rstrip("\r")  # Tolerate Windows line ends.
    if not line or line[0] == "#":
      continue
    fields = line.split("\t")
    if len(fields) != 2:
      raise ClosureFormatError(f"{path}:{number}: found {_describe(line)}; expected {expected}.")
    child, above = fields
    if not child.strip() or not above.strip():
      which = "child" if not child.strip() else upper
      raise ClosureFormatError(f"{path}:{number}: found an empty {which} field in {line!r}; "
                               f"expected {expected}.")
    if child == above:
      raise ClosureFormatError(f"{path}:{number}: found the self-loop {line!r}; a row names a "
                               f"*proper* {upper}, expected child != {upper}.")
    children.append(child)
    uppers.append(above)
    lines.append(number)
  if not children:
    raise ClosureFormatError(f"{path}: found no edges (the file is empty or holds only blank "
                             f"and '#' lines); expected lines of {expected}.")
  return children, uppers, lines


def _read_csv(text: str, path: pathlib.Path):
  """``(children, ancestors, line numbers)`` of the reference implementation's closure CSV."""
  reader = csv.reader(io.StringIO(text, newline=""))
  columns = None
  children, ancestors, lines = [], [], []
  for row in reader:
    number = reader.line_num
    if not row or not any(field.strip() for field in row):
      continue
    if columns is None:
      names = [field.strip().lower() for field in row]
      names[0] = names[0].lstrip("\ufeff")
      missing = [name for name in _CSV_COLUMNS if names.count(name) != 1]
      if missing:
        raise ClosureFormatError(f"{path}:{number}: found the header {','.join(row)!r} "
                                 f"(no single {', '.join(missing)} column); expected "
                                 f"{_EXPECTED_CSV}.")
      columns = [names.index(name) for name in _CSV_COLUMNS]
      header, width = ",".join(names), len(names)
      continue
    if len(row) != width:
      raise ClosureFormatError(f"{path}:{number}: found {len(row)} comma-separated field(s) in "
                               f"{','.join(row)!r}; expected {width}, as in the header "
                               f"{header!r}.")
    child, ancestor, weight = (row[i] for i in columns)
    if not child.strip() or not ancestor.strip():
      which = "id1 (child)" if not child.strip() else "id2 (ancestor)"
      raise ClosureFormatError(f"{path}:{number}: found an empty {which} field; expected "
                               f"{_EXPECTED_CSV}.")
    try:
      float(weight)
    except ValueError:
      raise ClosureFormatError(f"{path}:{number}: found the weight {weight!r}; expected a "
                               "number in the weight column of id1,id2,weight.") from None
    if child == ancestor:
      raise ClosureFormatError(f"{path}:{number}: found the self-loop {child!r} -> "
                               f"{ancestor!r}; a row names a *proper* ancestor, expected "
                               "id1 != id2.")
    children.append(child)
    ancestors.append(ancestor)
    lines.append(number)
  if columns is None or not children:
    found = "no header" if columns is None else "a header but no rows"
    raise ClosureFormatError(f"{path}: found {found}; expected {_EXPECTED_CSV}.")
  return children, ancestors, lines


def _numbered(children: list[str], uppers: list[str]):
  """Sorted names and ``int64 [E, 2]`` rows of ids."""
  # A dict lookup is ~7x faster than np.unique(..., return_inverse=True) on 1.5M strings.
  names = sorted(set(children).union(uppers))
  ids = {name: i for i, name in enumerate(names)}
  rows = np.empty((len(children), 2), np.int64)
  rows[:, 0] = [ids[name] for name in children]
  rows[:, 1] = [ids[name] for name in uppers]
  return names, rows


def _sniff(path: pathlib.Path, text: str) -> str:
  """``"csv"`` or ``"tsv"`` for ``format="auto"`` (see the module docstring)."""
  if path.name.lower().endswith((".csv", ".csv.gz")):
    return "csv"
  first = next((line for line in text.split("\n", 64)[:64] if line.strip()), "")
  fields = [field.strip().strip('"').lower() for field in first.lstrip("\ufeff").split(",")]
  return "csv" if "id1" in fields and "id2" in fields else "tsv"


def load_closure(path: str | os.PathLike, *, format: str = "auto") -> Closure:
  """Reads a closure from a file (plain or gzipped) in one of the formats of the module doc.

  Args:
    path: the file; gzip compression is detected from the content.
    format: ``"auto"``, ``"tsv"`` (``child<TAB>ancestor`` closure rows), ``"csv"`` (the
      reference implementation's ``id1,id2,weight``) or ``"edges"`` (``child<TAB>parent``
      direct links, closed here).

  Returns:
    The :class:`Closure`, ids assigned by sorted name.

  Raises:
    FileNotFoundError: the file does not exist (the message says how to point
      ``EMBEDLAB_DATA_DIR`` at the data).
    ClosureFormatError: a line that does not match the format, a self-loop, bytes that are not
      UTF-8, no rows, or (``"edges"``) links with a cycle. The message names the file and, for
      a line, its 1-based number.
    ValueError: an unknown ``format``.
  """
  if format not in CLOSURE_FORMATS:
    raise ValueError(f"unknown closure format {format!r}; expected one of "
                     f"{', '.join(CLOSURE_FORMATS)}.")
  path = pathlib.Path(path)
  expected = {"csv": _EXPECTED_CSV, "edges": _EXPECTED_LINK}.get(format, _EXPECTED)
  text = read_data_text(path, expected=expected)
  if format == "auto":
    format = _sniff(path, text)
  if format == "csv":
    names, rows = _numbered(*_read_csv(text, path)[:2])
  else:
    children, uppers, lines = _read_pairs(text, path, upper="parent" if format == "edges"
                                          else "ancestor")
    names, rows = _numbered(children, uppers)
    if format == "edges":
      try:
        rows = transitive_closure(rows, len(names))
      except CycleError as e:
        raise _cycle_error(path, names, rows, lines, e.cycle) from None
  return Closure(names=tuple(names), edges=sorted_unique_edges(rows, len(names)))


def _cycle_error(path, names, rows, lines, cycle) -> ClosureFormatError:
  """The error for links with a cycle: its nodes by name and the line of one of its links."""
  link = (cycle[0], cycle[1 % len(cycle)])
  line = next(number for (child, parent), number in zip(rows.tolist(), lines)
              if (child, parent) == link)
  shown = " -> ".join(names[i] for i in cycle + cycle[:1])
  return ClosureFormatError(f"{path}:{line}: the links form a cycle, so they have no "
                            f"transitive closure: {shown} (each node the child of the next; "
                            f"{names[cycle[0]]!r} is on it); expected links of a DAG.")


def mammal_closure() -> Closure:
  """The WordNet mammal subtree closure shipped with the package (1,182 nodes, 6,542 edges).

  Node set: ``mammal.n.01`` and all its descendants in the noun closure; every noun-closure
  edge between two of them (see the data README, section 3).
  """
  resource = importlib.resources.files("embedlab.data").joinpath(_MAMMAL_RESOURCE)
  with importlib.resources.as_file(resource) as path:
    return load_closure(path, format="tsv")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The data folder: ``data_dir`` if given, else ``$EMBEDLAB_DATA_DIR``.

  Raises:
    ValueError: neither is set.
    FileNotFoundError: the folder does not exist.
  """
  how = (f"pass --config.data_dir=PATH or set the environment variable, e.g. "
         f"{DATA_DIR_ENV}=/path/to/data")
  if data_dir is None or str(data_dir) == "":
    data_dir = os.environ.get(DATA_DIR_ENV) or None
    source = f"${DATA_DIR_ENV}"
  else:
    source = "data_dir"
  if data_dir is None:
    raise ValueError(f"No data directory given: {how}.")
  path = pathlib.Path(data_dir).expanduser()
  if not path.is_dir():
    raise FileNotFoundError(f"Data directory {str(path)!r} (from {source}) does not exist or "
                            f"is not a folder: {how}.")
  return path


def noun_closure(data_dir: str | os.PathLike | None = None) -> Closure:
  """The WordNet noun closure ``<data_dir>/wordnet/noun_closure.tsv.gz``.

  82,115 nodes and 743,241 edges (hypernym and instance-hypernym links); ~2 s to load.
  """
  return load_closure(resolve_data_dir(data_dir) / NOUN_CLOSURE_PATH, format="tsv")


def _mammals(data_dir):
  del data_dir  # Shipped inside the package.
  return mammal_closure()


# Named closures for configs (`config.dataset = "mammals"`); each takes `data_dir`.
CLOSURES: dict[str, Callable[[str | os.PathLike | None], Closure]] = {
    "mammals": _mammals,
    "nouns": noun_closure,
}


def load_named_closure(name_or_path: str | os.PathLike, *,
                       data_dir: str | os.PathLike | None = None,
                       format: str = "auto") -> Closure:
  """Loads the closure registered as ``name_or_path`` in :data:`CLOSURES`, or else the file.

  A registered name wins over a file of the same name; a relative path is taken from the
  working directory (not from ``data_dir``).

  Args:
    name_or_path: ``"mammals"``, ``"nouns"`` or a path to a closure or edge file.
    data_dir: the data folder of the registered closures that need one.
    format: for a file, one of :data:`CLOSURE_FORMATS` (see :func:`load_closure`); a
      registered closure takes only ``"auto"``.

  Raises:
    ValueError: neither a registered name nor an existing file (the message lists the valid
      names), or a ``format`` other than ``"auto"`` for a registered name.
  """
  name = str(name_or_path)
  if name in CLOSURES:
    if format != "auto":
      raise ValueError(f"format={format!r} applies to closure files; {name!r} is a registered "
                       "closure, which needs format='auto'.")
    return CLOSURES[name](data_dir)
  path = pathlib.Path(name).expanduser()
  if not path.is_file():
    raise ValueError(f"Unknown closure {name!r}: neither a registered name "
                     f"({', '.join(sorted(CLOSURES))}) nor an existing file.")
  return load_closure(path, format=format)
