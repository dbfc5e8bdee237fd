"""Riemannian SGD and Adam as optax gradient transformations over whole embedding tables.

Every leaf of ``params`` is a stack of points ``[..., D]`` on one manifold (``D`` is the ambient
size: ``d + 1`` on the hyperboloid). One step, per point ``x`` with Euclidean gradient ``g``:

1. ``rgrad = manifold.egrad2rgrad(x, g, c=c)``, the Riemannian gradient (Nickel & Kiela 2017,
   eq. 5 on the ball: ``g (1 - c|x|^2)^2 / 4``);
2. a tangent direction ``u`` from ``rgrad`` (plain, momentum, or Adam's moments);
3. ``x' = manifold.expmap(x, -lr u, c=c)`` (``update="expmap"``, the exact geodesic step) or
   ``x' = manifold.retr(x, -lr u, c=c) = proj(x - lr u)`` (``update="retr"``, the first-order
   step of Nickel & Kiela's reference code);
4. momentum-like state is parallel-transported to ``x'`` so it stays a tangent vector there.

The transforms return the *Euclidean delta* ``x' - x`` rather than ``x'``: that is what optax
expects an update to be, so ``optax.apply_updates``, ``optax.chain``, ``optax.partition``
(manifold and Euclidean leaves side by side), ``optax.inject_hyperparams`` and checkpointing the
state all work unchanged. ``x + (x' - x)`` equals ``x'`` only up to rounding, so use
:func:`apply_updates`, which projects the result back onto the manifold.

Sparse gradients: a point whose update direction is exactly zero (a row of an embedding table
that got no gradient, and for momentum/Adam no history either) gets an exactly zero delta, so
it does not move, not even by the rounding of ``proj(expmap(x, 0))``.

>>> import jax, optax
>>> from embedlab import geometry, optim
>>> ball = geometry.get("poincare")
>>> params = ball.random_point(jax.random.key(0), (100, 2))
>>> opt = optim.riemannian_sgd(0.3, manifold=ball, update="retr")
>>> state = opt.init(params)
>>> grads = jax.grad(lambda x: ball.dist(x, 0.0 * x).sum())(params)
>>> updates, state = opt.update(grads, state, params)  # params are required
>>> params = optim.apply_updates(params, updates, manifold=ball)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from embedlab.geometry.base import Manifold

# How a step leaves the current point; the names match the Manifold functions they use.
UPDATE_RULES = ("expmap", "retr")

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]


class RiemannianSGDState(NamedTuple):
  """State of :func:`riemannian_sgd`."""

  count: jax.Array  # shape=(), int32: steps taken; drives a learning-rate schedule.
  momentum: optax.Updates | None  # Tangent vectors at the params, like them; None if unused.


class LinearStepTransformation(NamedTuple):
  """An optax ``GradientTransformation`` whose step is linear in the gradient up to a projection.

  ``init`` and ``update`` are those of an ordinary optax transformation (anything that takes a
  ``GradientTransformation`` takes this). ``linear_step(grads, state, params) -> (steps,
  new_state)`` says more about ``update``: per leaf, ``update`` moves ``x`` to
  ``proj(x + steps)`` (up to rounding), ``steps`` is linear in ``grads`` at fixed ``params`` and
  ``state``, and the state holds nothing per point (``new_state`` is what ``update`` returns).

  So the step of a gradient summed over several occurrences of a point is the sum of their
  steps: :func:`embedlab.optim.sparse_rows` scatter-adds each occurrence's step into the table
  and projects only the touched rows, instead of summing the gradients in a table-sized buffer
  first. :func:`riemannian_sgd` returns one when its step is ``proj(x - lr rgrad)``: without
  momentum, with ``update="retr"``, or on a flat manifold (``curvature_sign == 0``), where the
  exponential map is ``x + v``.
  """

  init: optax.TransformInitFn
  update: optax.TransformUpdateFn
  linear_step: Callable


class RiemannianAdamState(NamedTuple):
  """State of :func:`riemannian_adam`."""

  count: jax.Array  # shape=(), int32: steps taken; bias correction and schedules.
  mu: optax.Updates  # First moment: tangent vectors at the params, shaped like them.
  nu: optax.Updates  # Second moment: one scalar per point, [..., 1] for a [..., D] leaf.


def _check_options(name: str, manifold, update: str) -> None:
  if not isinstance(manifold, Manifold):
    raise TypeError(f"{name}: manifold must be an embedlab Manifold (e.g. "
                    f"embedlab.geometry.get('poincare')), got {type(manifold).__name__}.")
  if update not in UPDATE_RULES:
    raise ValueError(f"{name}: unknown update {update!r}; expected one of {list(UPDATE_RULES)}.")


def _check_leaves(name: str, leaves) -> None:
  # Shapes are static, so this check is free under jit and fails at trace time.
  for leaf in leaves:
    if jnp.ndim(leaf) == 0 or not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise ValueError(
          f"{name}: every params leaf must be a float array of points [..., D] (last axis the "
          f"manifold's ambient axis), got {jnp.result_type(leaf)} {jnp.shape(leaf)}.")


def _require_params(name: str, params) -> None:
  if params is None:
    raise ValueError(
        f"{name} needs the current params: the Riemannian gradient and the step depend on the "
        f"point. Call update(grads, state, params).")


def _value_at(value: ScalarOrSchedule, count: jax.Array):
  return value(count) if callable(value) else value


def _step(manifold: Manifold, update: str, x, direction, lr, c):
  """``x`` moved along ``-lr * direction``; points whose direction is exactly 0 stay put."""
  move = manifold.expmap if update == "expmap" else manifold.retr
  new = move(x, -lr * direction, c=c).astype(x.dtype)
  # expmap/retr end in proj, which can shift a resting point by an ulp (the sphere renormalises,
  # the hyperboloid recomputes x_0); a row without gradient must stay bit-identical.
  moved = jnp.any(direction != 0, axis=-1, keepdims=True)
  return jnp.where(moved, new, x)


def riemannian_sgd(
    learning_rate: ScalarOrSchedule,
    *,
    manifold: Manifold,
    c: float | jax.Array = 1.0,
    update: str = "expmap",
    momentum: float | jax.Array | None = None,
) -> optax.GradientTransformation:
  r"""Riemannian stochastic gradient descent, with optional (transported) heavy-ball momentum.

  Bonnabel, "Stochastic Gradient Descent on Riemannian Manifolds", IEEE TAC 2013; the
  ``update="retr"`` form is Nickel & Kiela, "Poincaré Embeddings for Learning Hierarchical
  Representations", NeurIPS 2017, eq. 5-6.

  Per point ``x`` with Euclidean gradient ``g`` at step ``t``:

  .. math::
    r = \operatorname{egrad2rgrad}_x(g), \quad
    u = \beta\, m + r \;(\text{or } u = r), \quad
    x' = \exp_x(-\eta_t u) \;(\text{or } \operatorname{proj}(x - \eta_t u)), \quad
    m' = P_{x \to x'}(u).

  Momentum follows ``optax.sgd`` (no dampening), so on the Euclidean manifold this is exactly
  ``optax.sgd(learning_rate, momentum)``.

  Use with ``optax.inject_hyperparams`` as is (``manifold`` is not callable, so it is kept
  static; numeric ``learning_rate``, ``c`` and ``momentum`` become injectable)::

    opt = optax.inject_hyperparams(riemannian_sgd)(learning_rate=0.1, manifold=ball)
    state.hyperparams["learning_rate"] = 0.01

  Args:
    learning_rate: step size ``eta``, a number or an optax schedule of the step count.
    manifold: the geometry every params leaf lives on.
    c: curvature magnitude handed to the manifold's functions.
    update: ``"expmap"`` (geodesic step) or ``"retr"`` (``proj(x - eta u)``); momentum is
      parallel-transported from ``x`` to ``x'`` either way.
    momentum: heavy-ball coefficient ``beta``; ``None`` keeps no momentum state.

  Returns:
    An ``optax.GradientTransformation`` whose ``update(grads, state, params)`` requires params
    (``[..., D]`` float leaves) and returns the Euclidean deltas ``x' - x``; a
    :class:`LinearStepTransformation` when the step is ``proj(x - eta r)`` (no momentum, and
    ``update="retr"`` or a flat manifold), which :func:`embedlab.optim.sparse_rows` updates
    without a table-sized buffer.
  """
  name = "riemannian_sgd"
  _check_options(name, manifold, update)

  def init_fn(params):
    _check_leaves(name, jax.tree.leaves(params))
    trace = None if momentum is None else jax.tree.map(jnp.zeros_like, params)
    return RiemannianSGDState(count=jnp.zeros([], jnp.int32), momentum=trace)

  def update_fn(updates, state, params=None):
    _require_params(name, params)
    grads, treedef = jax.tree.flatten(updates)
    points = treedef.flatten_up_to(params)
    _check_leaves(name, points)
    traces = (treedef.flatten_up_to(state.momentum) if momentum is not None
              else [None] * len(grads))
    lr = _value_at(learning_rate, state.count)

    deltas, new_traces = [], []
    for g, x, m in zip(grads, points, traces):
      # Everything is cast to the leaf's dtype: a float64 schedule value (x64 mode) must not
      # promote float32 params and state, which would change the state's type and retrace.
      u = manifold.egrad2rgrad(x, g.astype(x.dtype), c=c)
      if momentum is not None:
        u = jnp.asarray(momentum, x.dtype) * m + u
      new = _step(manifold, update, x, u, jnp.asarray(lr, x.dtype), c)
      deltas.append(new - x)
      if momentum is not None:
        new_traces.append(manifold.transp(x, new, u, c=c).astype(m.dtype))

    new_state = RiemannianSGDState(
        count=optax.safe_increment(state.count),
        momentum=None if momentum is None else treedef.unflatten(new_traces))
    return treedef.unflatten(deltas), new_state

  def linear_step(updates, state, params):
    # The step update_fn takes before its final projection, -lr * rgrad: linear in the gradient
    # because egrad2rgrad is (a per-point rescaling or tangent projection at x).
    _require_params(name, params)
    lr = _value_at(learning_rate, state.count)

    def step(g, x):
      return -jnp.asarray(lr, x.dtype) * manifold.egrad2rgrad(x, g.astype(x.dtype), c=c)

    new_state = RiemannianSGDState(count=optax.safe_increment(state.count), momentum=None)
    return jax.tree.map(step, updates, params), new_state

  if momentum is None and (update == "retr" or manifold.curvature_sign == 0):
    return LinearStepTransformation(init_fn, update_fn, linear_step)
  return optax.GradientTransformation(init_fn, update_fn)


def riemannian_adam(
    learning_rate: ScalarOrSchedule,
    *,
    manifold: Manifold,
    c: float | jax.Array = 1.0,
    b1: float | jax.Array = 0.9,
    b2: float | jax.Array = 0.999,
    eps: float | jax.Array = 1e-8,
    update: str = "expmap",
) -> optax.GradientTransformation:
  r"""Riemannian Adam with one second moment per point (row-wise for an embedding table).

  Bécigneul & Ganea, "Riemannian Adaptive Optimization Methods", ICLR 2019 (RADAM, Alg. 1,
  with Adam's bias correction). A manifold has no coordinates to take element-wise second
  moments in, so the paper keeps one per component manifold: here one per point,
  ``<r, r>_x``. Per point ``x`` with Euclidean gradient ``g`` at step ``t = 1, 2, ...``:

  .. math::
    r = \operatorname{egrad2rgrad}_x(g), \quad
    m = \beta_1 \tau + (1 - \beta_1) r, \quad
    v = \beta_2 v + (1 - \beta_2) \langle r, r \rangle_x,

    x' = \exp_x\!\Big(-\eta_t \frac{m / (1 - \beta_1^t)}
                         {\sqrt{v / (1 - \beta_2^t)} + \epsilon}\Big), \quad
    \tau' = P_{x \to x'}(m).

  ``v`` is a scalar, so it needs no transport. A step moves a point by about ``eta`` whatever
  the table's dimension (with ``update="expmap"``, exactly ``eta / (1 + eps / |r|_x)`` on the
  first step). As in ``optax.adam`` (dense, not "lazy" Adam), a row with no gradient this step
  still moves while its first moment is nonzero; rows that never had one stay put.

  Args:
    learning_rate: step size ``eta``, a number or an optax schedule of the step count.
    manifold: the geometry every params leaf lives on.
    c: curvature magnitude handed to the manifold's functions.
    b1: decay of the first moment.
    b2: decay of the per-point second moment.
    eps: added to ``sqrt(v_hat)``; keeps rows without gradient at a zero step.
    update: ``"expmap"`` (geodesic step) or ``"retr"`` (``proj(x - eta u)``).

  Returns:
    An ``optax.GradientTransformation`` whose ``update(grads, state, params)`` requires params
    (``[..., D]`` float leaves) and returns the Euclidean deltas ``x' - x``. The state keeps
    ``mu`` shaped like params and ``nu`` as ``[..., 1]`` per leaf (same rank as the leaf, so a
    row-sharded table's sharding applies to it too).
  """
  name = "riemannian_adam"
  _check_options(name, manifold, update)

  def init_fn(params):
    _check_leaves(name, jax.tree.leaves(params))
    mu = jax.tree.map(jnp.zeros_like, params)
    nu = jax.tree.map(lambda x: jnp.zeros(jnp.shape(x)[:-1] + (1,), jnp.result_type(x)), params)
    return RiemannianAdamState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

  def update_fn(updates, state, params=None):
    _require_params(name, params)
    grads, treedef = jax.tree.flatten(updates)
    points = treedef.flatten_up_to(params)
    _check_leaves(name, points)
    mus = treedef.flatten_up_to(state.mu)
    nus = treedef.flatten_up_to(state.nu)
    lr = _value_at(learning_rate, state.count)
    count = optax.safe_increment(state.count)

    deltas, new_mus, new_nus = [], [], []
    for g, x, m, v in zip(grads, points, mus, nus):
      dtype = x.dtype
      beta1, beta2 = jnp.asarray(b1, dtype), jnp.asarray(b2, dtype)
      t = count.astype(dtype)
      r = manifold.egrad2rgrad(x, g.astype(dtype), c=c)
      m = beta1 * m + (1.0 - beta1) * r
      # <r, r>_x >= 0 in exact arithmetic; the hyperboloid's Minkowski form can round below 0.
      sq = jnp.maximum(manifold.inner(x, r, r, c=c), 0.0)[..., None]
      v = beta2 * v + (1.0 - beta2) * sq
      m_hat = m / (1.0 - beta1**t)
      v_hat = v / (1.0 - beta2**t)
      u = m_hat / (jnp.sqrt(v_hat) + jnp.asarray(eps, dtype))
      new = _step(manifold, update, x, u, jnp.asarray(lr, dtype), c)
      deltas.append(new - x)
      new_mus.append(manifold.transp(x, new, m, c=c).astype(dtype))
      new_nus.append(v.astype(dtype))

    new_state = RiemannianAdamState(
        count=count, mu=treedef.unflatten(new_mus), nu=treedef.unflatten(new_nus))
    return treedef.unflatten(deltas), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def apply_updates(params: Any, updates: Any, *, manifold: Manifold | None,
                  c: float | jax.Array = 1.0) -> Any:
  """``optax.apply_updates`` followed by ``manifold.proj`` on every leaf.

  The transforms return ``x' - x``; adding it back gives ``x'`` only up to float rounding,
  which over many steps drifts points off the manifold (off the sphere, off the hyperboloid's
  sheet, or past the ball's boundary margin). The projection removes that drift.

  One manifold applies to all leaves. For a mix of manifold and Euclidean params (e.g. under
  ``optax.partition``), call it once per subtree, or ``optax.apply_updates`` and then
  ``manifold.proj`` on the manifold leaves.

  Args:
    params: pytree of ``[..., D]`` points.
    updates: pytree of deltas with the same structure.
    manifold: the geometry of every leaf; ``None`` means plain ``optax.apply_updates``.
    c: curvature magnitude.

  Returns:
    The updated params, same structure, shapes and dtypes, on the manifold.
  """
  new_params = optax.apply_updates(params, updates)
  if manifold is None:
    return new_params
  if not isinstance(manifold, Manifold):
    raise TypeError(f"apply_updates: manifold must be a Manifold or None, got "
                    f"{type(manifold).__name__}.")
  return jax.tree.map(lambda x: manifold.proj(x, c=c).astype(x.dtype), new_params)
