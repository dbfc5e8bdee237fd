"""The hierarchy task's sparse steps: the scatter-add path of stateless RSGD against the generic
gather/update/scatter path of :func:`embedlab.optim.sparse_rows` (``linear_rows=false``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import train
from embedlab.geometry import _numerics as nm
from tests.conftest import load_experiment, logged_losses, quiet_config

_config = functools.partial(quiet_config, load_experiment("hierarchy"))

# (geometry, update rule, config overrides, steps): every rule whose step is proj(x + v). The
# ball's second case has a rate that puts rows on the boundary margin in its first step, so the
# projection branch runs; from there a float32 rounding difference grows ~10-100x per step
# (distances near the boundary are that sensitive, and rows bounce off it), hence one step.
LINEAR_CASES = [
    ("poincare", "retr", "lr=1.0", 40),
    ("poincare", "retr", "lr=30.0", 1),
    # The hyperboloid's float32 tangent projection cancels (x_0 ~ 1 against small space parts),
    # so rounding differences grow a little each step: a gentler rate keeps 20 steps in bounds.
    ("lorentz", "retr", "lr=0.3", 20),
    # Spherical distances of points 1e-3 apart (the default init) are arccos of ~1 - 1e-6:
    # ill-conditioned enough in float32 to blow an ulp up 100x per step; spread points are not.
    ("sphere", "retr", "lr=1.0,init_scale=0.5", 40),
    ("euclidean", "retr", "lr=1.0", 40),
    ("euclidean", "expmap", "lr=1.0", 40),
]


def _task(arg: str, update: str = "retr"):
  config = _config(f"smoke,row_updates=sparse,negatives.presample=no,burn_in=0,{arg}")
  config.optim.update_rule = update
  return train.TASKS["hierarchy"](config)


def _run_steps(task, steps: int):
  """``steps`` jitted training steps from the task's initial params; params, state, losses."""
  params = task.init_params(jax.random.PRNGKey(0))
  opt_state = task.optimizer.init(params)
  batches = jax.tree.map(lambda a: a[:steps],
                         task.epoch_batches(jax.random.PRNGKey(1), task.data))

  @jax.jit
  def run(params, opt_state):
    def one_step(carry, xs):
      step, batch = xs
      params, opt_state, loss = task.train_step(
          *carry, batch, jax.random.fold_in(jax.random.PRNGKey(2), step), task.data)
      return (params, opt_state), loss

    return jax.lax.scan(one_step, (params, opt_state), (jnp.arange(steps), batches))

  (params, opt_state), losses = run(params, opt_state)
  return params, opt_state, np.asarray(losses)


@pytest.mark.parametrize("negatives_from", ["uniform", "batch"])
@pytest.mark.parametrize("geometry,update,overrides,steps", LINEAR_CASES)
def test_linear_step_matches_generic_sparse_step(geometry, update, overrides, steps,
                                                 negatives_from):
  """Same params, state and losses after many steps, up to float32 rounding."""
  arg = f"geometry={geometry},{overrides},negatives.source={negatives_from},negatives.shared=64"
  fast = _task(arg, update)
  generic = _task(arg + ",linear_rows=false", update)
  assert fast.rows.linear and not generic.rows.linear
  got, got_state, got_losses = _run_steps(fast, steps)
  want, want_state, want_losses = _run_steps(generic, steps)
  np.testing.assert_allclose(np.asarray(got["embeddings"]), np.asarray(want["embeddings"]),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_losses, want_losses, rtol=1e-5)
  assert int(got_state.count) == int(want_state.count) == steps
  table = np.asarray(got["embeddings"])
  np.testing.assert_array_equal(table[fast.num_nodes:], np.asarray(
      fast.init_params(jax.random.PRNGKey(0))["embeddings"])[fast.num_nodes:])
  if overrides == "lr=30.0":
    max_norm = 1.0 - nm.ball_margin(table.dtype)
    norms = np.linalg.norm(table.astype(np.float64), axis=-1)
    assert np.any(norms > max_norm * (1 - 1e-6)), "the projection branch never ran"
    assert np.all(norms <= max_norm * (1 + 1e-6))


@pytest.mark.parametrize("arg,update,expected", [
    ("optimizer=rsgd,geometry=poincare", "retr", True),
    ("optimizer=rsgd,geometry=lorentz", "retr", True),
    ("optimizer=rsgd,geometry=euclidean", "expmap", True),
    # expmap on a curved manifold is not linear in the summed gradient.
    ("optimizer=rsgd,geometry=poincare", "expmap", False),
    ("optimizer=rsgd,geometry=lorentz", "expmap", False),
    # Adam's moments are state: the generic path gathers and scatters them.
    ("optimizer=radam,geometry=poincare", "retr", False),
])
def test_linear_step_only_where_the_update_is_linear(arg, update, expected):
  assert _task(arg, update).rows.linear == expected


def test_untouched_rows_stay_bit_identical():
  """Rows no step touched (never drawn, never in a pair) keep their initial bits."""
  task = _task("geometry=lorentz,lr=1.0")
  params, _, _ = _run_steps(task, 3)
  initial = np.asarray(task.init_params(jax.random.PRNGKey(0))["embeddings"])
  table = np.asarray(params["embeddings"])
  changed = np.any(table != initial, axis=-1)
  assert 0 < changed.sum() < task.num_nodes  # 3 steps touch at most 3 * 32 * 12 rows
  assert changed.sum() <= 3 * task.config.batch_size * (task.config.negatives.per_pair + 2)


def test_sparse_linear_resume_is_bitwise_identical(tmp_path):
  arg = "smoke,row_updates=sparse,epochs=4,checkpoint_every_epochs=2,eval_every_epochs=4"
  straight = train.run(_config(arg), tmp_path / "straight")
  assert train.TASKS["hierarchy"](_config(arg)).rows.linear
  partial = train.run(_config(arg + ",stop_after_epochs=2"), tmp_path / "killed")
  assert partial.results["epochs_completed"] == 2
  resumed = train.run(_config(arg), tmp_path / "killed")
  np.testing.assert_array_equal(np.asarray(resumed.params["embeddings"]),
                                np.asarray(straight.params["embeddings"]))
  assert logged_losses(tmp_path / "straight") == logged_losses(tmp_path / "killed")
