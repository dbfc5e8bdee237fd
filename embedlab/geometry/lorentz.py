"""Lorentz (hyperboloid) model of hyperbolic space with curvature ``-c`` (``c > 0``).

Model: ``{x in R^{d+1} : <x, x>_L = -1/c, x_0 > 0}`` with the Minkowski form
``<x, y>_L = -x_0 y_0 + sum_i x_i y_i``; the metric is ``<.,.>_L`` restricted to tangent spaces
``T_x = {v : <x, v>_L = 0}``. Reference: Nickel & Kiela, "Learning Continuous Hierarchies in the
Lorentz Model of Hyperbolic Geometry", ICML 2018.

Conventions: points and tangent vectors are ``[..., d + 1]`` (``ambient_dim(d) == d + 1``),
coordinate 0 is the time-like one. ``expmap0`` / ``logmap0`` take and give the ``d`` space-like
coordinates of a tangent vector at the origin ``o = (1/sqrt(c), 0, ..., 0)`` (its time
coordinate is 0). ``to_poincare``/``from_poincare`` are the isometries
``p = x_{1:} / (1 + sqrt(c) x_0)`` and
``x = ((1 + c|p|^2) / (sqrt(c)(1 - c|p|^2)), 2p / (1 - c|p|^2))``.

Numerics: ``proj`` recomputes ``x_0 = sqrt(1/c + |x_{1:}|^2)`` from the space-like part (the
stable choice: it always lands exactly on the sheet). ``dist`` is ``arcosh(1 + delta)/sqrt(c)``
with ``delta = c <x - y, x - y>_L / 2``, which keeps precision for nearby points that
``arcosh(-c<x, y>_L)`` would lose, and switches to the latter for far-apart points. In float32,
``|x|^2`` overflows for points farther than ~44 from the origin (``x_0 ~ e^r / 2``), so keep
float32 tables within that radius (``expmap`` caps a single step at 50); nearby points far from
the origin lose absolute precision as ``x_0`` grows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embedlab.geometry import _numerics as nm
from embedlab.geometry.base import Manifold


def minkowski_dot(x, y, *, keepdims: bool = False):
  """``<x, y>_L = -x_0 y_0 + sum_{i>0} x_i y_i`` over the last axis."""
  product = x * y
  out = jnp.sum(product[..., 1:], axis=-1) - product[..., 0]
  return out[..., None] if keepdims else out


def _minkowski_norm(v, *, keepdims: bool = False):
  """``sqrt(<v, v>_L)`` for space-like (tangent) ``v``; gradient-safe at 0."""
  return nm.safe_sqrt(minkowski_dot(v, v, keepdims=keepdims))


def dist(x, y, *, c=1.0):
  """``arcosh(-c <x, y>_L) / sqrt(c)``, written as ``arcosh(1 + delta) / sqrt(c)``.

  ``delta = -c<x, y>_L - 1`` equals ``c <x - y, x - y>_L / 2``; the second form keeps nearby
  points exact, the first keeps far-apart ones exact (the difference form cancels
  catastrophically once ``x_0`` is large), so each is used where it is accurate.
  """
  c = nm.as_curvature(c, x.dtype)
  direct = -c * minkowski_dot(x, y) - 1.0
  near = direct < 1.0
  difference = 0.5 * c * minkowski_dot(x - y, x - y)
  return nm.arcosh1p(jnp.where(near, difference, direct)) / jnp.sqrt(c)


def pairwise_dist(x, y, *, c=1.0):
  """All distances ``[..., n, d+1] x [..., m, d+1] -> [..., n, m]`` with one matmul."""
  c = nm.as_curvature(c, x.dtype)
  flip = jnp.concatenate([-x[..., :1], x[..., 1:]], axis=-1)
  dots = nm.row_dots(flip, y)
  return nm.arcosh1p(-c * dots - 1.0) / jnp.sqrt(c)


def proj(x, *, c=1.0):
  """Lifts the space-like part onto the upper sheet: ``x_0 = sqrt(1/c + |x_{1:}|^2)``."""
  c = nm.as_curvature(c, x.dtype)
  space = x[..., 1:]
  time = jnp.sqrt(1.0 / c + nm.sq_norm(space, keepdims=True))
  return jnp.concatenate([time, space], axis=-1)


def proj_tangent(x, v, *, c=1.0):
  """Orthogonal (Minkowski) projection onto ``T_x``: ``v + c <x, v>_L x``."""
  c = nm.as_curvature(c, x.dtype)
  return v + c * minkowski_dot(x, v, keepdims=True) * x


def egrad2rgrad(x, g, *, c=1.0):
  """Riemannian gradient: flip the time coordinate (inverse metric), then project onto ``T_x``."""
  h = jnp.concatenate([-g[..., :1], g[..., 1:]], axis=-1)
  return proj_tangent(x, h, c=c)


def inner(x, u, v, *, c=1.0):
  del x, c
  return minkowski_dot(u, v)


def norm(x, v, *, c=1.0):
  del x, c
  return _minkowski_norm(v)


def expmap(x, v, *, c=1.0):
  """``exp_x(v) = cosh(sqrt(c)|v|_L) x + sinh(sqrt(c)|v|_L) v / (sqrt(c)|v|_L)``."""
  c = nm.as_curvature(c, x.dtype)
  sqrt_c = jnp.sqrt(c)
  n = _minkowski_norm(v, keepdims=True)
  # Cap the argument so cosh stays finite in float32 (~88); such steps are nonsense anyway.
  n = jnp.minimum(n, 50.0 / sqrt_c)
  scale = nm.scaled_by_norm(lambda t: jnp.sinh(sqrt_c * t) / sqrt_c, n, 1.0)
  return proj(jnp.cosh(sqrt_c * n) * x + scale * v, c=c)


def logmap(x, y, *, c=1.0):
  """``log_x(y) = d(x, y) u / |u|_L`` with ``u = y + c <x, y>_L x`` (``u`` tangent at ``x``)."""
  c = nm.as_curvature(c, x.dtype)
  u = y + c * minkowski_dot(x, y, keepdims=True) * x
  n = _minkowski_norm(u, keepdims=True)
  d = dist(x, y, c=c)[..., None]
  return jnp.where(n > 0, d / jnp.where(n > 0, n, 1.0), 1.0) * u


def transp(x, y, v, *, c=1.0):
  """``P_{x->y}(v) = v + c <y, v>_L / (1 - c <x, y>_L) (x + y)``."""
  c = nm.as_curvature(c, x.dtype)
  coef = c * minkowski_dot(y, v, keepdims=True) / (1.0 - c * minkowski_dot(x, y, keepdims=True))
  return v + coef * (x + y)


def retr(x, v, *, c=1.0):
  return proj(x + v, c=c)


def origin(shape, *, c=1.0, dtype=jnp.float32):
  c = nm.as_curvature(c, dtype)
  point = jnp.zeros(shape, dtype)
  return point.at[..., 0].set(1.0 / jnp.sqrt(c))


def random_point(key, shape, *, c=1.0, dtype=jnp.float32):
  """``exp`` at the origin of a Gaussian tangent vector with per-coordinate std ``1/sqrt(c d)``."""
  c = nm.as_curvature(c, dtype)
  space = jax.random.normal(key, shape[:-1] + (shape[-1] - 1,), dtype)
  space = space / jnp.sqrt(c * (shape[-1] - 1))
  v = jnp.concatenate([jnp.zeros(shape[:-1] + (1,), dtype), space], axis=-1)
  return expmap(origin(shape, c=c, dtype=dtype), v, c=c)


def random_tangent(key, x, *, c=1.0):
  """Gaussian in an orthonormal frame of ``T_x``: Gaussian at the origin transported to ``x``."""
  space = jax.random.normal(key, x.shape[:-1] + (x.shape[-1] - 1,), x.dtype)
  v = jnp.concatenate([jnp.zeros(x.shape[:-1] + (1,), x.dtype), space], axis=-1)
  return transp(origin(x.shape, c=c, dtype=x.dtype), x, v, c=c)


def is_on_manifold(x, *, c=1.0, atol=1e-5):
  """On the upper sheet: ``|<x, x>_L + 1/c| <= atol (1/c + |x|^2)`` (relative) and ``x_0 > 0``."""
  c = nm.as_curvature(c, x.dtype)
  scale = 1.0 / c + nm.sq_norm(x)
  on_sheet = jnp.abs(minkowski_dot(x, x) + 1.0 / c) <= atol * scale
  return on_sheet & (x[..., 0] > 0) & jnp.all(jnp.isfinite(x), axis=-1)


def ambient_dim(dim: int) -> int:
  return dim + 1


def _with_time(v):
  """Tangent coordinates ``[..., d]`` at the origin as an ambient tangent ``(0, v)``."""
  return jnp.concatenate([jnp.zeros_like(v[..., :1]), v], axis=-1)


def expmap0(v, *, c=1.0):
  """``exp_o((0, v)) = (cosh(sqrt(c)|v|) / sqrt(c), sinh(sqrt(c)|v|) v / (sqrt(c)|v|))``,
  ``[..., d] -> [..., d + 1]``, computed by :func:`expmap` at the origin."""
  u = _with_time(v)
  return expmap(origin(u.shape, c=c, dtype=u.dtype), u, c=c)


def logmap0(x, *, c=1.0):
  """``log_o(x)`` without its time coordinate (0 on ``T_o``), ``[..., d + 1] -> [..., d]``:
  ``d(o, x) x_{1:} / |x_{1:}|``."""
  return logmap(origin(x.shape, c=c, dtype=x.dtype), x, c=c)[..., 1:]


def direction0(x, *, c=1.0):
  """``x_{1:} / |x_{1:}|``: the direction of ``log_o(x)`` is that of the space-like part."""
  del c
  return nm.unit(x[..., 1:])


def weighted_midpoint(points, weights, *, c=1.0):
  """Normalised weighted sums ``s / (sqrt(c) sqrt(-<s, s>_L))``, ``s = sum_n w_mn x_n``,
  ``[N, D], [M, N] -> [M, D]`` (Law, Liao, Snell & Zemel, "Lorentzian Distance Learning for
  Hyperbolic Representations", ICML 2019): the Einstein midpoint of the ball's
  :func:`embedlab.geometry.poincare.weighted_midpoint` through the isometry (the Klein
  coordinates are ``x_{1:} / x_0``). A row of zero total weight gives the origin.

  Known limit: for ``c < 1`` a row of zero total weight has NaN gradients (its clamped scale
  squares to a denormal, flushed to 0 on CPUs); its value, the origin, is right.

  Float limits: ``-<s, s>_L`` is a difference of squares of size ``x_0^2``, so for points near
  each other at distance ``r`` from the origin its relative error is about
  ``eps cosh^2(sqrt(c) r)``: in float32 half the digits are gone at ``r ~ 4.5 / sqrt(c)`` and
  the result is not finite beyond ``~9 / sqrt(c)`` (``~19 / sqrt(c)`` in float64).
  """
  weights, _, empty = nm.midpoint_weights(weights, points.dtype)
  s = weights @ points
  minkowski = -s[..., :1] ** 2 + jnp.sum(s[..., 1:] ** 2, axis=-1, keepdims=True)
  scale = jnp.sqrt(c) * jnp.sqrt(jnp.maximum(-minkowski, jnp.finfo(points.dtype).tiny))
  mid = proj(s / scale, c=c)
  return jnp.where(empty, origin(mid.shape, c=c, dtype=points.dtype), mid)


def to_poincare(x, *, c=1.0):
  """Isometry to the Poincaré ball: ``p = x_{1:} / (1 + sqrt(c) x_0)``; ``[..., d+1] -> [..., d]``."""
  c = nm.as_curvature(c, x.dtype)
  return x[..., 1:] / (1.0 + jnp.sqrt(c) * x[..., :1])


def from_poincare(p, *, c=1.0):
  """Inverse of :func:`to_poincare`; ``[..., d] -> [..., d+1]``."""
  c = nm.as_curvature(c, p.dtype)
  one_minus = jnp.maximum(1.0 - c * nm.sq_norm(p, keepdims=True), nm.tiny(p.dtype))
  time = (1.0 + c * nm.sq_norm(p, keepdims=True)) / (jnp.sqrt(c) * one_minus)
  return proj(jnp.concatenate([time, 2.0 * p / one_minus], axis=-1), c=c)


MANIFOLD = Manifold(
    name="lorentz", dist=dist, pairwise_dist=pairwise_dist, expmap=expmap, logmap=logmap,
    proj=proj, proj_tangent=proj_tangent, egrad2rgrad=egrad2rgrad, inner=inner, norm=norm,
    transp=transp, retr=retr, origin=origin, random_point=random_point,
    random_tangent=random_tangent, is_on_manifold=is_on_manifold, ambient_dim=ambient_dim,
    curvature_sign=-1, weighted_midpoint=weighted_midpoint, expmap0=expmap0, logmap0=logmap0,
    direction0=direction0)
