"""Riemannian optimizers: optimizer x geometry x dtype tables, closed-form steps, optax interop."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from embedlab import optim
from embedlab.geometry import GEOMETRIES, check_on_manifold

C = 1.0
N, D = 8, 4  # Rows and ambient size of the test tables.
CHUNK = 50  # Steps per jitted call; runs are several calls, so a retrace would show.

# name -> (factory, options, learning rate for convergence, largish rate for the stress run).
# The stress loss's Riemannian gradient is 2 d(x, s) ~ 4, so a rate of 0.4 is a step of ~1.6.
# The retraction is only first-order: at such steps it no longer follows geodesics and diverges
# (the ball pins the points at its margin, the hyperboloid overflows), hence its smaller rate.
OPTIMIZERS = {
    "rsgd": (optim.riemannian_sgd, {}, 0.1, 0.4),
    "rsgd_momentum": (optim.riemannian_sgd, {"momentum": 0.5}, 0.05, 0.2),
    "radam": (optim.riemannian_adam, {}, 0.05, 0.3),
    "rsgd_retr": (optim.riemannian_sgd, {"update": "retr"}, 0.1, 0.2),
}
DTYPES = ["float32", "float64"]


def _make(opt_name, manifold, learning_rate):
  factory, options, _, _ = OPTIMIZERS[opt_name]
  return factory(learning_rate, manifold=manifold, c=C, **options)


def _x64(dtype):
  """Context for ``dtype``: float64 arrays need x64 mode."""
  return jax.enable_x64(dtype == "float64")


def _points(geometry, seed, dtype, shape=(N, D)):
  return GEOMETRIES[geometry].random_point(jax.random.key(seed), shape, c=C, dtype=dtype)


@functools.cache
def _runner(opt_name, geometry, dtype):
  """A jitted ``CHUNK``-step run for one table row, and the list its traces are appended to.

  The loss is ``sum_i d(x_i, s_i)^2`` where the targets ``s`` are the fixed table ``t`` moved at
  every step by a geodesic of length ``noise`` in a random direction (from the given Gaussians):
  noisy gradients of an intrinsic loss. (Plain Gaussian *ambient* gradients are not: on the
  hyperboloid their Riemannian size grows like ``x_0^2`` and any step size diverges.)
  The learning rate, noise and Gaussians are arguments (data, drawn outside), so the convergence
  and stress tests share one compilation per case: XLA's CPU compile time is what this file's
  runtime is made of.
  """
  del dtype  # Part of the cache key only: one jitted function (and trace count) per dtype.
  manifold = GEOMETRIES[geometry]
  traces = []

  @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
  def run(x, state, target, gaussians, learning_rate, noise):
    traces.append(None)  # Python side effect: runs once per trace, never on cached calls.
    opt = _make(opt_name, manifold, learning_rate)

    def step(carry, gaussian):
      x, state = carry
      tangent = manifold.proj_tangent(target, gaussian, c=C)
      unit = tangent / manifold.norm(target, tangent, c=C)[..., None]
      noisy_target = manifold.expmap(target, noise * unit, c=C)
      grads = jax.grad(lambda x: jnp.sum(manifold.dist(x, noisy_target, c=C) ** 2))(x)
      updates, state = opt.update(grads, state, x)
      return (optim.apply_updates(x, updates, manifold=manifold, c=C), state), None

    (x, state), _ = jax.lax.scan(step, (x, state), gaussians)
    return x, state

  return run, traces


def _run(opt_name, geometry, dtype, *, steps, learning_rate, noise, seed=0):
  """(initial table, final table, target, state, trace count) after ``steps`` steps."""
  run, traces = _runner(opt_name, geometry, dtype)
  x0, target = _points(geometry, seed, dtype), _points(geometry, seed + 1, dtype)
  x, state = x0, _make(opt_name, GEOMETRIES[geometry], learning_rate).init(x0)
  lr, noise = jnp.asarray(learning_rate, dtype), jnp.asarray(noise, dtype)
  for i in range(steps // CHUNK):
    gaussians = jax.random.normal(jax.random.key(100 + i), (CHUNK, N, D), dtype)
    x, state = run(x, state, target, gaussians, lr, noise)
  return x0, x, target, state, len(traces)


TABLE = [(o, g, d) for o in OPTIMIZERS for g in GEOMETRIES for d in DTYPES]


@pytest.mark.parametrize("opt_name,geometry,dtype", TABLE)
def test_converges_to_target_table(opt_name, geometry, dtype):
  with _x64(dtype):
    x0, x, target, _, _ = _run(opt_name, geometry, dtype, steps=300,
                               learning_rate=OPTIMIZERS[opt_name][2], noise=0.0)
    manifold = GEOMETRIES[geometry]
    before = float(jnp.mean(manifold.dist(x0, target, c=C)))
    after = float(jnp.mean(manifold.dist(x, target, c=C)))
  assert x.dtype == jnp.dtype(dtype)
  assert after < 1e-3 * before, (before, after)


@pytest.mark.parametrize("opt_name,geometry,dtype", TABLE)
def test_never_retraces_after_first_call(opt_name, geometry, dtype):
  with _x64(dtype):
    _, _, _, state, traces = _run(opt_name, geometry, dtype, steps=4 * CHUNK,
                                  learning_rate=OPTIMIZERS[opt_name][2], noise=1.0)
  assert traces == 1
  # The state keeps its dtypes (a promotion would change the carry's type and retrace).
  for leaf in jax.tree.leaves(state.mu if hasattr(state, "mu") else state.momentum):
    assert leaf.dtype == jnp.dtype(dtype)


@pytest.mark.parametrize("opt_name,geometry", [(o, g) for o in OPTIMIZERS for g in GEOMETRIES])
def test_points_stay_on_manifold_after_1000_float32_steps(opt_name, geometry):
  _, x, _, state, traces = _run(opt_name, geometry, "float32", steps=1000,
                                learning_rate=OPTIMIZERS[opt_name][3], noise=2.0)
  check_on_manifold(GEOMETRIES[geometry], x, c=C, name=f"{opt_name} params")
  assert traces == 1
  assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(state))


def test_poincare_retraction_overshooting_the_ball_stays_inside():
  # x - lr * rgrad leaves the ball at this rate; proj must keep every point strictly inside.
  _, x, _, _, _ = _run("rsgd_retr", "poincare", "float32", steps=1000, learning_rate=0.6,
                       noise=2.0)
  check_on_manifold(GEOMETRIES["poincare"], x, c=C)
  assert float(jnp.max(jnp.linalg.norm(x, axis=-1))) > 0.999  # It did reach the margin.
  assert float(jnp.max(jnp.linalg.norm(x, axis=-1))) <= 1.0 - 1e-5


@pytest.mark.parametrize("opt_name,geometry", [(o, g) for o in OPTIMIZERS for g in GEOMETRIES])
def test_rows_without_gradient_do_not_move(opt_name, geometry):
  # Embedding tables get sparse gradients: only the rows in the batch have a nonzero one.
  # Plain RSGD has no memory, so a row outside this step's batch must not move; with momentum
  # or Adam a row moves while it has history, but rows never in a batch must stay put.
  manifold = GEOMETRIES[geometry]
  x0, target = _points(geometry, 0, "float32"), _points(geometry, 1, "float32")
  batches = [[0, 1, 2], [2, 3, 4], [1, 3]]  # Rows 5, 6, 7 never get a gradient.
  memoryless = opt_name in ("rsgd", "rsgd_retr")
  opt = _make(opt_name, manifold, OPTIMIZERS[opt_name][2])
  x, state = x0, opt.init(x0)
  for batch in batches:
    in_batch = np.isin(np.arange(N), batch)
    loss = lambda x: jnp.sum(jnp.where(in_batch, manifold.dist(x, target, c=C) ** 2, 0.0))
    updates, state = opt.update(jax.grad(loss)(x), state, x)
    updates = np.asarray(updates)
    assert np.all(np.any(updates[in_batch] != 0.0, axis=-1))
    if memoryless:
      assert np.all(updates[~in_batch] == 0.0)
    x = optax.apply_updates(x, updates)
  np.testing.assert_array_equal(np.asarray(x)[5:], np.asarray(x0)[5:])


@pytest.mark.parametrize("momentum", [None, 0.9])
def test_rsgd_on_euclidean_space_is_optax_sgd(momentum):
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(0), 4)
    params = jax.random.normal(keys[0], (N, D), jnp.float64)
    ours = optim.riemannian_sgd(0.1, manifold=GEOMETRIES["euclidean"], momentum=momentum)
    reference = optax.sgd(0.1, momentum=momentum)
    ours_state, reference_state = ours.init(params), reference.init(params)
    for key in keys[1:]:
      grads = jax.random.normal(key, (N, D), jnp.float64)
      ours_updates, ours_state = ours.update(grads, ours_state, params)
      reference_updates, reference_state = reference.update(grads, reference_state, params)
      np.testing.assert_allclose(ours_updates, reference_updates, rtol=1e-12, atol=1e-14)
      params = optax.apply_updates(params, reference_updates)


@pytest.mark.parametrize("x,g,lr", [
    # Interior step: x - lr (1 - |x|^2)^2 / 4 g stays inside the ball.
    ([0.3, -0.4], [1.0, 2.0], 0.5),
    ([0.0, 0.0], [-0.2, 0.1], 1.0),
    # The step would leave the ball: proj puts it on the radius (1 - 1e-10) sphere (float64).
    ([0.6, 0.7], [-50.0, -80.0], 1.0),
])
def test_rsgd_retr_poincare_is_nickel_kiela_update(x, g, lr):
  with jax.enable_x64(True):
    x_np, g_np = np.array([x]), np.array([g])
    expected = x_np - lr * (1.0 - np.sum(x_np**2)) ** 2 / 4.0 * g_np
    norm = np.linalg.norm(expected)
    if norm > 1.0 - 1e-10:
      expected = expected / norm * (1.0 - 1e-10)
    manifold = GEOMETRIES["poincare"]
    opt = optim.riemannian_sgd(lr, manifold=manifold, update="retr")
    params = jnp.asarray(x_np)
    updates, _ = opt.update(jnp.asarray(g_np), opt.init(params), params)
    new = optim.apply_updates(params, updates, manifold=manifold)
  np.testing.assert_allclose(new, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_rsgd_half_step_on_squared_distance_lands_on_target(geometry):
  # The Riemannian gradient of d(x, t)^2 is -2 log_x(t): one exact (expmap) step of 1/2 is t.
  manifold = GEOMETRIES[geometry]
  with jax.enable_x64(True):
    x, target = _points(geometry, 0, "float64"), _points(geometry, 1, "float64")
    grads = jax.grad(lambda x: jnp.sum(manifold.dist(x, target, c=C) ** 2))(x)
    opt = optim.riemannian_sgd(0.5, manifold=manifold)
    updates, _ = opt.update(grads, opt.init(x), x)
    new = optim.apply_updates(x, updates, manifold=manifold)
  np.testing.assert_allclose(new, target, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("lr", [0.01, 0.2])
def test_radam_first_step_moves_each_point_by_the_learning_rate(geometry, lr):
  # One second moment per point: step one is lr * r / |r|_x, a geodesic step of length lr for
  # every row whatever its gradient's size (element-wise moments would give up to sqrt(D) lr).
  manifold = GEOMETRIES[geometry]
  with jax.enable_x64(True):
    x = _points(geometry, 0, "float64")
    scales = jnp.logspace(-3, 3, N)[:, None]
    grads = scales * jax.random.normal(jax.random.key(1), (N, D), jnp.float64)
    opt = optim.riemannian_adam(lr, manifold=manifold, eps=1e-14)
    updates, _ = opt.update(grads, opt.init(x), x)
    new = optim.apply_updates(x, updates, manifold=manifold)
    moved = manifold.dist(x, new, c=C)
  np.testing.assert_allclose(moved, np.full(N, lr), rtol=1e-9)


def test_radam_on_euclidean_space_with_constant_gradient_steps_lr_along_it():
  # m_hat = g and v_hat = |g|^2 exactly, so every step is lr g / |g| per row.
  with jax.enable_x64(True):
    x0 = jax.random.normal(jax.random.key(0), (N, D), jnp.float64)
    grads = jax.random.normal(jax.random.key(1), (N, D), jnp.float64)
    opt = optim.riemannian_adam(0.1, manifold=GEOMETRIES["euclidean"], eps=0.0)
    x, state = x0, opt.init(x0)
    for _ in range(5):
      updates, state = opt.update(grads, state, x)
      x = optax.apply_updates(x, updates)
    x0, grads = np.asarray(x0), np.asarray(grads)
  expected = x0 - 5 * 0.1 * grads / np.linalg.norm(grads, axis=-1, keepdims=True)
  np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-12)
  assert state.nu.shape == (N, 1)


@pytest.mark.parametrize("opt_name", ["rsgd_momentum", "radam"])
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_transported_moments_are_tangent_at_the_new_point(opt_name, geometry):
  manifold = GEOMETRIES[geometry]
  with jax.enable_x64(True):
    x = _points(geometry, 0, "float64")
    opt = _make(opt_name, manifold, 0.3)
    state = opt.init(x)
    for key in jax.random.split(jax.random.key(1), 3):
      grads = jax.random.normal(key, x.shape, x.dtype)
      updates, state = opt.update(grads, state, x)
      x = optim.apply_updates(x, updates, manifold=manifold)
    moment = state.mu if opt_name == "radam" else state.momentum
    projected = manifold.proj_tangent(x, moment, c=C)
  assert np.max(np.abs(np.asarray(moment))) > 1e-3  # Not trivially zero.
  np.testing.assert_allclose(projected, moment, atol=1e-10)


def test_partition_mixes_radam_on_the_ball_with_adam_on_euclidean_params():
  ball = GEOMETRIES["poincare"]
  params = {"embeddings": _points("poincare", 0, "float32"), "bias": jnp.zeros((N,))}
  labels = {"embeddings": "ball", "bias": "flat"}
  radam = optim.riemannian_adam(0.05, manifold=ball)
  adam = optax.adam(0.05)
  opt = optax.partition({"ball": radam, "flat": adam}, labels)
  target = _points("poincare", 1, "float32")

  def loss(p):
    return jnp.sum(ball.dist(p["embeddings"], target) ** 2) + jnp.sum((p["bias"] - 1.0) ** 2)

  @jax.jit
  def step(p, state):
    updates, state = opt.update(jax.grad(loss)(p), state, p)
    return updates, state, optax.apply_updates(p, updates)

  state = opt.init(params)
  radam_state, adam_state = radam.init(params["embeddings"]), adam.init(params["bias"])
  for _ in range(3):
    grads = jax.grad(loss)(params)
    updates, state, new_params = step(params, state)
    radam_updates, radam_state = radam.update(grads["embeddings"], radam_state,
                                              params["embeddings"])
    adam_updates, adam_state = adam.update(grads["bias"], adam_state, params["bias"])
    np.testing.assert_allclose(updates["embeddings"], radam_updates, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(updates["bias"], adam_updates, rtol=1e-5, atol=1e-7)
    params = {"embeddings": ball.proj(new_params["embeddings"]), "bias": new_params["bias"]}
  check_on_manifold(ball, params["embeddings"])
  assert float(loss(params)) < float(loss({"embeddings": _points("poincare", 0, "float32"),
                                           "bias": jnp.zeros((N,))}))


@pytest.mark.parametrize("factory", [optim.riemannian_sgd, optim.riemannian_adam])
def test_inject_hyperparams_takes_a_changed_learning_rate(factory):
  ball = GEOMETRIES["poincare"]
  params = _points("poincare", 0, "float32")
  grads = jax.random.normal(jax.random.key(1), params.shape)
  opt = optax.inject_hyperparams(factory)(learning_rate=0.1, manifold=ball)
  state = opt.init(params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.02)
  updates, state = jax.jit(opt.update)(grads, state, params)
  reference = factory(0.02, manifold=ball)
  expected, _ = reference.update(grads, reference.init(params), params)
  np.testing.assert_allclose(updates, expected, rtol=1e-5, atol=1e-7)
  assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.02)


def test_learning_rate_schedule_follows_the_step_count():
  with jax.enable_x64(True):
    params = jnp.ones((2, 3), jnp.float64)
    grads = jnp.full((2, 3), 2.0, jnp.float64)
    lr = optim.burn_in_schedule(0.1, burn_in_steps=2, burn_in_multiplier=0.01)
    opt = optim.riemannian_sgd(lr, manifold=GEOMETRIES["euclidean"])
    state = opt.init(params)
    for expected_lr in [0.001, 0.001, 0.1, 0.1]:
      updates, state = opt.update(grads, state, params)
      np.testing.assert_allclose(updates, -expected_lr * grads, rtol=1e-12)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_float32_params_stay_float32_under_x64_with_a_schedule(opt_name):
  manifold = GEOMETRIES["poincare"]
  with jax.enable_x64(True):
    params = _points("poincare", 0, "float32")
    lr = optax.exponential_decay(0.1, transition_steps=10, decay_rate=0.5)  # float64 values.
    opt = _make(opt_name, manifold, lr)
    state = opt.init(params)
    for _ in range(2):  # The second step reads the first one's state.
      updates, state = jax.jit(opt.update)(jnp.ones_like(params), state, params)
    new = optim.apply_updates(params, updates, manifold=manifold)
  assert updates.dtype == new.dtype == jnp.float32
  for leaf in jax.tree.leaves(state)[1:]:  # The count is int32.
    assert leaf.dtype == jnp.float32


@pytest.mark.parametrize("learning_rate,steps,multiplier,expected", [
    # (values at steps 0, burn_in_steps - 1, burn_in_steps)
    (0.5, 10, 0.01, [0.005, 0.005, 0.5]),  # Nickel & Kiela's reference code: lr * 0.01.
    (0.5, 10, 0.1, [0.05, 0.05, 0.5]),  # Their paper's text: lr / 10.
    (0.5, 1, 0.01, [0.005, 0.005, 0.5]),
    (optax.linear_schedule(1.0, 0.0, transition_steps=20), 10, 0.1, [0.1, 0.055, 0.5]),
])
def test_burn_in_schedule_values(learning_rate, steps, multiplier, expected):
  schedule = optim.burn_in_schedule(learning_rate, burn_in_steps=steps,
                                    burn_in_multiplier=multiplier)
  values = [schedule(jnp.asarray(t)) for t in (0, steps - 1, steps)]
  np.testing.assert_allclose(values, expected, rtol=1e-6)
  np.testing.assert_allclose(jax.jit(schedule)(jnp.asarray(steps)), expected[-1], rtol=1e-6)


def test_burn_in_schedule_with_zero_steps_is_the_learning_rate():
  schedule = optim.burn_in_schedule(0.3, burn_in_steps=0)
  np.testing.assert_allclose(schedule(jnp.asarray(0)), 0.3, rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"burn_in_steps": -1}, ">= 0"),
    ({"burn_in_steps": 2.5}, "int"),
    ({"burn_in_steps": 10, "burn_in_multiplier": -0.1}, "multiplier"),
])
def test_burn_in_schedule_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    optim.burn_in_schedule(0.1, **kwargs)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_update_without_params_raises(opt_name):
  opt = _make(opt_name, GEOMETRIES["sphere"], 0.1)
  params = _points("sphere", 0, "float32")
  with pytest.raises(ValueError, match="params"):
    opt.update(jnp.ones_like(params), opt.init(params))


@pytest.mark.parametrize("factory", [optim.riemannian_sgd, optim.riemannian_adam])
def test_unknown_update_rule_raises_listing_the_valid_ones(factory):
  with pytest.raises(ValueError, match="'expmap', 'retr'"):
    factory(0.1, manifold=GEOMETRIES["sphere"], update="geodesic")


@pytest.mark.parametrize("factory", [optim.riemannian_sgd, optim.riemannian_adam])
def test_manifold_must_be_a_manifold_record(factory):
  with pytest.raises(TypeError, match="geometry.get"):
    factory(0.1, manifold="poincare")


@pytest.mark.parametrize("factory", [optim.riemannian_sgd, optim.riemannian_adam])
def test_scalar_leaves_are_rejected(factory):
  opt = factory(0.1, manifold=GEOMETRIES["euclidean"])
  with pytest.raises(ValueError, match=r"\[\.\.\., D\]"):
    opt.init({"scale": jnp.ones(())})


def test_apply_updates_projects_back_onto_the_manifold():
  ball = GEOMETRIES["poincare"]
  params = jnp.array([[0.5, 0.0], [0.0, 0.2]])
  updates = jnp.array([[0.6, 0.0], [0.1, 0.0]])  # The first point would leave the ball.
  new = optim.apply_updates(params, updates, manifold=ball)
  np.testing.assert_allclose(new, [[1.0 - 1e-5, 0.0], [0.1, 0.2]], rtol=1e-6)
  plain = optim.apply_updates(params, updates, manifold=None)
  np.testing.assert_array_equal(plain, optax.apply_updates(params, updates))
