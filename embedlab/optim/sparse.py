"""Sparse row updates: an optax optimizer applied only to the rows of a table a step touched.

A step of an embedding-table task (a hierarchy, a knowledge graph) reads a few rows of a large
table: ``ids`` of length ``M`` (repeats allowed: a node in two pairs, or drawn twice as a
negative). Differentiating the loss with respect to the gathered ``[M, D]`` rows and updating
only those rows costs ``O(M D)`` instead of ``O(N D)`` per step. :func:`sparse_rows` wraps any
optax ``GradientTransformation`` (Riemannian SGD / Adam of :mod:`embedlab.optim`, or plain
optax ones with ``manifold=None``) to do exactly that:

1. the gradients of repeated ids are summed (a scatter-add into a zero table, read back at
   ``ids``), so every occurrence of a node carries the node's whole gradient;
2. the wrapped optimizer's per-row state (leaves whose leading axis is the table's rows, e.g.
   Adam's moments) is gathered at ``ids``, the optimizer updates the gathered rows and their
   state, and both are scattered back. Occurrences of one node compute identical updates, so
   the scatter is deterministic. Rows not in ``ids`` keep their values and their state: for
   stateless SGD this is the dense update (a row without gradient does not move); for Adam it
   is "lazy" Adam, as in sparse Adam implementations (an untouched row's moments neither decay
   nor move it);
3. global state (the step count) advances once per call.

Optimizers that declare their step linear (:class:`embedlab.optim.LinearStepTransformation`,
e.g. :func:`embedlab.optim.riemannian_sgd` with ``update="retr"``) take a cheaper path with no
table-sized buffer: each occurrence's step is scatter-added straight into the table, and only
the touched rows are re-projected onto the manifold. Same result up to float rounding (the
order of the additions, and ``proj(x + v)`` where the generic path computes
``proj(x + (proj(x + v) - x))``).

>>> import jax, jax.numpy as jnp
>>> from embedlab import geometry, optim
>>> ball = geometry.get("poincare")
>>> table = ball.random_point(jax.random.key(0), (1000, 5)) * 0.1
>>> rows = optim.sparse_rows(optim.riemannian_adam(0.01, manifold=ball), manifold=ball)
>>> state = rows.init(table)
>>> ids = jnp.array([3, 7, 3])
>>> row_grads = jax.grad(lambda r: ball.dist(r[0], r[1]) + ball.dist(r[2], r[1]))(table[ids])
>>> table, state = rows.update(row_grads, state, table, ids)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from embedlab.geometry.base import Manifold
from embedlab.optim.riemannian import LinearStepTransformation, apply_updates


class SparseRowsTransformation(NamedTuple):
  """An optimizer for tables that updates only the rows of a step (see :func:`sparse_rows`).

  Attributes:
    init: ``params -> state``, the wrapped optimizer's state for the whole tables.
    update: ``(row_grads, state, params, ids) -> (params, state)``. ``params`` is a pytree of
      tables ``[R, ...]`` sharing their row count; ``ids`` an int ``[M]`` vector of rows
      (repeats allowed); ``row_grads`` the gradients with respect to the gathered rows
      ``params[ids]`` (same structure as ``params``, leaves ``[M, ...]``: position ``i`` is one
      occurrence of row ``ids[i]``). Returns the updated tables and state.
    linear: whether ``update`` takes the scatter-add path of a linear step.
  """

  init: Callable[[Any], Any]
  update: Callable[[Any, Any, Any, jax.Array], tuple[Any, Any]]
  linear: bool


def gather_rows(params, ids):
  """``params[ids]`` for every table of ``params``: the rows a loss of the step reads."""
  return jax.tree.map(lambda table: table[ids], params)


def _per_row_leaves(init: Callable, params):
  """Which leaves of ``init(params)`` hold one entry per table row: those whose leading axis
  grows with the tables' row count (found on abstract shapes, so nothing is computed)."""
  grown = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct((x.shape[0] + 1,) + x.shape[1:], x.dtype), params)
  return jax.tree.map(lambda a, b: a.shape != b.shape,
                      jax.eval_shape(init, params), jax.eval_shape(init, grown))


def sparse_rows(inner: optax.GradientTransformation, *, manifold: Manifold | None = None,
                c: float | jax.Array = 1.0, linear: bool = True) -> SparseRowsTransformation:
  """Wraps ``inner`` so that a step updates only the table rows it touched.

  Args:
    inner: the optimizer of the whole table, e.g. ``riemannian_adam(lr, manifold=ball)`` or
      ``optax.adam(lr)``. A :class:`~embedlab.optim.LinearStepTransformation` takes the
      scatter-add path (module docstring).
    manifold: the geometry of the tables: updated rows are projected onto it, as
      :func:`embedlab.optim.apply_updates` does; ``None`` for plain optax on Euclidean tables.
    c: curvature magnitude.
    linear: take the scatter-add path when ``inner`` declares a linear step; ``False`` sends
      every optimizer through the generic path (the reference for tests and benchmarks).

  Returns:
    A :class:`SparseRowsTransformation`. Its ``init`` is ``inner.init``, so the state is the
    one ``inner`` keeps for the whole tables (checkpoints and resumption are unchanged).
  """
  if manifold is not None and not isinstance(manifold, Manifold):
    raise TypeError(f"sparse_rows: manifold must be a Manifold or None, got "
                    f"{type(manifold).__name__}.")

  def project(x):
    return x if manifold is None else manifold.proj(x, c=c).astype(x.dtype)

  def generic_update(row_grads, state, params, ids):
    rows = gather_rows(params, ids)
    # Each occurrence gets its node's summed gradient. (No jnp.unique: sorting is the slowest
    # op of such a step on CPU.)
    sums = jax.tree.map(lambda table, g: jnp.zeros_like(table).at[ids].add(g)[ids],
                        params, row_grads)
    per_row = _per_row_leaves(inner.init, params)
    row_state = jax.tree.map(lambda is_row, s: s[ids] if is_row else s, per_row, state)
    updates, row_state = inner.update(sums, row_state, rows)
    rows = apply_updates(rows, updates, manifold=manifold, c=c)
    params = jax.tree.map(lambda table, r: table.at[ids].set(r), params, rows)
    state = jax.tree.map(lambda is_row, s, r: s.at[ids].set(r) if is_row else r,
                         per_row, state, row_state)
    return params, state

  def linear_update(row_grads, state, params, ids):
    rows = gather_rows(params, ids)
    steps, state = inner.linear_step(row_grads, state, rows)

    def scatter(table, x, step):
      table = table.at[ids].add(step.astype(table.dtype))
      stepped = table[ids]
      # A row whose summed step is exactly zero stays bit-identical (no projection rounding),
      # as under the dense update. Always scattered: skipping it under lax.cond where the
      # projection changed nothing measured slower.
      moved = jnp.any(stepped != x, axis=-1, keepdims=True)
      return table.at[ids].set(jnp.where(moved, project(stepped), x))

    return jax.tree.map(scatter, params, rows, steps), state

  linear = linear and isinstance(inner, LinearStepTransformation)
  return SparseRowsTransformation(inner.init, linear_update if linear else generic_update, linear)
