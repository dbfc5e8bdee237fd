"""The shared training loop: setup -> data -> model/optimizer -> state -> jitted epochs ->
periodic eval -> checkpoint -> final report.

A *task* (e.g. :mod:`embedlab.train.hierarchy`) supplies the pieces that differ between
experiment families; this module owns everything they share: the workdir layout, resume,
the donated jitted epoch function, the NaN guard, logging and progress.

Workdir layout: ``config.json``, ``metrics.jsonl`` (one JSON object per epoch and per eval),
``checkpoints/<epoch>/`` (orbax), ``results.json`` (:mod:`embedlab.train.outputs`: the loop adds
``epochs_completed`` and ``train_seconds_this_run``, and ``metrics`` once the run is finished)
and whatever the task's ``finalize`` writes.

Determinism: the PRNG key of epoch ``e`` is ``fold_in(train_key, e)`` and every call runs the
same number of epochs, so a run resumed from the checkpoint of epoch ``k`` computes exactly what
the uninterrupted run computes after epoch ``k`` (bitwise on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from embedlab.train import checkpoint as checkpoint_lib
from embedlab.train import outputs
from embedlab.train import sharding as sharding_lib

# Config fields that may change between a run and its resumption without invalidating it.
RESUMABLE_CHANGES = frozenset({
    "epochs", "stop_after_epochs", "eval_every_epochs", "checkpoint_every_epochs",
    "data_dir", "progress", "eval", "plot"})


class Task(Protocol):
  """What an experiment family plugs into :func:`train_and_evaluate`."""

  steps_per_epoch: int
  table_rows: int                      # padded row count of sharded tables (see sharding.py)
  data: Any                            # pytree of device arrays the step reads (not closed over)
  optimizer: optax.GradientTransformation

  def init_params(self, key) -> Any: ...
  def epoch_batches(self, key, data) -> Any: ...           # leading axis: steps_per_epoch
  def train_step(self, params, opt_state, batch, key, data) -> tuple[Any, Any, jax.Array]: ...
  def learning_rate(self, step: int) -> float: ...
  def evaluate(self, params, *, final: bool = False) -> dict[str, float]: ...  # final: last epoch
  def finalize(self, params, workdir: pathlib.Path, results: dict) -> None: ...
  # Optional: refresh_data(params, data, epoch) -> data, called before each jitted call, for
  # data derived from the parameters (the hierarchy task's hard-negative pools).
  # Optional: refresh_params(params, epoch) -> (params, info dict or None), called before it,
  # for non-gradient moves of the parameters (the hierarchy task's re-seating of stuck leaves).


@dataclasses.dataclass
class Outcome:
  params: Any
  results: dict


def _flatten(tree: dict, prefix: str = "") -> dict:
  """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _check_or_write_config(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
  path = workdir / "config.json"
  current = outputs.config_dict(config)
  if path.exists():
    try:
      previous = json.loads(path.read_text())
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e}); is this an embedlab workdir?") from None
    before, now = _flatten(previous), _flatten(current)
    # A field the code gained after the run began is not in its config.json: the run resumes
    # with the field's current value, and says so.
    added = sorted(k for k in now if k not in before)
    changed = sorted(k for k in before
                     if before[k] != now.get(k) and k.split(".")[0] not in RESUMABLE_CHANGES)
    if changed:
      diffs = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
      raise ValueError(
          f"{workdir} holds a run with a different config ({diffs}); resuming would mix two "
          "experiments. Use a new --workdir, or delete the old one.")
    if added:
      print(f"Note: {path} predates the config fields "
            + ", ".join(f"{k}={now[k]!r}" for k in added) + "; resuming with these values.")
  outputs.write_json(path, current)


def _truncate_metrics(path: pathlib.Path, last_epoch: int) -> None:
  """Drops lines logged after the checkpoint we resume from (a killed run's tail)."""
  if not path.exists():
    return

  def kept(row: dict) -> bool:
    # A line logged at the start of epoch e (before its training, "at": "start") describes
    # something after checkpoint e, which the resumed run logs again.
    if row.get("at") == "start":
      return row["epoch"] < last_epoch
    return row.get("epoch", 0) <= last_epoch

  lines = [line for line in path.read_text().splitlines()
           if line.strip() and kept(json.loads(line))]
  outputs.write_text(path, "".join(line + "\n" for line in lines))


def chunk_epochs(config: ml_collections.ConfigDict) -> int:
  """Epochs per jitted call: divides every cadence, so all calls have the same length."""
  chunk = config.epochs_per_call
  for every in (config.epochs, config.eval_every_epochs, config.checkpoint_every_epochs,
                config.stop_after_epochs):
    if every:
      chunk = math.gcd(chunk, int(every))
  return max(chunk, 1)


def build_epoch_fn(task: Task, mesh, epochs_per_call: int) -> Callable:
  """The donated, jitted function that runs ``epochs_per_call`` epochs in one call."""

  def one_epoch(carry, epoch):
    params, opt_state, data, train_key = carry
    epoch_key = jax.random.fold_in(train_key, epoch)
    batch_key, step_key = jax.random.split(epoch_key)
    batches = task.epoch_batches(batch_key, data)

    def one_step(inner, xs):
      params, opt_state = inner
      step, batch = xs
      batch = sharding_lib.constrain_batch(batch, mesh)
      params, opt_state, loss = task.train_step(
          params, opt_state, batch, jax.random.fold_in(step_key, step), data)
      return (params, opt_state), loss

    steps = jnp.arange(task.steps_per_epoch)
    (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), (steps, batches))
    return (params, opt_state, data, train_key), jnp.mean(losses)

  def run_epochs(state, data, train_key):
    epochs = state["epoch"] + jnp.arange(epochs_per_call, dtype=jnp.int32)
    carry = (state["params"], state["opt_state"], data, train_key)
    (params, opt_state, _, _), epoch_losses = jax.lax.scan(one_epoch, carry, epochs)
    new_state = {"params": params, "opt_state": opt_state,
                 "epoch": state["epoch"] + epochs_per_call}
    return new_state, epoch_losses

  return jax.jit(run_epochs, donate_argnums=0)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       task: Task) -> Outcome:
  """Trains ``task`` under ``config``, resuming from ``workdir`` if it holds a checkpoint."""
  wall_start = time.perf_counter()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  _check_or_write_config(workdir, config)

  # --- state -------------------------------------------------------------------------------
  mesh = sharding_lib.data_mesh()
  init_key, train_key = jax.random.split(jax.random.PRNGKey(config.seed))
  params = task.init_params(init_key)
  state = {"params": params, "opt_state": task.optimizer.init(params),
           "epoch": jnp.zeros((), jnp.int32)}
  shardings = sharding_lib.state_shardings(state, mesh, table_rows=task.table_rows)
  state = jax.device_put(state, shardings)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  data = jax.device_put(task.data, replicated)

  checkpointer = checkpoint_lib.Checkpointer(workdir)
  metrics_path = workdir / "metrics.jsonl"
  start_epoch = checkpointer.latest_epoch()
  if start_epoch is not None:
    state = checkpointer.restore(start_epoch, checkpoint_lib.abstract_like(state))
    _truncate_metrics(metrics_path, start_epoch)
    print(f"Resuming from the checkpoint of epoch {start_epoch} in {workdir}")
  else:
    start_epoch = 0
    metrics_path.unlink(missing_ok=True)

  # --- train ---------------------------------------------------------------------------------
  epochs_per_call = chunk_epochs(config)
  run_epochs = build_epoch_fn(task, mesh, epochs_per_call)
  stop_at = config.epochs
  if config.stop_after_epochs:
    stop_at = min(stop_at, int(config.stop_after_epochs))
  epoch = int(state["epoch"])
  train_time = 0.0
  last_eval: dict[str, float] = {}
  with open(metrics_path, "a") as metrics_file, tqdm.tqdm(
      total=config.epochs, initial=epoch, unit="epoch", disable=not config.progress,
      dynamic_ncols=True) as bar:
    while epoch < stop_at:
      tick = time.perf_counter()
      if hasattr(task, "refresh_params"):
        params, info = task.refresh_params(state["params"], epoch)
        if info is not None:
          state = {**state, "params": jax.device_put(params, shardings["params"])}
          metrics_file.write(json.dumps({"epoch": epoch, "at": "start",
                                         **{f"reseat/{k}": v for k, v in info.items()}}) + "\n")
          bar.write(f"epoch {epoch}: re-seated " + ", ".join(f"{k}={v}" for k, v in info.items()))
      if hasattr(task, "refresh_data"):  # data derived from the parameters (hard negatives)
        data = jax.device_put(task.refresh_data(state["params"], data, epoch), replicated)
      state, epoch_losses = run_epochs(state, data, train_key)
      epoch_losses = np.asarray(epoch_losses)  # blocks: the timing below is real
      train_time += time.perf_counter() - tick
      if not np.all(np.isfinite(epoch_losses)):
        bad = epoch + int(np.argmin(np.isfinite(epoch_losses)))
        raise FloatingPointError(
            f"non-finite loss at epoch {bad} (no checkpoint written for it); lower the learning "
            "rate or check the data. Last good checkpoint is kept in the workdir.")
      for i, loss in enumerate(epoch_losses):
        step = (epoch + i + 1) * task.steps_per_epoch
        metrics_file.write(json.dumps({"epoch": epoch + i + 1, "loss": float(loss),
                                       "learning_rate": task.learning_rate(step)}) + "\n")
      epoch += epochs_per_call
      bar.update(epochs_per_call)
      bar.set_postfix(loss=f"{float(epoch_losses[-1]):.4f}")
      if epoch % config.eval_every_epochs == 0 or epoch == config.epochs:
        last_eval = task.evaluate(state["params"], final=epoch == config.epochs)
        metrics_file.write(json.dumps({"epoch": epoch, **{f"eval/{k}": v
                                                          for k, v in last_eval.items()}}) + "\n")
        bar.write(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4g}" for k, v in last_eval.items()
                                                 if isinstance(v, float)))
      metrics_file.flush()
      if epoch % config.checkpoint_every_epochs == 0 or epoch == stop_at:
        checkpointer.save(epoch, state)
  checkpointer.close()

  results = outputs.new_results(finished=epoch >= config.epochs, epochs_completed=epoch,
                                train_seconds_this_run=round(train_time, 3))
  if epoch >= config.epochs:
    if not last_eval:
      last_eval = task.evaluate(state["params"], final=True)
    results["metrics"] = last_eval
    task.finalize(state["params"], workdir, results)
  outputs.write_results(workdir, results, wall_start=wall_start)
  return Outcome(params=state["params"], results=results)
