"""End-to-end runs of the shared loop on the hierarchy experiment (small presets)."""

from __future__ import annotations

import functools
import json

import jax
import numpy as np
import pytest

from embedlab import train
from embedlab.losses import hierarchy as hierarchy_loss
from embedlab.losses.negatives import Negatives
from tests.conftest import (
    ROOT, data_dir_or_skip, load_experiment, logged_losses, quiet_config, run_main)

hierarchy_config = load_experiment("hierarchy")

_config = functools.partial(quiet_config, hierarchy_config)


def test_smoke_run_writes_every_output(tmp_path):
  outcome = train.run(_config("smoke,plot=true"), tmp_path)
  for name in ["config.json", "metrics.jsonl", "results.json", "embeddings.npz",
               "mammals_poincare_dim5.png"]:
    assert (tmp_path / name).is_file(), name
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["finished"] and results["epochs_completed"] == 4
  metrics = results["metrics"]
  assert metrics["num_queries"] == 1181 and metrics["num_pairs"] == 6542
  assert 1.0 <= metrics["mean_rank"] < 1182 and 0.0 < metrics["map"] <= 1.0
  stored = np.load(tmp_path / "embeddings.npz")
  assert stored["vectors"].shape == (1182, 5) and stored["names"].shape == (1182,)
  assert np.all(np.linalg.norm(stored["vectors"], axis=1) < 1.0)
  assert outcome.results["metrics"] == metrics


def test_training_improves_reconstruction(tmp_path):
  """A short real run must beat the random-init embedding by a wide margin."""
  config = _config("mammals,epochs=20,eval_every_epochs=20,checkpoint_every_epochs=20,"
                   "plot=false,batch=10,lr=1.0,burn_in=2,negatives=20")
  before = train.TASKS["hierarchy"](config)
  initial = before.evaluate(before.init_params(jax.random.PRNGKey(config.seed)))
  final = train.run(config, tmp_path).results["metrics"]
  assert final["map"] > initial["map"] + 0.5
  assert final["mean_rank"] < initial["mean_rank"] / 20


def test_resume_after_kill_is_bitwise_identical(tmp_path):
  straight = tmp_path / "straight"
  train.run(_config("smoke"), straight)
  killed = tmp_path / "killed"
  partial = train.run(_config("smoke,stop_after_epochs=2"), killed)
  assert not partial.results["finished"] and partial.results["epochs_completed"] == 2
  assert not (killed / "embeddings.npz").exists()
  resumed = train.run(_config("smoke"), killed)
  assert resumed.results["finished"]
  a = np.load(straight / "embeddings.npz")["vectors"]
  b = np.load(killed / "embeddings.npz")["vectors"]
  np.testing.assert_array_equal(a, b)
  assert logged_losses(straight) == logged_losses(killed)


def test_resume_refuses_a_different_config(tmp_path):
  train.run(_config("smoke,stop_after_epochs=2"), tmp_path)
  with pytest.raises(ValueError, match="different config.*dim"):
    train.run(_config("smoke,dim=3"), tmp_path)
  # The refused run left the workdir as it was: resuming with the right config still works.
  assert train.run(_config("smoke"), tmp_path).results["finished"]


def test_non_finite_loss_raises_and_keeps_last_checkpoint(tmp_path):
  config = _config("smoke,geometry=euclidean,lr=1e30,burn_in=0,epochs_per_call=1")
  with pytest.raises(FloatingPointError, match="non-finite loss at epoch"):
    train.run(config, tmp_path)
  assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("arg, message", [
    ("smoke,geometry=hyperbolic", "unknown geometry 'hyperbolic'"),
    ("smoke,optimizer=sgd", "unknown optimizer 'sgd'"),
    ("smoke,dataset=birds", "birds"),
    ("smoke,negatives_from=zipf", "unknown negatives.source"),
    ("smoke,negatives.redraw=lazy", "unknown negatives.redraw"),
    ("smoke,negatives=0", "negatives.per_pair must be positive"),
    ("smoke,batch=100000", "batch_size 100000 exceeds the 6542 rows"),
    ("smoke,dim=0", "must be positive"),
])
def test_bad_config_values_give_clear_errors(tmp_path, arg, message):
  with pytest.raises(ValueError, match=message):
    train.run(_config(arg), tmp_path)


def test_a_float64_run_needs_x64_mode_and_says_how_to_get_it():
  """x64 is process-wide: embedlab.main turns it on (train.needs_x64), a task never does."""
  config = _config("smoke,dtype=float64")
  assert train.needs_x64(config) and not train.needs_x64(_config("smoke"))
  with jax.enable_x64(False):
    with pytest.raises(ValueError, match=r"needs JAX's x64 mode.*jax.enable_x64\(True\)"):
      train.TASKS["hierarchy"](config)
    assert not jax.config.jax_enable_x64  # and it did not turn it on either
  with jax.enable_x64(True):
    task = train.TASKS["hierarchy"](config)
    assert task.init_params(jax.random.PRNGKey(0))["embeddings"].dtype == np.float64


@pytest.mark.parametrize("arg, message", [
    ("nonsense", "unknown preset 'nonsense'"),
    ("smoke,dimm=3", "unknown config field 'dimm'"),
    ("smoke,dim=three", "dim='three': expected a int"),
    ("smoke,mammals", "several presets"),
])
def test_bad_config_args_give_clear_errors(arg, message):
  with pytest.raises(ValueError, match=message):
    hierarchy_config.get_config(arg)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(hierarchy_config.PRESETS))
def test_every_preset_trains_restores_and_continues(tmp_path, preset):
  overrides = "epochs=2,stop_after_epochs=1,eval_every_epochs=2,checkpoint_every_epochs=1," \
              "epochs_per_call=1,plot=false"
  if hierarchy_config.PRESETS[preset].get("init") == "nested_caps":
    # The construction of the nouns takes minutes (twice here: run, then resume); the preset's
    # settings are exercised on the mammals (tests/models/test_nested_caps.py covers the builder).
    overrides += ",dataset=mammals,nested_caps.refine.steps=" + (
        "10" if hierarchy_config.PRESETS[preset].get("nested_caps.refine.steps") else "0")
  elif preset.startswith("nouns"):
    data_dir_or_skip()
    overrides += ",eval.max_queries=200,batch=4096"
    if preset != "nouns":  # the nouns case already covers the all-query final evaluation
      overrides += ",eval.final_all_queries=false"
    if preset == "nouns_hard":  # its decay begins at epoch 760, past these 2 epochs
      overrides += ",optim.decay_begin_epoch=none"
  config = _config(f"{preset},{overrides}")
  with jax.enable_x64(config.dtype == "float64"):  # main turns it on for such a config
    partial = train.run(config, tmp_path)
    assert partial.results["epochs_completed"] == 1
    resumed = overrides.replace("stop_after_epochs=1", "stop_after_epochs=none")
    finished = train.run(_config(f"{preset},{resumed}"), tmp_path)
  assert finished.results["finished"] and finished.results["epochs_completed"] == 2
  assert np.isfinite(finished.results["metrics"]["map"])


@pytest.mark.parametrize("geometry", ["euclidean", "poincare", "lorentz", "sphere"])
def test_every_geometry_runs_the_smoke_preset(tmp_path, geometry):
  results = train.run(_config(f"smoke,geometry={geometry},epochs=2,eval_every_epochs=2"),
                      tmp_path).results
  assert results["finished"] and np.isfinite(results["metrics"]["mean_rank"])
  vectors = np.load(tmp_path / "embeddings.npz")["vectors"]
  assert vectors.shape[1] == (6 if geometry == "lorentz" else 5)


def test_eight_devices_match_one_device(tmp_path):
  """Same loss curve with the batch and the table sharded over 8 simulated CPU devices."""
  args = ["--config", "experiments/hierarchy.py:smoke", "--config.progress=false"]
  run_main(args + ["--workdir", str(tmp_path / "one")])
  run_main(args + ["--workdir", str(tmp_path / "eight")],
           env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  eight = json.loads((tmp_path / "eight" / "results.json").read_text())
  assert eight["machine"]["num_devices"] == 8
  np.testing.assert_allclose(logged_losses(tmp_path / "eight"), logged_losses(tmp_path / "one"),
                             rtol=1e-5)
  np.testing.assert_allclose(np.load(tmp_path / "eight" / "embeddings.npz")["vectors"],
                             np.load(tmp_path / "one" / "embeddings.npz")["vectors"],
                             atol=1e-5)


@pytest.mark.parametrize("num_negatives", [50, 1182])
def test_all_negatives_loss_is_the_weighted_softmax(num_negatives):
  """negatives_from='all' = d(u,v) + log(e^-d(u,v) + K/N sum_{w not u, not ancestor} e^-d(u,w))."""
  task = train.TASKS["hierarchy"](
      _config(f"mammals,negatives_from=all,negatives={num_negatives}"))
  table = task.manifold.random_point(jax.random.PRNGKey(3), (task.table_rows, 5))
  pairs = np.asarray(task.closure.edges[::700][:8])
  pairs, negatives = task.sampler.draw(None, pairs, task.data)
  got = float(task.sampler.loss(table, pairs, negatives))
  points = np.asarray(table)
  ancestors = {}
  for child, ancestor in task.closure.edges:
    ancestors.setdefault(int(child), set()).add(int(ancestor))
  n = task.num_nodes
  losses = []
  for u, v in pairs:
    d = np.asarray(task.manifold.dist(points[u][None], points[:n], c=1.0), np.float64)
    negatives = [w for w in range(n) if w != u and w not in ancestors[int(u)]]
    total = np.exp(-d[v]) + num_negatives / n * np.sum(np.exp(-d[negatives]))
    losses.append(d[v] + np.log(total))
  np.testing.assert_allclose(got, np.mean(losses), rtol=1e-4)


@pytest.mark.parametrize("geometry", ["poincare", "lorentz"])
def test_sparse_row_updates_match_dense_ones(tmp_path, geometry):
  """RSGD is per-row, so updating only the touched rows must give the dense result."""
  arg = f"smoke,geometry={geometry},epochs=2,eval_every_epochs=2,checkpoint_every_epochs=2"
  dense = train.run(_config(arg + ",row_updates=dense"), tmp_path / "dense")
  sparse = train.run(_config(arg + ",row_updates=sparse"), tmp_path / "sparse")
  np.testing.assert_allclose(np.asarray(sparse.params["embeddings"]),
                             np.asarray(dense.params["embeddings"]), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logged_losses(tmp_path / "sparse"), logged_losses(tmp_path / "dense"),
                             rtol=1e-5)


def _ancestors(closure) -> dict[int, set[int]]:
  ancestors = {u: set() for u in range(closure.num_nodes)}
  for child, ancestor in closure.edges:
    ancestors[int(child)].add(int(ancestor))
  return ancestors


def test_batch_negatives_mask_and_loss_match_brute_force():
  """negatives_from='batch': d(u,v) + log(e^-d(u,v) + K/S sum_{valid shared s} e^-d(u,s))."""
  task = train.TASKS["hierarchy"](_config("mammals,negatives_from=batch,batch_negatives=300"))
  ancestors = _ancestors(task.closure)
  pairs = np.asarray(task.closure.edges[::400][:16])
  rng = np.random.default_rng(0)
  # Include each anchor and one of its ancestors, twice, so the exclusion and the duplicate
  # rule are both exercised.
  chosen = rng.integers(0, task.num_nodes, 288).tolist()
  chosen += [int(pairs[0, 0]), int(pairs[0, 1])] * 2 + pairs[:8, 1].tolist()
  shared = np.sort(np.asarray(chosen, np.int32))
  assert shared.size == 300
  mask = np.asarray(hierarchy_loss.shared_negatives_mask(pairs[:, 0], shared,
                                                         task.data["excluded"]))
  expected = np.array([[s not in ancestors[int(u)] and s != u
                        and (j == 0 or shared[j - 1] != s) for j, s in enumerate(shared)]
                       for u in pairs[:, 0]])
  np.testing.assert_array_equal(mask, expected)

  table = task.manifold.random_point(jax.random.PRNGKey(3), (task.table_rows, 5))
  got = float(task.sampler.loss(table, pairs, Negatives(shared, mask)))
  points = np.asarray(table)
  losses = []
  for b, (u, v) in enumerate(pairs):
    d = np.asarray(task.manifold.dist(points[u][None], points, c=1.0), np.float64)
    total = np.exp(-d[v]) + 50 / 300 * np.sum(np.exp(-d[shared[mask[b]]]))
    losses.append(d[v] + np.log(total))
  np.testing.assert_allclose(got, np.mean(losses), rtol=1e-4)


def test_batch_negatives_sparse_and_dense_agree(tmp_path):
  arg = ("smoke,negatives_from=batch,batch_negatives=256,epochs=2,eval_every_epochs=2,"
         "checkpoint_every_epochs=2")
  dense = train.run(_config(arg + ",row_updates=dense"), tmp_path / "dense")
  sparse = train.run(_config(arg + ",row_updates=sparse"), tmp_path / "sparse")
  np.testing.assert_allclose(np.asarray(sparse.params["embeddings"]),
                             np.asarray(dense.params["embeddings"]), rtol=1e-5, atol=1e-6)
  assert sparse.results["metrics"]["map"] > 0.0


def test_batch_negatives_of_every_node_equal_the_all_negatives_loss():
  """batch_negatives >= N: every node once, weighted K / N: the loss of negatives_from='all'."""
  every = train.TASKS["hierarchy"](_config("mammals,negatives_from=batch,batch_negatives=5000"))
  exact = train.TASKS["hierarchy"](_config("mammals,negatives_from=all"))
  assert every.sampler.every_node and not every.sparse
  table = every.manifold.random_point(jax.random.PRNGKey(4), (every.table_rows, 5))
  pairs = every.data["edges"][::97][:32]
  got = float(every.sampler.loss(table, *every.sampler.draw(None, pairs, every.data)))
  want = float(exact.sampler.loss(table, *exact.sampler.draw(None, pairs, exact.data)))
  np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("decay_begin_epoch, at_epoch, expected", [
    (None, 1, 1.0),       # burn-in ends at epoch 1; linear to 0 at epoch 11
    (None, 6, 0.5),
    (6, 4, 1.0),          # constant until epoch 6, then linear to 0 at epoch 11
    (6, 6, 1.0),
    (6, 8.5, 0.5),
    (6, 11, 0.0),
])
def test_decay_begin_epoch_delays_the_decay(decay_begin_epoch, at_epoch, expected):
  arg = "smoke,lr=1.0,burn_in=1,optim.decay=linear,epochs=11"
  if decay_begin_epoch is not None:
    arg += f",optim.decay_begin_epoch={decay_begin_epoch}"
  task = train.TASKS["hierarchy"](_config(arg))
  step = int(at_epoch * task.steps_per_epoch)
  np.testing.assert_allclose(task.learning_rate(step), expected, atol=2e-3)


@pytest.mark.parametrize("decay_begin_epoch", [0, 11, 30])
def test_decay_begin_epoch_outside_the_run_is_refused(decay_begin_epoch):
  arg = f"smoke,burn_in=1,optim.decay=linear,epochs=11,optim.decay_begin_epoch={decay_begin_epoch}"
  with pytest.raises(ValueError, match="decay_begin_epoch must be in"):
    train.TASKS["hierarchy"](_config(arg))


def test_translational_baseline_trains(tmp_path):
  arg = "smoke,geometry=euclidean,model=translational,epochs=4"
  outcome = train.run(_config(arg), tmp_path)
  translation = np.asarray(outcome.params["translation"])
  assert translation.shape == (5,) and np.linalg.norm(translation) > 0
  np.testing.assert_array_equal(np.load(tmp_path / "embeddings.npz")["translation"],
                                translation)
  with pytest.raises(ValueError, match="needs a flat geometry"):
    train.run(_config("smoke,model=translational"), tmp_path / "poincare")


def test_link_prediction_holds_edges_out_of_training(tmp_path):
  config = _config("smoke,link=0.2")
  task = train.TASKS["hierarchy"](config)
  trained = set(map(tuple, np.asarray(task.data["edges"]).tolist()))
  held_out = set(map(tuple, task.split.test.tolist()))
  assert held_out and not trained & held_out
  assert len(trained) + len(held_out) == task.closure.num_edges
  metrics = train.run(config, tmp_path).results["metrics"]
  assert metrics["num_pairs"] == len(trained) and metrics["link_num_pairs"] == len(held_out)
  assert 1.0 <= metrics["link_mean_rank"] and 0.0 < metrics["link_map"] <= 1.0


@pytest.mark.parametrize("negatives_from", ["uniform", "unigram"])
def test_presampled_negatives_exclude_ancestors(negatives_from):
  """An epoch's negatives drawn up front obey the same rule as per-step ones."""
  task = train.TASKS["hierarchy"](_config(
      f"smoke,negatives_from={negatives_from},presample_negatives=yes"))
  assert task.sampler.presample
  batches = task.epoch_batches(jax.random.PRNGKey(0), task.data)
  pairs = np.asarray(batches["pairs"]).reshape(-1, 2)
  negatives = np.asarray(batches["negatives"]).reshape(pairs.shape[0], -1)
  mask = np.asarray(batches["mask"]).reshape(negatives.shape)
  assert negatives.shape[1] == task.config.negatives.per_pair and mask.mean() > 0.99
  ancestors = _ancestors(task.closure)
  for (u, _), row, valid in zip(pairs[::7], negatives[::7], mask[::7]):
    assert all(w != u and w not in ancestors[int(u)] for w in row[valid])


def test_presampling_trains_like_per_step_sampling(tmp_path):
  """Same distribution, other random draws: about the same quality after the same epochs."""
  results = {}
  for presample in ("yes", "no"):
    config = _config(f"smoke,presample_negatives={presample},epochs=6,eval_every_epochs=6,"
                     "checkpoint_every_epochs=6,lr=1.0")
    task = train.TASKS["hierarchy"](config)
    assert task.sampler.presample == (presample == "yes")
    initial = task.evaluate(task.init_params(jax.random.PRNGKey(0)))
    results[presample] = train.run(config, tmp_path / presample).results["metrics"]
    assert results[presample]["mean_rank"] < initial["mean_rank"] / 3
  ratio = results["yes"]["mean_rank"] / results["no"]["mean_rank"]
  assert 2 / 3 < ratio < 3 / 2, results
  assert abs(results["yes"]["map"] - results["no"]["map"]) < 0.1, results
