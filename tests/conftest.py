"""Shared fixtures: experiment configs by name, the data dir, a subprocess runner."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def balanced_parent(branching: int, depth: int) -> np.ndarray:
  """Parent ids of a balanced tree, breadth-first (root 0 has parent -1)."""
  n = sum(branching ** level for level in range(depth + 1))
  return np.concatenate([[-1], (np.arange(1, n) - 1) // branching])


def random_parent(n: int, seed: int) -> np.ndarray:
  """Parent ids of a random recursive tree: node i's parent is uniform in [0, i)."""
  rng = np.random.default_rng(seed)
  return np.concatenate([[-1], [rng.integers(i) for i in range(1, n)]])


@pytest.fixture(scope="session", autouse=True)
def _tfds_dir_in_pytest_tmp(tmp_path_factory):
  """Datasets that tests prepare go to pytest's temp folder, not the user's cache.

  Unless the caller set ``EMBEDLAB_TFDS_DIR``. Under pytest-xdist the folder is shared by the
  workers of one run (their basetemps are siblings); the builders lock while preparing.
  """
  if os.environ.get("EMBEDLAB_TFDS_DIR"):
    yield
    return
  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  os.environ["EMBEDLAB_TFDS_DIR"] = str(shared / "embedlab_tfds")
  yield
  os.environ.pop("EMBEDLAB_TFDS_DIR", None)


def load_experiment(name: str):
  """Imports ``experiments/<name>.py`` as a module (experiments are files, not a package)."""
  path = ROOT / "experiments" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"experiments_{name}", path)
  module = importlib.util.module_from_spec(spec)
  # Registered first, as an import would: dataclasses look their module up while it runs.
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


def quiet_config(experiment, arg: str):
  """``experiment.get_config(arg)`` with the progress bar off (keeps test logs readable)."""
  config = experiment.get_config(arg)
  config.progress = False
  return config


def logged_losses(workdir: pathlib.Path) -> list[float]:
  """The per-epoch training losses a run wrote to ``workdir/metrics.jsonl``, in order."""
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [l["loss"] for l in lines if "loss" in l]


def data_dir_or_skip() -> pathlib.Path:
  """The shared data dir (CI sets EMBEDLAB_DATA_DIR), or skip with the reason."""
  value = os.environ.get("EMBEDLAB_DATA_DIR")
  if not value or not pathlib.Path(value).is_dir():
    pytest.skip("EMBEDLAB_DATA_DIR is not set to the shared data folder")
  return pathlib.Path(value)


def run_main(args: list[str], *, env_extra: dict[str, str] | None = None,
             timeout: int = 600) -> subprocess.CompletedProcess:
  """Runs ``python -m embedlab.main ARGS`` from the repository root; fails with its output."""
  env = dict(os.environ, **(env_extra or {}))
  proc = subprocess.run([sys.executable, "-m", "embedlab.main", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)
  if proc.returncode != 0:
    raise AssertionError(f"embedlab.main {args} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
  return proc
