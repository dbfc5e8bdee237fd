"""``init='nested_caps'``: a hierarchy run that starts from the nested-caps construction."""

from __future__ import annotations

import functools
import json

import jax
import numpy as np
import pytest

from embedlab import train
from embedlab.models import nested_caps
from tests.conftest import load_experiment, quiet_config

_config = functools.partial(quiet_config, load_experiment("hierarchy"))


@pytest.fixture(scope="module")
def built_run(tmp_path_factory):  # the tests that use it are marked slow
  """The mammals_caps preset: construction only (epochs=0), then the all-query evaluation."""
  workdir = tmp_path_factory.mktemp("mammals_caps")
  with jax.enable_x64(True):
    outcome = train.run(_config("mammals_caps"), workdir)
  return workdir, outcome.results


@pytest.mark.slow
def test_construction_only_run_writes_a_finished_run(built_run):
  workdir, results = built_run
  assert results["finished"] and results["epochs_completed"] == 0
  assert json.loads((workdir / "results.json").read_text())["metrics"] == results["metrics"]
  # The mammal closure is a DAG with a handful of second parents (10 off-layout pairs of
  # 6,542): nearly every ancestor ranks first.
  assert results["metrics"]["sampled"] is False
  assert results["metrics"]["mean_rank"] < 1.1
  assert results["metrics"]["map"] > 0.99


@pytest.mark.slow
def test_the_table_is_the_construction_unprojected(built_run):
  workdir, _ = built_run
  stored = np.load(workdir / "embeddings.npz")
  with jax.enable_x64(True):
    task = train.TASKS["hierarchy"](_config("mammals_caps"))
  expected = nested_caps.nested_caps(np.asarray(task.closure.edges), task.num_nodes, dim=5)
  np.testing.assert_array_equal(stored["vectors"], expected.points)
  assert str(stored["geometry"]) == "poincare"


@pytest.mark.slow
def test_training_from_the_construction_keeps_it_good(tmp_path):
  with jax.enable_x64(True):
    outcome = train.run(_config("mammals_caps,epochs=4,lr=0.1,eval_every_epochs=2,"
                                "checkpoint_every_epochs=2,epochs_per_call=2"), tmp_path)
  metrics = outcome.results["metrics"]
  assert outcome.results["epochs_completed"] == 4
  assert np.isfinite(metrics["mean_rank"]) and metrics["map"] > 0.95


@pytest.mark.parametrize("overrides,message", [
    ("dtype=float32", "dtype='float64'"),
    ("geometry=lorentz", "geometry='poincare'"),
    ("dim=2", "dim >= 3"),
    ("init=caps", "unknown init"),
    ("link=0.1", "link-prediction split"),
])
def test_bad_settings_are_refused(overrides, message):
  with pytest.raises(ValueError, match=message):
    train.TASKS["hierarchy"](_config(f"mammals_caps,{overrides}"))


def test_init_from_and_nested_caps_are_exclusive(tmp_path):
  with pytest.raises(ValueError, match="set only one"):
    train.TASKS["hierarchy"](_config(f"mammals_caps,init_from={tmp_path}"))


@pytest.mark.slow
def test_refined_run_beats_the_construction(built_run, tmp_path):
  _, construction = built_run
  with jax.enable_x64(True):
    refined = train.run(_config("mammals_caps_refined,nested_caps.refine.steps=60"), tmp_path)
  before, after = construction["metrics"], refined.results["metrics"]
  assert after["sampled"] is False
  assert after["mean_rank"] < before["mean_rank"] and after["map"] > before["map"]
  rounds = refined.results["nested_caps_refinement"]["rounds"]
  assert [r["step"] for r in rounds][-1] == 60 and rounds[-1]["loss"] < rounds[0]["loss"]


def test_refinement_needs_nested_caps():
  with pytest.raises(ValueError, match="needs init='nested_caps'"):
    train.TASKS["hierarchy"](_config("mammals,nested_caps.refine.steps=10"))
  with pytest.raises(ValueError, match="mine_every >= 1"):
    train.TASKS["hierarchy"](_config("mammals_caps_refined,nested_caps.refine.mine_every=0"))
