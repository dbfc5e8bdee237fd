r"""Exports a run's embedding table for other tools: word2vec text or the TensorBoard projector.

  python -m embedlab.export WORKDIR --format word2vec --out mammals.txt
  python -m embedlab.export WORKDIR --format projector --out mammals_projector/

Reads ``WORKDIR/embeddings.npz``, as the runs write it:

* hierarchy runs (``experiments/hierarchy.py``): ``names [N]`` and ``vectors [N, d]``, one
  named row per node (plus ``geometry`` and ``curvature``);
* tree runs (``experiments/trees.py``): ``ids [N]`` and ``points [N, d]``, one row per node,
  named by its id in the edge file;
* metric-learning runs (``experiments/metric_learning.py``): ``class_names [C]`` and, per
  evaluation set (``unseen``, ``seen``), ``<set>_embeddings [n, d]`` and ``<set>_labels [n]``.
  Their items have no names, so they export to the projector only (``--set`` picks the set;
  the metadata holds each item's label and class name).

Formats:

* ``word2vec``: the text format of the word2vec tool, which gensim reads with
  ``KeyedVectors.load_word2vec_format(path)``: a header ``count dim``, then one line
  ``name v1 ... vd`` per row, space-separated, UTF-8. A name must not hold whitespace (fields
  are split on spaces); ``--space _`` replaces each whitespace character instead, and fails if
  two names then collide.
* ``projector``: ``PATH/vectors.tsv`` (one row per point, tab-separated values, no header) and
  ``PATH/metadata.tsv`` (the names, one a line, no header; or, for metric-learning runs, a
  header ``label<TAB>class`` and one such row per point), for the TensorBoard Embedding
  Projector (https://projector.tensorflow.org, "Load"). Tabs and line breaks in names fail (or
  are replaced with ``--space``).

The coordinates are written as stored, in the run's geometry: Poincaré-ball coordinates for
``poincare``, the ``d + 1`` hyperboloid coordinates for ``lorentz``, with the curvature the run
printed (``geometry`` and ``curvature`` in the npz). The projector's own PCA / t-SNE views are
Euclidean: read them as pictures of the coordinates, not of the hyperbolic distances.

Precision: every value is written as the shortest decimal that reads back as the same number in
the table's dtype (``--dtype`` converts first), so a reader that parses into that dtype gets
the stored table bit for bit. Read float64 tables as float64 (gensim:
``load_word2vec_format(path, datatype=numpy.float64)``; its default is float32). Tables built
far from the origin need this and more: the nested-caps tables place nodes at hyperbolic radius
~25 and beyond, where ``1 - |x|^2`` is ~1e-11 and a node's neighbours differ only in the last
digits of float64. Evaluate them in float64 with the Poincaré distance
``arcosh(1 + 2 |x - y|^2 / ((1 - |x|^2)(1 - |y|^2)))`` and no clamp: a typical guard that
clamps the denominator at 1e-15 merges the deepest nodes, and on
``mammals_caps_refined,nested_caps.margin=1.0`` (radius up to 28.8) it turns the exact mean rank
1.0 into 31.3; read as float32, the same table scores 9.5 (``docs/results/hierarchy.md``,
"Precision", has the commands).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from typing import Sequence

import numpy as np

FORMATS = ("word2vec", "projector")
EMBEDDINGS_FILE = "embeddings.npz"

_KINDS = {  # the npz keys that identify a run's kind -> what its rows are
    "hierarchy": ("names", "vectors"),
    "trees": ("ids", "points"),
    "metric_learning": ("class_names",),
}


@dataclasses.dataclass(frozen=True)
class Table:
  """The rows to export.

  Attributes:
    vectors: ``float [N, d]``, the stored coordinates.
    names: ``N`` row names (``None`` for metric-learning items, which have none).
    labels: ``int [N]`` class ids of metric-learning items, else ``None``.
    class_names: the class names ``labels`` index, else ``None``.
    geometry: the run's geometry name (``""`` if the npz does not say).
    curvature: the run's curvature (``None`` if the npz does not say).
  """

  vectors: np.ndarray
  names: tuple[str, ...] | None = None
  labels: np.ndarray | None = None
  class_names: tuple[str, ...] | None = None
  geometry: str = ""
  curvature: float | None = None


def _npz_path(workdir: pathlib.Path) -> pathlib.Path:
  path = workdir / EMBEDDINGS_FILE if workdir.is_dir() else workdir
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found: WORKDIR must be the --workdir of a finished "
                            f"run (it writes {EMBEDDINGS_FILE} at the end) or that file.")
  return path


def read_table(workdir: str | pathlib.Path, *, subset: str = "unseen") -> Table:
  """Reads a run's ``embeddings.npz`` (the workdir or the file itself).

  Args:
    workdir: the run's ``--workdir``, or the path of its ``embeddings.npz``.
    subset: for metric-learning runs, the evaluation set to export (``unseen`` or ``seen``).

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not a run's npz, a key is missing or malformed, or the values
      are not finite (the message names the file and the key).
  """
  path = _npz_path(pathlib.Path(workdir))
  try:
    stored = np.load(path, allow_pickle=False)
    keys = set(stored.files)
  except (OSError, ValueError, AttributeError) as e:
    raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e}).") from e
  with stored:
    kind = next((k for k, need in _KINDS.items() if set(need) <= keys), None)
    if kind is None:
      raise ValueError(f"{path}: holds {sorted(keys)}; expected the arrays of a hierarchy run "
                       "(names, vectors), a tree run (ids, points) or a metric-learning run "
                       "(class_names, <set>_embeddings, <set>_labels).")
    geometry = str(stored["geometry"]) if "geometry" in keys else ""
    curvature = float(stored["curvature"]) if "curvature" in keys else None
    if kind == "metric_learning":
      sets = sorted(k[:-len("_embeddings")] for k in keys if k.endswith("_embeddings"))
      if subset not in sets or f"{subset}_labels" not in keys:
        raise ValueError(f"{path}: no evaluation set {subset!r} (--set); the run wrote "
                         f"{sets}.")
      vectors = stored[f"{subset}_embeddings"]
      labels = stored[f"{subset}_labels"]
      class_names = tuple(str(n) for n in stored["class_names"])
      if labels.shape != vectors.shape[:1] or (
          labels.size and not 0 <= labels.min() <= labels.max() < len(class_names)):
        raise ValueError(f"{path}: {subset}_labels must hold one class id in "
                         f"[0, {len(class_names)}) per row of {subset}_embeddings.")
      table = Table(vectors, labels=labels, class_names=class_names, geometry=geometry,
                    curvature=curvature)
    else:
      name_key, vector_key = _KINDS[kind]
      vectors = stored[vector_key]
      names = tuple(str(n) for n in stored[name_key])
      if len(names) != vectors.shape[0]:
        raise ValueError(f"{path}: {len(names)} {name_key} for {vectors.shape[0]} rows of "
                         f"{vector_key}.")
      table = Table(vectors, names=names, geometry=geometry, curvature=curvature)
  if table.vectors.ndim != 2 or not np.issubdtype(table.vectors.dtype, np.floating):
    raise ValueError(f"{path}: the table must be a float [N, d] array, got "
                     f"{table.vectors.dtype} {table.vectors.shape}.")
  bad = np.flatnonzero(~np.isfinite(table.vectors).all(axis=1))
  if bad.size:
    raise ValueError(f"{path}: {bad.size} row(s) hold non-finite values (the first: row "
                     f"{bad[0]}); refusing to export a broken table.")
  return table


def format_rows(vectors: np.ndarray, sep: str) -> list[str]:
  """Each row as text: the shortest decimals that read back as the same numbers.

  ``str`` of a NumPy scalar is the shortest round-trip representation in its own dtype (Steele
  & White / Ryu style), so float32 values print as float32 digits and float64 values print
  with up to 17 significant digits; parsing them into the same dtype is exact.
  """
  return [sep.join(map(str, row)) for row in vectors]


def _clean_names(names: Sequence[str], *, forbidden, what: str, space: str | None) -> list[str]:
  """Names with ``forbidden`` characters replaced by ``space`` (or an error), checked unique."""
  cleaned = []
  for i, name in enumerate(names):
    if name == "":
      raise ValueError(f"row {i} has an empty name; {what} needs one per row.")
    if any(forbidden(ch) for ch in name):
      if space is None:
        raise ValueError(f"row {i}'s name {name!r} holds whitespace that {what} cannot carry; "
                         "pass --space CHAR (e.g. --space _) to replace it.")
      name = "".join(space if forbidden(ch) else ch for ch in name)
    cleaned.append(name)
  if space is not None:
    seen = {}
    for original, name in zip(names, cleaned):
      if seen.setdefault(name, original) != original:
        raise ValueError(f"names {seen[name]!r} and {original!r} both become {name!r} with "
                         f"--space {space!r}; choose another character.")
  return cleaned


def _cast(vectors: np.ndarray, dtype: str | None) -> np.ndarray:
  if dtype is None:
    return vectors
  with np.errstate(over="ignore"):
    cast = vectors.astype(dtype)
  if not np.isfinite(cast).all():
    raise ValueError(f"values of the table overflow {dtype}: keep the stored dtype "
                     f"({vectors.dtype}).")
  return cast


def write_word2vec(table: Table, out: str | pathlib.Path, *, dtype: str | None = None,
                   space: str | None = None) -> pathlib.Path:
  """Writes ``out`` in the word2vec text format (see the module docstring)."""
  if table.names is None:
    raise ValueError("word2vec needs one name per row, and a metric-learning run's items have "
                     "none: use --format projector (its metadata holds each item's class).")
  names = _clean_names(table.names, forbidden=str.isspace, what="the word2vec format",
                       space=space)
  vectors = _cast(table.vectors, dtype)
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  lines = [f"{vectors.shape[0]} {vectors.shape[1]}"]
  lines += [f"{name} {row}" for name, row in zip(names, format_rows(vectors, " "))]
  out.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return out


def write_projector(table: Table, out: str | pathlib.Path, *, dtype: str | None = None,
                    space: str | None = None) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes ``out/vectors.tsv`` and ``out/metadata.tsv`` (see the module docstring)."""
  line_breaks = "\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() splits on
  if table.names is not None:
    metadata = _clean_names(table.names, forbidden=line_breaks.__contains__,
                            what="a metadata.tsv row", space=space)
  else:
    classes = _clean_names(table.class_names, forbidden=line_breaks.__contains__,
                           what="a metadata.tsv row", space=space)
    metadata = ["label\tclass"] + [f"{label}\t{classes[label]}" for label in table.labels]
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  vectors_path, metadata_path = out / "vectors.tsv", out / "metadata.tsv"
  vectors_path.write_text("".join(row + "\n" for row in format_rows(_cast(table.vectors, dtype),
                                                                     "\t")), encoding="utf-8")
  metadata_path.write_text("".join(row + "\n" for row in metadata), encoding="utf-8")
  return vectors_path, metadata_path


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m embedlab.export",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description="Export a run's embeddings.npz in the word2vec text format (gensim's\n"
                  "KeyedVectors.load_word2vec_format) or as the TensorBoard projector's\n"
                  "vectors.tsv + metadata.tsv.",
      epilog="Precision: values are written with the shortest decimals that read back exactly "
             "in the table's dtype;\nread float64 tables as float64 (gensim: "
             "datatype=numpy.float64). Nested-caps tables (radius ~25)\nneed float64 and a "
             "Poincaré distance without a 1e-15 clamp on (1 - |x|^2)(1 - |y|^2): such a\n"
             "clamp turns mean rank 1.0 into 31.3 on one of them (docs/results/hierarchy.md).")
  parser.add_argument("workdir", help="the run's --workdir (or its embeddings.npz)")
  parser.add_argument("--format", required=True, choices=FORMATS)
  parser.add_argument("--out", required=True,
                      help="word2vec: the file to write; projector: the folder for the TSVs")
  parser.add_argument("--set", default="unseen", dest="subset",
                      help="metric-learning runs: the evaluation set to export (default: unseen)")
  parser.add_argument("--dtype", choices=("float32", "float64"), default=None,
                      help="convert the table first (default: keep the stored dtype)")
  parser.add_argument("--space", default=None, metavar="CHAR",
                      help="replace whitespace the format cannot carry in names by CHAR "
                           "(default: fail on such a name)")
  args = parser.parse_args(argv)
  try:
    table = read_table(args.workdir, subset=args.subset)
    if args.format == "word2vec":
      written = [write_word2vec(table, args.out, dtype=args.dtype, space=args.space)]
    else:
      written = list(write_projector(table, args.out, dtype=args.dtype, space=args.space))
  except (OSError, ValueError) as e:
    parser.exit(2, f"{parser.prog}: error: {e}\n")
  dtype = args.dtype or table.vectors.dtype.name
  where = f"{table.geometry or 'unknown'} geometry" + (
      f", curvature {table.curvature:g}" if table.curvature is not None else "")
  for path in written:
    print(f"{path}: {table.vectors.shape[0]:,} rows x {table.vectors.shape[1]} ({dtype}, "
          f"{where})", file=sys.stdout)


if __name__ == "__main__":
  main()
