"""experiments/sweep.py: cells are ordinary runs, finished cells are read back, tables."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.conftest import load_experiment, run_main

sweep = load_experiment("sweep")


def _row(metrics=None, error=None, **keys):
  row = {**keys, "command": "python -m embedlab.main ..."}
  if error is not None:
    row["error"] = error
  else:
    row.update(metrics=metrics, machine={"processor": "cpu", "cpu_count": 2, "jax": "0.0",
                                         "device_kind": "cpu", "num_devices": 1})
  return row


def test_hierarchy_table_has_one_table_per_task_of_models_by_dims():
  rows = [_row({"mean_rank": 1.5, "map": 0.9}, task="reconstruction", model="poincare", dim=5),
          _row({"mean_rank": 2.25, "map": 0.8}, task="reconstruction", model="poincare",
               dim=10),
          _row(error="ValueError: no", task="reconstruction", model="lorentz", dim=5),
          _row({"link_mean_rank": 3.0, "link_map": 0.7}, task="link_prediction",
               model="poincare", dim=10)]
  text = sweep._hierarchy_markdown(rows, argparse.Namespace(preset="mammals"))
  assert text.split("\n") == [
      "**mammals — reconstruction** (mean rank / MAP)", "",
      "| model | dim 5 | dim 10 |", "| --- | --- | --- |",
      "| poincare | 1.50 / 0.900 | 2.25 / 0.800 |",
      "| lorentz | error | — |", "",
      "**mammals — link prediction** (mean rank / MAP)", "",
      "| model | dim 5 | dim 10 |", "| --- | --- | --- |",
      "| poincare | — | 3.00 / 0.700 |", ""]


def test_metric_learning_table_has_losses_by_geometries_and_the_baselines():
  keys = ("precision_at_1", "map_at_r", "nmi")
  metrics = {**{f"unseen_{k}": v for k, v in zip(keys, (0.9, 0.4, 0.3))},
             **{f"baseline_raw_unseen_{k}": v for k, v in zip(keys, (0.8, 0.5, 0.6))},
             **{f"baseline_init_unseen_{k}": v for k, v in zip(keys, (0.7, 0.2, 0.1))}}
  rows = [_row(metrics, loss="triplet", geometry="euclidean"),
          _row(error="ValueError: no", loss="triplet", geometry="sphere")]
  text = sweep._ml_markdown(rows, argparse.Namespace(preset="digits",
                                                     geometries="euclidean,sphere,poincare"))
  assert text.split("\n") == [
      "**digits — unseen classes** (Precision@1 / MAP@R / NMI)", "",
      "| loss | euclidean | sphere | poincare |", "| --- | --- | --- | --- |",
      "| triplet | 0.900 / 0.400 / 0.300 | error | — |", "",
      "Raw input features (Euclidean): 0.800 / 0.500 / 0.600. "
      "Untrained encoder (euclidean): 0.700 / 0.200 / 0.100.", ""]


@pytest.mark.parametrize("argv, message", [
    (["hierarchy", "--models", "poincare,klein", "--workdir", "w"], "--models: unknown"),
    (["hierarchy", "--dims", "5,ten", "--workdir", "w"], "expected comma-separated ints"),
    (["metric_learning", "--losses", "tripplet", "--workdir", "w"], "unknown loss 'tripplet'"),
])
def test_bad_grids_fail_before_any_cell_runs(tmp_path, argv, message):
  argv[-1] = str(tmp_path / argv[-1])
  with pytest.raises(SystemExit, match=message):
    sweep.main(argv)
  assert not (tmp_path / "w" / "table.json").exists()


@pytest.mark.slow
def test_cells_are_their_commands_are_read_back_and_are_tabulated(tmp_path):
  # triplet on the sphere with the SNR distance is rejected (an error cell); busemann_prototype
  # supports neither geometry (no cell, no row).
  argv = ["metric_learning", "--preset", "smoke", "--losses", "triplet,busemann_prototype",
          "--geometries", "euclidean,sphere", "--extra", "losses.triplet.distance=snr",
          "--workdir", str(tmp_path / "grid")]
  sweep.main(argv)
  rows = json.loads((tmp_path / "grid" / "table.json").read_text())
  assert [(r["loss"], r["geometry"], "error" in r) for r in rows] == [
      ("triplet", "euclidean", False), ("triplet", "sphere", True)]
  assert "cannot run in geometry 'sphere'" in rows[1]["error"]
  table = (tmp_path / "grid" / "table.md").read_text().split("\n")
  assert table[0].startswith("Produced by `python experiments/sweep.py metric_learning "
                             "--preset smoke ") and "jax " in table[0]
  assert table[6].startswith("| triplet | 0.") and table[6].endswith(" | error |")
  assert "busemann" not in "\n".join(table[1:])

  # The recorded command, run on its own, gives the cell's numbers.
  command = rows[0]["command"].split()
  assert command[:3] == ["python", "-m", "embedlab.main"]
  single = tmp_path / "single"
  run_main(command[3:-1] + [str(single)])
  assert json.loads((single / "results.json").read_text())["metrics"] == rows[0]["metrics"]

  # A second sweep reads the finished cell instead of rerunning it.
  log = tmp_path / "grid" / "triplet_euclidean.log"
  log.write_text("not rerun")
  sweep.main(argv)
  assert log.read_text() == "not rerun"
  assert json.loads((tmp_path / "grid" / "table.json").read_text())[0] == rows[0]
