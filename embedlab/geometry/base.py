"""The ``Manifold`` record: one geometry's pure functions, bundled so they can cross ``jit``.

A geometry is a module of pure functions that broadcast over leading axes (``x: [..., D]``,
where ``D`` is the *ambient* size: ``d`` for the ball, the sphere and Euclidean space,
``d + 1`` for the hyperboloid). The record only collects them; it holds no state and no arrays,
so it is registered as a *static* pytree: passing it into a jitted function never retraces as
long as it is the same geometry.

Every function takes the curvature magnitude ``c`` keyword-only, as data (an array or a float),
even where a geometry ignores it (Euclidean), so code written against the record works for all.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify


@dataclasses.dataclass(frozen=True)
class Manifold:
  """A geometry as a bundle of pure functions (see each module for formulas).

  Attributes:
    name: registry name, e.g. ``"poincare"``.
    dist: ``(x[..., D], y[..., D], *, c) -> [...]`` geodesic distance.
    pairwise_dist: ``(x[..., n, D], y[..., m, D], *, c) -> [..., n, m]``, via a matmul.
    expmap: ``(x, v, *, c) -> point`` exponential map at ``x``.
    logmap: ``(x, y, *, c) -> tangent at x`` its inverse.
    proj: ``(x, *, c) -> point`` nearest point of the manifold (the numerics margin applied).
    proj_tangent: ``(x, v, *, c) -> tangent at x``.
    egrad2rgrad: ``(x, g, *, c)`` Euclidean gradient to Riemannian gradient.
    inner: ``(x, u, v, *, c) -> [...]`` Riemannian metric at ``x``.
    norm: ``(x, v, *, c) -> [...]`` Riemannian norm of ``v`` at ``x``.
    transp: ``(x, y, v, *, c)`` parallel transport of ``v`` from ``x`` to ``y``.
    retr: ``(x, v, *, c)`` first-order retraction ``proj(x + v)``.
    origin: ``(shape, *, c, dtype) -> point`` the canonical base point, ambient ``shape``.
    random_point: ``(key, shape, *, c, dtype) -> point``.
    random_tangent: ``(key, x, *, c) -> tangent at x`` (Gaussian in an orthonormal frame).
    is_on_manifold: ``(x, *, c, atol) -> bool[...]`` per-point membership test.
    ambient_dim: ``(dim) -> D`` ambient size for intrinsic dimension ``dim``.
    curvature_sign: -1 hyperbolic, 0 flat, +1 spherical.
  """

  name: str
  dist: Callable
  pairwise_dist: Callable
  expmap: Callable
  logmap: Callable
  proj: Callable
  proj_tangent: Callable
  egrad2rgrad: Callable
  inner: Callable
  norm: Callable
  transp: Callable
  retr: Callable
  origin: Callable
  random_point: Callable
  random_tangent: Callable
  is_on_manifold: Callable
  ambient_dim: Callable
  curvature_sign: int

  def __repr__(self) -> str:
    return f"Manifold({self.name!r})"


jax.tree_util.register_static(Manifold)


_MAX_NAMED_ROWS = 10  # check_on_manifold names at most this many offending rows.


def _default_atol(dtype) -> float:
  return 1e-4 if jnp.dtype(dtype).itemsize <= 4 else 1e-9


def check_on_manifold(manifold: Manifold, x, *, c=1.0, atol: float | None = None,
                      name: str = "array") -> None:
  """Raises ``ValueError`` naming the offending rows if ``x`` is not on ``manifold``.

  Eager (not for use under ``jit``; see :func:`checkify_on_manifold` for that).

  Args:
    manifold: the geometry.
    x: ``[..., D]`` points.
    c: curvature magnitude.
    atol: membership tolerance; defaults by dtype (1e-4 float32, 1e-9 float64).
    name: how to call ``x`` in the message, e.g. ``"params['embeddings']"``.
  """
  x = jnp.asarray(x)
  if x.ndim == 0:
    raise ValueError(f"{name}: expected points of shape [..., D], got a scalar.")
  atol = _default_atol(x.dtype) if atol is None else atol
  ok = np.asarray(manifold.is_on_manifold(x, c=c, atol=atol)).reshape(-1)
  if ok.all():
    return
  bad = np.flatnonzero(~ok)
  rows = x.reshape(-1, x.shape[-1])
  # Name rows by their index into x's leading axes: ints for a [N, D] table, tuples beyond.
  index = np.stack(np.unravel_index(bad, x.shape[:-1]), axis=-1) if x.ndim > 1 else None
  named = [] if index is None else [
      int(i[0]) if len(i) == 1 else tuple(int(j) for j in i) for i in index[:_MAX_NAMED_ROWS]]
  where = "" if index is None else (
      f": rows {named}" + (f" and {bad.size - len(named)} more" if bad.size > len(named) else ""))
  raise ValueError(
      f"{name}: {bad.size} of {ok.size} points are not on the {manifold.name} manifold "
      f"(c={float(np.asarray(c))}, atol={atol}){where}; first bad point "
      f"{np.asarray(rows[bad[0]]).tolist()}. Use manifold.proj to move points onto it.")


def checkify_on_manifold(manifold: Manifold, x, *, c=1.0, atol: float | None = None,
                         name: str = "array") -> None:
  """``jax.experimental.checkify`` version of :func:`check_on_manifold`, usable under ``jit``.

  Wrap the caller with ``checkify.checkify(fn)`` and call ``err.throw()`` on the result.
  """
  atol = _default_atol(jnp.asarray(x).dtype) if atol is None else atol
  ok = manifold.is_on_manifold(x, c=c, atol=atol)
  checkify.check(jnp.all(ok),
                 f"{name}: {{count}} points are not on the {manifold.name} manifold",
                 count=jnp.sum(~ok))
