"""End-to-end runs of the metric-learning task (zero-shot retrieval) on small presets."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import geometry
from embedlab import losses
from embedlab import train
from embedlab.train import metric_learning
from tests.conftest import data_dir_or_skip, load_experiment, logged_losses, quiet_config

ml_config = load_experiment("metric_learning")

_config = functools.partial(quiet_config, ml_config)


def test_smoke_run_writes_every_output_and_resumes_bitwise(tmp_path):
  straight = tmp_path / "straight"
  outcome = train.run(_config("smoke"), straight)
  for name in ["config.json", "metrics.jsonl", "results.json", "embeddings.npz"]:
    assert (straight / name).is_file(), name
  results = json.loads((straight / "results.json").read_text())
  assert results["finished"] and results["epochs_completed"] == 4
  metrics = results["metrics"]
  assert metrics["unseen_num_queries"] == 896 and metrics["seen_num_queries"] == 180
  for key in ["precision_at_1", "r_precision", "map_at_r", "nmi", "ami", "recall_at_8"]:
    assert 0.0 <= metrics[f"unseen_{key}"] <= 1.0 and 0.0 <= metrics[f"seen_{key}"] <= 1.0
  assert results["dataset"]["unseen_items"] == 896
  stored = np.load(straight / "embeddings.npz")
  assert stored["unseen_embeddings"].shape == (896, 8)
  assert set(stored["unseen_labels"].tolist()) == {5, 6, 7, 8, 9}
  assert outcome.results["metrics"] == metrics

  # Killed after its first checkpoint, then resumed: the same run, bit for bit.
  killed = tmp_path / "killed"
  partial = train.run(_config("smoke,stop_after_epochs=2"), killed)
  assert not partial.results["finished"] and partial.results["epochs_completed"] == 2
  resumed = train.run(_config("smoke"), killed)
  assert resumed.results["finished"]
  np.testing.assert_array_equal(stored["unseen_embeddings"],
                                np.load(killed / "embeddings.npz")["unseen_embeddings"])
  assert logged_losses(straight) == logged_losses(killed)


# "smoke" is the run above.
@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(set(ml_config.PRESETS) - {"smoke"}))
def test_every_preset_trains_restores_and_continues(tmp_path, preset):
  overrides = ("epochs=2,stop_after_epochs=1,eval_every_epochs=2,checkpoint_every_epochs=1,"
               "epochs_per_call=1,steps=2,eval.baselines=false")
  if preset == "wordnet_gloss":
    data_dir_or_skip()
    overrides += ",wordnet.max_items=20"
  partial = train.run(_config(f"{preset},{overrides}"), tmp_path)
  assert partial.results["epochs_completed"] == 1
  resumed = overrides.replace("stop_after_epochs=1", "stop_after_epochs=none")
  finished = train.run(_config(f"{preset},{resumed}"), tmp_path)
  assert finished.results["finished"] and finished.results["epochs_completed"] == 2
  assert np.isfinite(finished.results["metrics"]["unseen_map_at_r"])


@pytest.mark.slow
def test_training_beats_the_untrained_encoder_on_seen_classes(tmp_path):
  """Held-out items of the trained classes: far better than before training and than pixels."""
  config = _config("digits,epochs=4,eval_every_epochs=4,checkpoint_every_epochs=4,"
                   "epochs_per_call=4")
  metrics = train.run(config, tmp_path).results["metrics"]
  assert metrics["seen_map_at_r"] > metrics["baseline_init_seen_map_at_r"] + 0.2
  assert metrics["seen_map_at_r"] > metrics["baseline_raw_seen_map_at_r"] + 0.2
  assert metrics["seen_nmi"] > metrics["baseline_raw_seen_nmi"]


def _batch(task):
  """A class-major batch built by hand (the sampler has its own test): K items of P classes."""
  P, K = task.config.classes_per_batch, task.config.samples_per_class
  members = np.asarray(task.data["members"])
  x = task.data["features"][members[:P, :K].reshape(-1)]
  return x, jnp.repeat(jnp.arange(P, dtype=jnp.int32), K)


def _task(loss, geometry_name):
  return metric_learning.MetricLearningTask(
      _config(f"smoke,loss={loss},geometry={geometry_name},eval.baselines=false"))


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_every_loss_traces_in_every_geometry_it_supports_and_only_there(loss):
  """Abstract evaluation of loss and gradient (cheap: no compilation) in every geometry."""
  spec = losses.LOSSES[loss]
  for geometry_name, manifold in geometry.GEOMETRIES.items():
    if not spec.supports(manifold):
      with pytest.raises(ValueError, match=f"does not support geometry '{geometry_name}'"):
        _task(loss, geometry_name)
      continue
    task = _task(loss, geometry_name)
    params = jax.eval_shape(task.init_params, jax.random.PRNGKey(0))
    x, labels = _batch(task)
    value, grads = jax.eval_shape(jax.value_and_grad(task._loss), params, x, labels,
                                  jax.random.PRNGKey(1))
    assert value.shape == () and jax.tree.structure(grads) == jax.tree.structure(params)


# Compiling a step costs 0.5-8 s a case, so the real gradient is taken once per loss, in its
# supported geometries in turn (the loss modules test every geometry of each loss themselves;
# this tests the wiring: adapter, class vectors, the map onto the manifold).
def _step_cases():
  for i, (name, spec) in enumerate(sorted(losses.LOSSES.items())):
    supported = [g for g, m in sorted(geometry.GEOMETRIES.items()) if spec.supports(m)]
    yield name, supported[i % len(supported)]


@pytest.mark.parametrize("loss, geometry_name", list(_step_cases()))
def test_every_loss_has_finite_nonzero_gradients(loss, geometry_name):
  task = _task(loss, geometry_name)
  params = task.init_params(jax.random.PRNGKey(0))
  x, labels = _batch(task)
  value, grads = jax.jit(jax.value_and_grad(task._loss))(params, x, labels,
                                                         jax.random.PRNGKey(1))
  assert np.isfinite(float(value)), (loss, geometry_name)
  leaves = [np.asarray(g) for g in jax.tree.leaves(grads)]
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert any(np.any(g != 0) for g in leaves)
  if task.spec.class_params == "learned":
    assert np.any(np.asarray(grads["class_vectors"]) != 0)


def test_balanced_batches_hold_p_classes_of_k_distinct_items():
  task = metric_learning.MetricLearningTask(_config("smoke,P=4,K=6"))
  batches = jax.jit(task.epoch_batches)(jax.random.PRNGKey(0), task.data)
  rows, labels = np.asarray(batches["rows"]), np.asarray(batches["labels"])
  assert rows.shape == labels.shape == (task.steps_per_epoch, 24)
  train_labels = np.asarray(task.data["labels"])
  for step_rows, step_labels in zip(rows, labels):
    np.testing.assert_array_equal(train_labels[step_rows], step_labels)
    blocks = step_rows.reshape(4, 6)
    assert len(set(step_labels.tolist())) == 4
    assert all(len(set(block.tolist())) == 6 for block in blocks)


def test_small_classes_repeat_items_rather_than_pad():
  """K larger than a class: every slot still holds an item of that class."""
  task = metric_learning.MetricLearningTask(_config("smoke,P=5,K=200,seen_test_fraction=0.5"))
  batches = jax.jit(task.epoch_batches)(jax.random.PRNGKey(0), task.data)
  rows, labels = np.asarray(batches["rows"]), np.asarray(batches["labels"])
  np.testing.assert_array_equal(np.asarray(task.data["labels"])[rows], labels)
  counts = np.asarray(task.data["counts"])
  assert counts.max() < 200 and all(len(set(r.tolist())) == counts.sum() for r in rows)


@pytest.mark.parametrize("arg, message", [
    ("smoke,loss=arc", "unknown loss 'arc'; expected one of"),
    ("smoke,geometry=hyperbolic", "unknown geometry 'hyperbolic'"),
    ("smoke,dataset=mnist", "unknown dataset 'mnist'"),
    ("smoke,P=6", "classes_per_batch=6 exceeds the 5 seen classes"),
    ("smoke,K=1", "samples_per_class must be at least 2"),
    ("smoke,dim=0", "must be positive"),
    ("smoke,model.hidden=64xa", "model.hidden='64xa'"),
    ("smoke,model.hidden=64x0", r"model.hidden=\(64, 0\): hidden widths must be positive"),
    ("smoke,geometry=sphere,losses.triplet.distance=snr",
     "loss 'triplet' cannot run in geometry 'sphere'.*snr"),
    ("smoke,losses.triplet.mining=hardest", "loss 'triplet' cannot run.*hardest"),
    ("smoke,loss=triplet_snr,geometry=poincare",
     r"loss 'triplet_snr' does not support geometry 'poincare'; it needs a geometry with "
     r"vector_space"),
    ("smoke,loss=busemann_prototype,geometry=sphere", r"needs the geometries \['poincare'\]"),
])
def test_bad_config_values_give_clear_errors(tmp_path, arg, message):
  with pytest.raises(ValueError, match=message):
    train.run(_config(arg), tmp_path)


def test_missing_data_dir_names_the_variable(tmp_path, monkeypatch):
  monkeypatch.delenv("EMBEDLAB_DATA_DIR", raising=False)
  with pytest.raises(ValueError, match="EMBEDLAB_DATA_DIR"):
    train.run(_config("wordnet_gloss"), tmp_path / "a")
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
    train.run(_config(f"wordnet_gloss,data_dir={tmp_path / 'nowhere'}"), tmp_path / "b")
