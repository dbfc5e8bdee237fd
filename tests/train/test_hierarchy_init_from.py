"""``init_from``: a hierarchy run seeded with another run's table (one-command fine-tunes)."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from embedlab import train
from tests.conftest import load_experiment, quiet_config

_config = functools.partial(quiet_config, load_experiment("hierarchy"))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """A finished smoke run: its workdir and final metrics."""
  workdir = tmp_path_factory.mktemp("source")
  outcome = train.run(_config("smoke"), workdir)
  return workdir, outcome.results["metrics"]


def _init_table(arg: str):
  task = train.TASKS["hierarchy"](_config(arg))
  return task, task.init_params(jax.random.PRNGKey(0))


@pytest.mark.parametrize("point_at", ["workdir", "file"])
def test_the_seeded_table_is_the_source_table(source, point_at):
  workdir, metrics = source
  path = workdir if point_at == "workdir" else workdir / "embeddings.npz"
  task, params = _init_table(f"smoke,init_from={path}")
  stored = np.load(workdir / "embeddings.npz")["vectors"]
  np.testing.assert_array_equal(np.asarray(params["embeddings"][:task.num_nodes]), stored)
  # Padding rows stay at the origin.
  assert not np.asarray(params["embeddings"][task.num_nodes:]).any()
  # Same table, same evaluation: the fine-tune starts where the source ended.
  assert task.evaluate(params) == pytest.approx(metrics)


def test_nodes_are_matched_by_name_not_by_row(source, tmp_path):
  workdir, _ = source
  stored = dict(np.load(workdir / "embeddings.npz"))
  order = np.random.default_rng(0).permutation(stored["names"].size)
  shuffled = tmp_path / "embeddings.npz"
  np.savez(shuffled, **{**stored, "names": stored["names"][order],
                        "vectors": stored["vectors"][order]})
  task, params = _init_table(f"smoke,init_from={shuffled}")
  np.testing.assert_array_equal(np.asarray(params["embeddings"][:task.num_nodes]),
                                stored["vectors"])


def test_a_float32_table_seeds_a_float64_run(source):
  workdir, _ = source
  stored = np.load(workdir / "embeddings.npz")["vectors"]
  with jax.enable_x64(True):
    task, params = _init_table(f"smoke,dtype=float64,init_from={workdir}")
    table = np.asarray(params["embeddings"][:task.num_nodes])
  assert table.dtype == np.float64
  np.testing.assert_array_equal(table, stored.astype(np.float64))


def test_a_seeded_run_trains_and_improves_on_its_source(source, tmp_path):
  workdir, metrics = source
  tuned = train.run(_config(f"smoke,epochs=8,eval_every_epochs=8,init_from={workdir}"),
                    tmp_path).results["metrics"]
  assert tuned["map"] > metrics["map"]


@pytest.mark.parametrize("change, message", [
    ("missing", "does not exist"),
    ("no_vectors", r"lacks \['vectors'\]"),
    ("lorentz", "holds 'lorentz' points"),
    ("dim", r"expected \[1182, 5\] \(dim 5\)"),
    ("fewer_nodes", "lacks 1 of this closure's 1182 nodes"),
    ("nan", "non-finite"),
])
def test_bad_sources_give_clear_errors(source, tmp_path, change, message):
  workdir, _ = source
  stored = dict(np.load(workdir / "embeddings.npz"))
  path = tmp_path / "bad.npz"
  if change == "missing":
    path = tmp_path / "nowhere"
  elif change == "no_vectors":
    del stored["vectors"]
  elif change == "lorentz":
    stored["geometry"] = np.asarray("lorentz")
  elif change == "dim":
    stored["vectors"] = stored["vectors"][:, :3]
  elif change == "fewer_nodes":
    stored = {**stored, "names": stored["names"][1:], "vectors": stored["vectors"][1:]}
  elif change == "nan":
    stored["vectors"] = stored["vectors"].copy()
    stored["vectors"][7, 2] = np.nan
  if change != "missing":
    np.savez(path, **stored)
  task = train.TASKS["hierarchy"](_config(f"smoke,init_from={path}"))
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    task.init_params(jax.random.PRNGKey(0))
