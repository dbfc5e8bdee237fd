"""The numbers the docs print for the cheap runs are what their commands print.

Each check reruns one documented command (``python -m embedlab.main --config
experiments/<ARG> --workdir <tmp>``) and compares its ``results.json`` metrics with every docs
table row that documents it. A row is found by one of its cells holding exactly ``row`` (the
ARG cell, e.g. `` `paper` ``); its columns are found by their header text. The docs' number is
read from the cell (the first number in it, bold or not) and the run's metric, rounded to the
same number of decimals, must print the same digits. A row that is missing fails too, so the
check cannot silently stop checking.

Machines: the documented values were measured on the machine named in :data:`DOCUMENTED_ON`
(the docs say so). XLA compiles for the host's vector units, so a trained run's float rounding,
and after hundreds of steps its low digits, differ between CPU models: on the machine of the
docs the comparison is exact at the shown precision; on another CPU model each value must lie
within the family's :data:`OTHER_CPU_TOLERANCE` of the documented one (and the test warns that
it could not compare exactly). Constructions without training (trees, nested caps) are exact
everywhere. Either way a number edited by hand beyond that tolerance fails anywhere.

Whole-preset runs: ``slow`` (~3 min in all on 2 CPU cores).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import warnings

import pytest

from tests.conftest import ROOT, data_dir_or_skip, run_main

# The CPU model (results.json's machine.processor) the checked docs numbers were measured on.
DOCUMENTED_ON = "Intel(R) Xeon(R) Processor"
# Largest |documented - computed| accepted on another CPU model, per experiment family. The
# evidence: with the same code a 2-core AMD EPYC VM gives the demo 1.0897 / 0.9768 where the
# Xeon gives 1.0893 / 0.9774, and the digits default 0.945 / 0.385 / 0.341 where the Xeon
# gives 0.951 / 0.376 / 0.358 (1,000 Adam steps amplify the rounding).
OTHER_CPU_TOLERANCE = {"hierarchy": 0.005, "trees": 0.0, "metric_learning": 0.03}

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_HIERARCHY = {"mean rank": "mean_rank", "MAP": "map"}
_DIGITS = {"P@1": "unseen_precision_at_1", "MAP@R": "unseen_map_at_r", "NMI": "unseen_nmi"}
_TREES = {"MAP": "map", "avg distortion": "average_distortion",
          "worst-case": "worst_case_distortion"}


@dataclasses.dataclass(frozen=True)
class Row:
  """Where a run's numbers are documented: ``doc``'s table row with a cell equal to ``row``."""
  doc: str
  row: str
  columns: dict[str, str]  # header text -> results.json metric key


@dataclasses.dataclass(frozen=True)
class Check:
  config: str                # the --config value, relative to the repository root
  rows: tuple[Row, ...]
  needs_data: bool = False   # reads EMBEDLAB_DATA_DIR


def _both(row: str, columns: dict[str, str], page: str) -> tuple[Row, ...]:
  """The README summary row and the same row on the family's results page."""
  return (Row("README.md", row, columns), Row(page, row, columns))


CHECKS = [
    Check("experiments/hierarchy.py:mammals",
          _both("`mammals`", _HIERARCHY, "docs/results/hierarchy.md")),
    Check("experiments/hierarchy.py:paper",
          _both("`paper`", _HIERARCHY, "docs/results/hierarchy.md")),
    Check("experiments/hierarchy.py:mammals_caps_refined",
          _both("`mammals_caps_refined`", _HIERARCHY, "docs/results/hierarchy.md")),
    Check("experiments/trees.py:smalltree_combinatorial",
          _both("`smalltree_combinatorial`", _TREES, "docs/results/trees.md"), needs_data=True),
    Check("experiments/metric_learning.py:digits",
          _both("`digits`", _DIGITS, "docs/results/metric_learning.md") + (
              Row("docs/results/metric_learning.md",
                  "raw pixels, no training (the `digits` run's baseline)",
                  {k: f"baseline_raw_{v}" for k, v in _DIGITS.items()}),
              Row("docs/results/metric_learning.md",
                  "untrained encoder (the `digits` run's baseline)",
                  {k: f"baseline_init_{v}" for k, v in _DIGITS.items()}))),
    Check("experiments/metric_learning.py:digits,loss=centroid_triplet,geometry=poincare",
          _both("`digits,loss=centroid_triplet,geometry=poincare`", _DIGITS,
                "docs/results/metric_learning.md")),
]


def _cells(line: str) -> list[str]:
  return [cell.strip() for cell in line.strip().strip("|").split("|")]


def markdown_rows(text: str, row: str, columns) -> list[tuple[int, dict[str, str]]]:
  """``(line number, {header: cell})`` of every table row with a cell equal to ``row``.

  Only tables whose header holds all of ``columns`` count.
  """
  found, header = [], None
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.lstrip().startswith("|"):
      header = None
      continue
    cells = _cells(line)
    if header is None:
      header = cells
    elif row in cells and set(columns) <= set(header) and len(cells) == len(header):
      found.append((number, dict(zip(header, cells))))
  return found


def documented_value(cell: str) -> str:
  """The number a cell shows (``**1.0893**`` -> ``1.0893``; ``0.2235 (−3.7%)`` -> ``0.2235``)."""
  match = _NUMBER.search(cell.replace("*", "").replace(",", ""))
  if match is None:
    raise AssertionError(f"no number in the cell {cell!r}")
  return match.group()


def same_at_shown_precision(shown: str, value: float) -> bool:
  decimals = len(shown.split(".")[1]) if "." in shown else 0
  return f"{value:.{decimals}f}" == shown


def matches(shown: str, value: float, *, tolerance: float) -> bool:
  """Exact at the shown precision, or (another CPU model) within ``tolerance``."""
  if tolerance == 0.0:
    return same_at_shown_precision(shown, value)
  return abs(float(shown) - value) <= tolerance


def family(config: str) -> str:
  return config.split("/")[1].split(".py")[0]


@pytest.mark.parametrize("shown, value, tolerance, expected", [
    ("1.0893", 1.08926, 0.0, True),
    ("1.0893", 1.08974, 0.0, False),        # another digit at the shown precision
    ("0.935", 0.93549, 0.0, True),          # rounded, not truncated ...
    ("0.935", 0.93551, 0.0, False),         # ... so this one shows 0.936
    ("1.0897", 1.08926, 0.005, True),       # another CPU: within the family's tolerance
    ("1.1893", 1.08926, 0.005, False),      # a hand edit beyond it fails on any machine
])
def test_the_comparison(shown, value, tolerance, expected):
  assert matches(shown, value, tolerance=tolerance) is expected


@pytest.mark.parametrize("check", CHECKS, ids=[c.config.split("/")[1] for c in CHECKS])
def test_rows_are_found(check):
  """Cheap half: every documented row exists, with a number in each checked column."""
  for row in check.rows:
    rows = markdown_rows((ROOT / row.doc).read_text(encoding="utf-8"), row.row, row.columns)
    assert rows, (f"{row.doc}: no table row with a cell {row.row!r} under the columns "
                  f"{sorted(row.columns)}")
    for _, cells in rows:
      for column in row.columns:
        documented_value(cells[column])


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS, ids=[c.config.split("/")[1] for c in CHECKS])
def test_docs_numbers_match_their_command(tmp_path, check):
  if check.needs_data:
    data_dir_or_skip()
  workdir = tmp_path / "run"
  run_main(["--config", check.config, "--workdir", str(workdir)])
  results = json.loads((workdir / "results.json").read_text())
  metrics, processor = results["metrics"], results["machine"]["processor"]
  tolerance = 0.0 if processor == DOCUMENTED_ON else OTHER_CPU_TOLERANCE[family(check.config)]
  if tolerance:
    warnings.warn(f"{processor!r} is not the machine of the docs ({DOCUMENTED_ON!r}): "
                  f"compared within {tolerance}, not exactly")
  command = f"python -m embedlab.main --config {check.config}"
  wrong = []
  for row in check.rows:
    doc = pathlib.Path(row.doc)
    for number, cells in markdown_rows((ROOT / doc).read_text(encoding="utf-8"), row.row,
                                       row.columns):
      for column, key in row.columns.items():
        shown = documented_value(cells[column])
        if not matches(shown, metrics[key], tolerance=tolerance):
          wrong.append(f"{doc}:{number}, row {row.row}, column {column!r}: the doc says "
                       f"{shown}, the command prints {key} = {metrics[key]!r} (on "
                       f"{processor}; tolerance {tolerance})")
  assert not wrong, f"`{command}` disagrees with the docs:\n" + "\n".join(wrong)
