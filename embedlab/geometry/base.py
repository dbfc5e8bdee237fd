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

from embedlab.geometry import _defaults


class _Generic:
  """A record's generic default for one optional operation, bound to the record.

  Equal to any other generic default of the same operation, so two records built from the same
  functions are equal (one ``jit`` cache entry), and rebound by ``Manifold.__post_init__`` when
  a record is copied with ``dataclasses.replace`` (it then uses the copy's operations).
  """

  __slots__ = ("fn", "manifold")

  def __init__(self, fn: Callable, manifold: "Manifold"):
    self.fn = fn
    self.manifold = manifold

  @property
  def __name__(self) -> str:
    return self.fn.__name__

  def __call__(self, *args, **kwargs):
    return self.fn(self.manifold, *args, **kwargs)

  def __eq__(self, other) -> bool:
    return isinstance(other, _Generic) and other.fn is self.fn

  def __hash__(self) -> int:
    return hash(self.fn)

  def __repr__(self) -> str:
    return f"<generic {self.fn.__name__}>"


@dataclasses.dataclass(frozen=True)
class Manifold:
  """A geometry as a bundle of pure functions (see each module for formulas).

  Required attributes:
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

  Optional operations (what losses and tasks need beyond the above). A field left out (or
  ``None``) gets the generic default of :mod:`embedlab.geometry._defaults`, built from the
  required ones; the built-in geometries give closed forms. Tangent vectors at the origin are
  written in the ``d = tangent_dim(D)`` *tangent coordinates*: the last ``d`` ambient
  coordinates (the hyperboloid drops its time coordinate, ``d = D - 1``; elsewhere ``d = D``).

    weighted_midpoint: ``(points[N, D], weights[M, N], *, c) -> [M, D]`` the midpoint of the
      points with non-negative weights (a row of zero total weight gives the origin); losses
      use it for class centroids and mixing. Default: the weighted mean in the tangent space
      at the origin, mapped back (not the geodesic midpoint: define one where a closed form
      exists).
    expmap0: ``(v[..., d], *, c) -> [..., D]`` the exponential map at the origin, from tangent
      coordinates. Default: ``expmap(origin, proj_tangent(origin, pad(v)))``.
    logmap0: ``(x[..., D], *, c) -> [..., d]`` its inverse. Default: ``logmap(origin, x)`` less
      the leading ``D - d`` coordinates.
    direction0: ``(x[..., D], *, c) -> [..., d]`` the unit direction of ``x`` seen from the
      origin (0 at the origin). Default: ``logmap0(x) / |logmap0(x)|``.
    pairwise_similarity: ``(x[..., n, D], y[..., m, D], *, c) -> [..., n, m]`` the similarity
      softmax-style losses score pairs with; it must order pairs as ``-pairwise_dist`` does.
      Default: ``-pairwise_dist``.

  Properties (flags; both false by default):
    radial: points are the directions of nonzero ambient vectors: the manifold is the sphere
      ``|x| = 1/sqrt(c)`` about the ambient origin, ``proj`` is the radial projection
      ``x / (sqrt(c) |x|)`` (so raw vectors, such as a network's features or learnable class
      vectors, are put on the manifold by ``proj``) and ``pairwise_similarity`` is the cosine
      ``c <x, y> = cos(sqrt(c) d(x, y))``. Losses then normalise raw vectors with ``proj``,
      take class directions as points, and use the cosine's angle (ArcFace) and chord
      (ProxyNCA); see :mod:`embedlab.losses.proxy`.
    vector_space: points are plain vectors of ``R^D`` with the Euclidean metric
      (``dist(x, y) = |x - y|``, ``expmap(x, v) = x + v``, origin 0), so their coordinates may
      be averaged and dotted: the SNR distance, N-pair's inner product and L2 penalty.

  The conformance suite (:mod:`embedlab.geometry.conformance`) checks the optional operations
  and what each flag claims.
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
  weighted_midpoint: Callable | None = None
  expmap0: Callable | None = None
  logmap0: Callable | None = None
  direction0: Callable | None = None
  pairwise_similarity: Callable | None = None
  radial: bool = False
  vector_space: bool = False

  def __post_init__(self):
    for op, fn in _defaults.GENERIC.items():
      if getattr(self, op) is None or isinstance(getattr(self, op), _Generic):
        object.__setattr__(self, op, _Generic(fn, self))

  def __repr__(self) -> str:
    return f"Manifold({self.name!r})"

  def generic_operations(self) -> tuple[str, ...]:
    """The optional operations this record takes from the generic defaults."""
    return tuple(op for op in _defaults.GENERIC if isinstance(getattr(self, op), _Generic))

  def tangent_dim(self, ambient: int) -> int:
    """``d``, the number of tangent coordinates at the origin for points of ambient size
    ``ambient``: the largest ``d <= ambient`` with ``ambient_dim(d) == ambient``."""
    for dim in range(ambient, -1, -1):
      if self.ambient_dim(dim) == ambient:
        return dim
    raise ValueError(f"{self.name}: no dimension d has ambient_dim(d) == {ambient}")


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
