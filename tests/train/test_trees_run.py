"""End-to-end runs of the tree-embedding experiment (Sala et al. 2018): CLI, outputs, presets."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest

from embedlab import main
from embedlab import train
from tests.conftest import ROOT, load_experiment, quiet_config, run_main

trees_config = load_experiment("trees")

_config = functools.partial(quiet_config, trees_config)


@pytest.mark.slow
def test_smoke_preset_through_the_cli(tmp_path):
  proc = run_main(["--config", "experiments/trees.py:smoke", "--workdir", str(tmp_path)])
  assert "map" in proc.stdout and "build seconds" in proc.stdout
  assert "results.json" in proc.stdout and "epochs" not in proc.stdout
  for name in ["config.json", "results.json", "embeddings.npz"]:
    assert (tmp_path / name).is_file(), name
  config = json.loads((tmp_path / "config.json").read_text())
  assert (config["task"], config["preset"], config["dataset"]) == ("trees", "smoke", "balanced")
  results = json.loads((tmp_path / "results.json").read_text())
  metrics = results["metrics"]
  # A tree embedded by the construction: perfect MAP; eps = 1 bounds the distortion by 2.
  assert metrics["map"] == 1.0 and 1.0 <= metrics["worst_case_distortion"] <= 2.0
  assert (metrics["num_sources"], metrics["num_pairs"]) == (40, 40 * 39)
  assert results["precision"] == 128 and results["dropped_edges"] == 0
  assert results["build_seconds"] >= 0 and results["machine"]["processor"]
  stored = np.load(tmp_path / "embeddings.npz")
  assert stored["points"].shape == (40, 2) and int(stored["frac_bits"]) == 128
  # The exact coordinates read back from hex and agree with the float64 ones.
  exact = np.vectorize(lambda h: int(h, 16) / 2.0 ** 128)(stored["fixed_hex"])
  np.testing.assert_allclose(exact, stored["points"], atol=1e-15)
  np.testing.assert_array_equal(stored["ids"], np.arange(40))


def test_plot_and_hmds_in_process(tmp_path):
  outcome = train.run(_config("smoke,plot=true"), tmp_path / "comb")
  assert (tmp_path / "comb" / "balanced_combinatorial_dim2.png").is_file()
  assert outcome.results["plot"] == "balanced_combinatorial_dim2.png"
  # Nothing is trained: none of the training loop's keys.
  assert not {"epochs_completed", "train_seconds_this_run"} & set(outcome.results)
  assert outcome.params["points"].shape == (40, 2)
  hmds = train.run(_config("smoke,method=hmds,dim=3,scale=0.5"), tmp_path / "hmds")
  metrics = hmds.results["metrics"]
  assert 0 < metrics["average_distortion"] < 1 and 0 < metrics["map"] <= 1
  assert hmds.results["scale"] == 0.5 and "tau" not in hmds.results


def test_float64_and_sampled_sources(tmp_path):
  outcome = train.run(_config("smoke,precision=float64,sources=10"), tmp_path)
  metrics = outcome.results["metrics"]
  assert metrics["sampled"] and metrics["num_sources"] == 10 and metrics["map"] == 1.0
  assert "fixed_hex" not in np.load(tmp_path / "embeddings.npz")


@pytest.mark.parametrize("preset", sorted(trees_config.PRESETS))
def test_every_preset_builds_a_valid_config(preset):
  config = trees_config.get_config(preset)
  assert config.task == "trees" and config.method in ("combinatorial", "hmds")
  assert config.preset == preset
  assert config.precision == "float64" or int(config.precision) >= 53


def test_tau_from_precision(tmp_path):
  outcome = train.run(_config("smoke,tau=precision,bits=96"), tmp_path)
  results = outcome.results
  assert results["bits_needed"] <= 96 and results["metrics"]["map"] == 1.0
  eps_tau = train.run(_config("smoke"), tmp_path / "eps").results["tau"]
  assert results["tau"] > eps_tau  # 96 bits afford more than eps = 1 asks for here
  fixed = train.run(_config("smoke,tau=3.5"), tmp_path / "fixed").results
  assert fixed["tau"] == 3.5


@pytest.mark.parametrize("arg, error", [
    ("smoke,method=spectral", "unknown method"),
    ("smoke,tau=luck", "tau='luck'"),
    ("smoke,precision=lots", "precision"),
])
def test_bad_configs_fail_clearly(tmp_path, arg, error):
  with pytest.raises(ValueError, match=error):
    train.run(_config(arg), tmp_path)


_MACHINE = {"device_kind": "cpu", "num_devices": 1}


@pytest.mark.parametrize("results, shown, hidden", [
    # A training run (embedlab.train.loop).
    ({"epochs_completed": 4, "train_seconds_this_run": 1.5, "wall_seconds_this_run": 2.0,
      "finished": True, "machine": _MACHINE, "metrics": {"map": 0.5}},
     ["epochs", "train seconds (this run)", "wall seconds", "cpu x1", "map"],
     ["build seconds"]),
    # A one-shot runner (trees): build and eval seconds, no epochs.
    ({"build_seconds": 0.1, "eval_seconds": 0.2, "wall_seconds_this_run": 0.4,
      "finished": True, "machine": _MACHINE, "metrics": {"map": 1.0}},
     ["build seconds", "eval seconds", "wall seconds", "map"], ["epochs", "train seconds"]),
    # Stopped before the end: no metrics yet.
    ({"epochs_completed": 2, "train_seconds_this_run": 1.0, "wall_seconds_this_run": 1.2,
      "finished": False, "machine": _MACHINE}, ["epochs"], ["map"]),
])
def test_the_cli_summary_prints_what_a_result_has(results, shown, hidden):
  text = main._summary(results)
  assert all(label in text for label in shown), text
  assert not any(label in text for label in hidden), text


_NO_BACKEND = """
import sys
import matplotlib
import numpy as np
from matplotlib import rcsetup
from embedlab import train  # every task and runner, hence embedlab.train.plots
from embedlab.train import plots
plots.plot_tree(np.array([[0.0, 0.0], [0.5, 0.0]]), np.array([[0, 1]]), np.array([0.0, 1.1]),
                sys.argv[1], title="two nodes")
assert "matplotlib.pyplot" not in sys.modules
assert dict.__getitem__(matplotlib.rcParams, "backend") is rcsetup._auto_backend_sentinel
"""


def test_pictures_leave_the_matplotlib_backend_unchosen(tmp_path):
  """Importing embedlab and saving a picture picks no backend for the process (no pyplot)."""
  path = tmp_path / "two.png"
  proc = subprocess.run([sys.executable, "-c", _NO_BACKEND, str(path)], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert path.stat().st_size > 0
