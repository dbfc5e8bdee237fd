"""sparse_rows against the dense update: optimizer x geometry x dtype tables.

The reference is the wrapped optimizer's dense update of the whole table with the gradients of
repeated ids summed, restricted to the touched rows: untouched rows keep their values and their
per-row state ("lazy" Adam), touched rows get exactly the dense update.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from embedlab import geometry, optim

C = 1.0
ROWS, DIM = 40, 4
# Ids of three steps: repeats within a step, rows touched in one step and not the next.
STEP_IDS = [[3, 7, 3, 11, 3, 20], [7, 8, 9, 39, 0, 8], [11, 11, 12, 3, 25, 26]]

# name -> (factory(manifold, lr), geometries it runs on: None = every registered one).
OPTIMIZERS = {
    "rsgd_retr": (lambda m, lr: optim.riemannian_sgd(lr, manifold=m, c=C, update="retr"), None),
    "rsgd_expmap": (lambda m, lr: optim.riemannian_sgd(lr, manifold=m, c=C), None),
    "rsgd_momentum": (
        lambda m, lr: optim.riemannian_sgd(lr, manifold=m, c=C, momentum=0.5), None),
    "radam": (lambda m, lr: optim.riemannian_adam(lr, manifold=m, c=C), None),
    "optax_adam": (lambda m, lr: optax.adam(lr), ("euclidean",)),
    "optax_sgd": (lambda m, lr: optax.sgd(lr), ("euclidean",)),
}
PLAIN_OPTAX = ("optax_adam", "optax_sgd")
TABLE = [(name, g, dtype) for name, (_, only) in OPTIMIZERS.items()
         for g in (only or sorted(geometry.GEOMETRIES)) for dtype in ("float32", "float64")]


def _setup(opt_name, geometry_name, dtype):
  manifold = geometry.get(geometry_name)
  # A schedule of the step count (so the count must advance once per step), with rates exact in
  # binary (so eager and jitted float64 runs round them alike).
  inner = OPTIMIZERS[opt_name][0](manifold, lambda count: jnp.where(count < 1, 0.0625, 0.03125))
  point_manifold = None if opt_name in PLAIN_OPTAX else manifold
  table = manifold.random_point(jax.random.key(0), (ROWS, DIM), c=C, dtype=jnp.dtype(dtype))
  # A per-occurrence gradient for every step, small enough to keep each step local.
  grads = 0.3 * jax.random.normal(jax.random.key(1), (len(STEP_IDS), len(STEP_IDS[0]), DIM),
                                  jnp.dtype(dtype))
  return inner, point_manifold, {"table": table}, grads


def _dense_reference(inner, manifold, params, state, ids, row_grads):
  """The dense update of the summed gradients, then untouched rows and their state restored."""
  table = params["table"]
  grads = {"table": jnp.zeros_like(table).at[ids].add(row_grads)}
  updates, new_state = inner.update(grads, state, params)
  new = (optax.apply_updates(params, updates) if manifold is None else
         optim.apply_updates(params, updates, manifold=manifold, c=C))
  touched = jnp.zeros((table.shape[0],), bool).at[ids].set(True)

  def restore(new_leaf, old_leaf):
    if jnp.ndim(old_leaf) >= 1 and old_leaf.shape[0] == table.shape[0]:
      return jnp.where(touched.reshape((-1,) + (1,) * (old_leaf.ndim - 1)), new_leaf, old_leaf)
    return new_leaf

  return (jax.tree.map(restore, new, params), jax.tree.map(restore, new_state, state))


def _tolerance(dtype):
  return dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)


def _per_row_leaves(state):
  return [leaf for leaf in jax.tree.leaves(state) if jnp.ndim(leaf) >= 1]


@pytest.mark.parametrize("opt_name,geometry_name,dtype", TABLE)
def test_sparse_rows_match_the_dense_update_of_the_touched_rows(opt_name, geometry_name, dtype):
  with jax.enable_x64(dtype == "float64"):
    inner, manifold, params, grads = _setup(opt_name, geometry_name, dtype)
    rows = optim.sparse_rows(inner, manifold=manifold, c=C)
    update = jax.jit(rows.update)
    state = rows.init(params)
    want_params, want_state = params, inner.init(params)
    for step, ids in enumerate(STEP_IDS):
      ids = jnp.asarray(ids)
      before_params, before_state = params, state
      params, state = update({"table": grads[step]}, state, params, ids)
      want_params, want_state = _dense_reference(inner, manifold, want_params, want_state, ids,
                                                 grads[step])
      np.testing.assert_allclose(np.asarray(params["table"]), np.asarray(want_params["table"]),
                                 **_tolerance(dtype))
      for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(want_state)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), **_tolerance(dtype))
      # Untouched rows and their per-row state: bit for bit what they were.
      untouched = np.setdiff1d(np.arange(ROWS), np.asarray(ids))
      np.testing.assert_array_equal(np.asarray(params["table"])[untouched],
                                    np.asarray(before_params["table"])[untouched])
      for got, old in zip(_per_row_leaves(state), _per_row_leaves(before_state)):
        np.testing.assert_array_equal(np.asarray(got)[untouched], np.asarray(old)[untouched])
      assert params["table"].dtype == jnp.dtype(dtype)
    counts = [leaf for leaf in jax.tree.leaves(state) if jnp.ndim(leaf) == 0]
    assert counts and all(int(count) == len(STEP_IDS) for count in counts)
    if manifold is not None:
      geometry.check_on_manifold(manifold, params["table"], c=C)


# Every (geometry, rule) whose RSGD step is proj(x - lr rgrad): retr, and expmap in flat space.
LINEAR = [(g, u) for g in sorted(geometry.GEOMETRIES) for u in ("retr", "expmap")
          if u == "retr" or geometry.get(g).curvature_sign == 0]


@pytest.mark.parametrize("geometry_name,update", LINEAR)
def test_linear_path_matches_the_generic_path(geometry_name, update):
  """The scatter-add path of a linear step = the gather/update/scatter path, up to rounding."""
  manifold = geometry.get(geometry_name)
  inner = optim.riemannian_sgd(0.05, manifold=manifold, c=C, update=update)
  assert isinstance(inner, optim.LinearStepTransformation)
  # An optimizer that declares nothing takes the generic path, as does linear=False.
  undeclared = optax.GradientTransformation(inner.init, inner.update)
  assert not optim.sparse_rows(undeclared, manifold=manifold, c=C).linear
  _, _, params, grads = _setup("rsgd_retr", geometry_name, "float32")
  results = []
  for linear in (True, False):
    rows = optim.sparse_rows(inner, manifold=manifold, c=C, linear=linear)
    assert rows.linear == linear
    p, state = params, rows.init(params)
    for step, ids in enumerate(STEP_IDS):
      p, state = jax.jit(rows.update)({"table": grads[step]}, state, p, jnp.asarray(ids))
    results.append((p, state))
  (fast, fast_state), (slow, slow_state) = results
  np.testing.assert_allclose(np.asarray(fast["table"]), np.asarray(slow["table"]),
                             rtol=1e-5, atol=1e-6)
  assert int(fast_state.count) == int(slow_state.count) == len(STEP_IDS)


@pytest.mark.parametrize("geometry_name", sorted(geometry.GEOMETRIES))
@pytest.mark.parametrize("update,momentum", [("retr", None), ("expmap", None), ("retr", 0.5)])
def test_riemannian_sgd_declares_a_linear_step_exactly_when_it_is_one(geometry_name, update,
                                                                        momentum):
  manifold = geometry.get(geometry_name)
  opt = optim.riemannian_sgd(0.1, manifold=manifold, update=update, momentum=momentum)
  # proj(x - lr rgrad): the retraction always; the exponential map where it is x + v (flat).
  linear = momentum is None and (update == "retr" or manifold.curvature_sign == 0)
  assert isinstance(opt, optim.LinearStepTransformation) == linear
  if linear:
    x = manifold.random_point(jax.random.key(2), (5, DIM), c=C)
    g = jax.random.normal(jax.random.key(3), x.shape)
    steps, _ = opt.linear_step(g, opt.init(x), x)
    updates, _ = opt.update(g, opt.init(x), x)
    np.testing.assert_allclose(np.asarray(manifold.proj(x + steps, c=C)),
                               np.asarray(x + updates), rtol=1e-5, atol=1e-6)
  assert not isinstance(optim.riemannian_adam(0.1, manifold=manifold),
                        optim.LinearStepTransformation)


@pytest.mark.parametrize("opt_name", ["rsgd_retr", "radam", "optax_adam"])
def test_sparse_update_never_retraces(opt_name):
  inner, manifold, params, grads = _setup(opt_name, "euclidean", "float32")
  rows = optim.sparse_rows(inner, manifold=manifold, c=C)
  traces = []

  @jax.jit
  def step(params, state, row_grads, ids):
    traces.append(None)  # Python side effect: runs once per trace.
    return rows.update({"table": row_grads}, state, params, ids)

  state = rows.init(params)
  for i, ids in enumerate(STEP_IDS):
    params, state = step(params, state, grads[i], jnp.asarray(ids))
  assert len(traces) == 1


def test_every_row_once_is_the_dense_update():
  """ids = every row once: sparse rows and the dense update are the same computation."""
  manifold = geometry.get("poincare")
  inner = optim.riemannian_adam(0.05, manifold=manifold, c=C)
  table = manifold.random_point(jax.random.key(0), (ROWS, DIM), c=C)
  grads = jax.random.normal(jax.random.key(1), table.shape)
  ids = jnp.arange(ROWS)[::-1]
  rows = optim.sparse_rows(inner, manifold=manifold, c=C)
  got, _ = rows.update(grads[ids], rows.init(table), table, ids)
  updates, _ = inner.update(grads, inner.init(table), table)
  want = optim.apply_updates(table, updates, manifold=manifold, c=C)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_manifold_must_be_a_manifold_record():
  with pytest.raises(TypeError, match="Manifold or None"):
    optim.sparse_rows(optax.sgd(0.1), manifold="poincare")
