"""The hierarchy task on a user's own file: ``dataset=PATH`` (and ``dataset_format``)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from embedlab import data
from embedlab import train
from tests.conftest import load_experiment, quiet_config, run_main

_config = functools.partial(quiet_config, load_experiment("hierarchy"))

# A ternary tree of depth 3 with a second parent for one leaf: 40 nodes, 39 + 1 direct links,
# and enough closure rows (103) for the smoke preset's batch of 32.
_BRANCHING, _DEPTH = 3, 3


def _links() -> list[tuple[str, str]]:
  """``(child, parent)`` names of the hierarchy; node ``i``'s parent is ``(i - 1) // 3``."""
  size = sum(_BRANCHING ** level for level in range(_DEPTH + 1))
  links = [(f"n{i:02d}", f"n{(i - 1) // _BRANCHING:02d}") for i in range(1, size)]
  return links + [("n39", "n01")]  # n39 is under n12 -> n03 -> n00; n01 is another branch


def _closure_rows() -> list[tuple[str, str]]:
  parents: dict[str, list[str]] = {}
  for child, parent in _links():
    parents.setdefault(child, []).append(parent)
  rows = set()
  for child in parents:
    stack = list(parents[child])
    while stack:
      above = stack.pop()
      rows.add((child, above))
      stack.extend(parents.get(above, []))
  return sorted(rows)


def _write(tmp_path, format: str):
  if format == "csv":
    text = "id1,id2,weight\n" + "".join(f"{c},{a},1\n" for c, a in _closure_rows())
    path = tmp_path / "tree.csv"
  elif format == "edges":
    text = "".join(f"{c}\t{p}\n" for c, p in _links())
    path = tmp_path / "tree_links.tsv"
  else:
    text = "".join(f"{c}\t{a}\n" for c, a in _closure_rows())
    path = tmp_path / "tree_closure.tsv"
  path.write_text(text)
  return path


@pytest.mark.slow
def test_each_file_format_trains_the_same_table(tmp_path):
  """A closure TSV, the reference CSV and the direct links give one closure, so one run."""
  vectors = {}
  for format, arg in [("tsv", ""), ("csv", ""), ("edges", ",dataset_format=edges")]:
    path = _write(tmp_path, format)
    workdir = tmp_path / format
    outcome = train.run(_config(f"smoke,dataset={path}{arg}"), workdir)
    metrics = outcome.results["metrics"]
    assert outcome.results["finished"]
    assert metrics["num_pairs"] == len(_closure_rows()) == 3 * 1 + 9 * 2 + 27 * 3 + 1
    assert metrics["num_queries"] == 39       # every node but the root has an ancestor
    stored = np.load(workdir / "embeddings.npz")
    assert stored["names"].tolist() == sorted({name for row in _links() for name in row})
    vectors[format] = stored["vectors"]
  np.testing.assert_array_equal(vectors["csv"], vectors["tsv"])
  np.testing.assert_array_equal(vectors["edges"], vectors["tsv"])


@pytest.mark.slow
def test_the_command_line_takes_a_path(tmp_path):
  path = _write(tmp_path, "edges")
  workdir = tmp_path / "run"
  run_main(["--config", f"experiments/hierarchy.py:smoke,dataset={path},dataset_format=edges",
            "--workdir", str(workdir)])
  results = json.loads((workdir / "results.json").read_text())
  assert results["finished"] and results["metrics"]["num_pairs"] == 103


@pytest.mark.parametrize("format, text, line, found", [
    ("auto", "id1,id2,weight\nn01,n00,1\nn02,n00\n", 3, "found 2 comma-separated field(s)"),
    ("auto", "n01\tn00\nn02 n00\n", 2, "found 1 field"),
    ("edges", "n01\tn00\nn00\tn01\n", 2, "cycle"),
])
def test_a_malformed_file_stops_the_run_with_its_line(tmp_path, format, text, line, found):
  path = tmp_path / ("bad.csv" if "," in text else "bad.tsv")
  path.write_text(text)
  with pytest.raises(data.ClosureFormatError) as info:
    train.run(_config(f"smoke,dataset={path},dataset_format={format}"), tmp_path / "run")
  assert f"{path}:{line}:" in str(info.value) and found in str(info.value)


def test_a_path_that_does_not_exist_lists_the_registered_names(tmp_path):
  with pytest.raises(ValueError, match="Unknown closure .*mammals, nouns"):
    train.run(_config(f"smoke,dataset={tmp_path / 'absent.tsv'}"), tmp_path / "run")
