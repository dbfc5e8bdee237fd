"""Poincaré ball model of hyperbolic space with curvature ``-c`` (``c > 0``).

Model: the open ball ``{x in R^d : c |x|^2 < 1}`` with metric ``lambda_x^2 <.,.>``, where the
conformal factor is ``lambda_x = 2 / (1 - c |x|^2)``. Sectional curvature is ``-c``; ``c -> 0``
recovers (4 times) Euclidean space. References: Nickel & Kiela, "Poincaré Embeddings for
Learning Hierarchical Representations", NeurIPS 2017; Ganea, Bécigneul & Hofmann, "Hyperbolic
Neural Networks", NeurIPS 2018 (Möbius gyrovector formulas, curvature ``c``).

Conventions: points and tangent vectors are ``[..., d]``; the curvature is keyword-only data.

Numerics (float32 limits):
* ``proj`` keeps points at norm ``<= (1 - margin) / sqrt(c)`` with margin 1e-5 in float32 and
  1e-10 in float64, so ``1 - c|x|^2 >= ~2e-5`` (float32) stays representable to ~0.3%.
* ``dist`` is ``arcosh(1 + delta) / sqrt(c)`` with
  ``delta = 2 c |x - y|^2 / ((1 - c|x|^2)(1 - c|y|^2))``, evaluated through ``log1p`` so that
  nearby points keep relative precision and the gradient at ``x == y`` is 0 (not NaN).
* ``pairwise_dist`` forms ``|x - y|^2`` by a matmul; in float32 distances below ~1e-3 lose
  digits to cancellation there (use ``dist`` for exact small distances).
* In float32 the largest representable distance from the origin is ~12.2 (``artanh(1 - 1e-5)``
  times 2); hierarchies deeper than that need float64 or the Lorentz model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embedlab.geometry import _numerics as nm
from embedlab.geometry import euclidean
from embedlab.geometry.base import Manifold


def _dot(x, y):
  return jnp.sum(x * y, axis=-1, keepdims=True)


def conformal_factor(x, *, c=1.0, keepdims: bool = True):
  """``lambda_x = 2 / (1 - c|x|^2)``, ``[..., 1]`` (or ``[...]`` without keepdims)."""
  c = nm.as_curvature(c, x.dtype)
  one_minus = jnp.maximum(1.0 - c * nm.sq_norm(x, keepdims=keepdims), nm.tiny(x.dtype))
  return 2.0 / one_minus


def mobius_add(x, y, *, c=1.0):
  """Möbius addition ``x (+)_c y``: the gyrogroup operation of the ball.

  ``((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2 |x|^2 |y|^2)``.
  """
  c = nm.as_curvature(c, x.dtype)
  xy, x2, y2 = _dot(x, y), _dot(x, x), _dot(y, y)
  numerator = (1.0 + 2.0 * c * xy + c * y2) * x + (1.0 - c * x2) * y
  denominator = 1.0 + 2.0 * c * xy + c * c * x2 * y2
  return numerator / jnp.maximum(denominator, nm.tiny(x.dtype))


def _gyration(u, v, w, *, c):
  """``gyr[u, v] w = -(u (+) v) (+) (u (+) (v (+) w))`` in Ungar's closed form (linear in ``w``).

  ``w + 2 (A u + B v) / D`` with ``A = -c^2 <u,w>|v|^2 + c<v,w> + 2c^2 <u,v><v,w>``,
  ``B = -c^2 <v,w>|u|^2 - c<u,w>`` and ``D = 1 + 2c<u,v> + c^2 |u|^2 |v|^2``.
  """
  uv, uw, vw = _dot(u, v), _dot(u, w), _dot(v, w)
  u2, v2 = _dot(u, u), _dot(v, v)
  a = -c * c * uw * v2 + c * vw + 2.0 * c * c * uv * vw
  b = -c * c * vw * u2 - c * uw
  d = 1.0 + 2.0 * c * uv + c * c * u2 * v2
  return w + 2.0 * (a * u + b * v) / jnp.maximum(d, nm.tiny(u.dtype))


def dist(x, y, *, c=1.0):
  """Geodesic distance ``arcosh(1 + 2c|x-y|^2 / ((1-c|x|^2)(1-c|y|^2))) / sqrt(c)``, ``[...]``."""
  c = nm.as_curvature(c, x.dtype)
  floor = nm.tiny(x.dtype)
  denominator = (jnp.maximum(1.0 - c * nm.sq_norm(x), floor)
                 * jnp.maximum(1.0 - c * nm.sq_norm(y), floor))
  delta = 2.0 * c * nm.sq_norm(x - y) / denominator
  return nm.arcosh1p(delta) / jnp.sqrt(c)


def pairwise_dist(x, y, *, c=1.0):
  """All distances ``[..., n, d] x [..., m, d] -> [..., n, m]`` with one matmul."""
  c = nm.as_curvature(c, x.dtype)
  floor = nm.tiny(x.dtype)
  one_minus_x = jnp.maximum(1.0 - c * nm.sq_norm(x), floor)[..., :, None]
  one_minus_y = jnp.maximum(1.0 - c * nm.sq_norm(y), floor)[..., None, :]
  delta = 2.0 * c * euclidean.pairwise_sq_dist(x, y) / (one_minus_x * one_minus_y)
  return nm.arcosh1p(delta) / jnp.sqrt(c)


def expmap(x, v, *, c=1.0):
  """``exp_x(v) = x (+) tanh(sqrt(c) lambda_x |v| / 2) v / (sqrt(c) |v|)``."""
  c = nm.as_curvature(c, x.dtype)
  sqrt_c = jnp.sqrt(c)
  lam = conformal_factor(x, c=c)
  n = nm.safe_norm(v, keepdims=True)
  scale = nm.scaled_by_norm(lambda t: jnp.tanh(sqrt_c * lam * t / 2.0) / sqrt_c, n, lam / 2.0)
  return proj(mobius_add(x, scale * v, c=c), c=c)


def logmap(x, y, *, c=1.0):
  """``log_x(y) = 2 / (sqrt(c) lambda_x) artanh(sqrt(c)|u|) u / |u|``, ``u = (-x) (+) y``."""
  c = nm.as_curvature(c, x.dtype)
  sqrt_c = jnp.sqrt(c)
  lam = conformal_factor(x, c=c)
  u = mobius_add(-x, y, c=c)
  n = nm.safe_norm(u, keepdims=True)
  scale = nm.scaled_by_norm(lambda t: nm.artanh(sqrt_c * t) / sqrt_c, n, 1.0)
  return (2.0 / lam) * scale * u


def expmap0(v, *, c=1.0):
  """``exp_0(v) = tanh(sqrt(c)|v|) v / (sqrt(c)|v|)``, at distance ``2|v|`` from the origin (the
  metric there is 4 times the Euclidean one). Evaluated as :func:`expmap` at the origin (under
  ``jit`` the closed form can round float32 differently, by an ulp)."""
  return expmap(origin(v.shape, c=c, dtype=v.dtype), v, c=c)


def _expmap0_closed_form(v, *, c=1.0):
  """:func:`expmap0` by its closed form (what :func:`random_point` draws with)."""
  c = nm.as_curvature(c, v.dtype)
  sqrt_c = jnp.sqrt(c)
  n = nm.safe_norm(v, keepdims=True)
  return proj(nm.scaled_by_norm(lambda t: jnp.tanh(sqrt_c * t) / sqrt_c, n, 1.0) * v, c=c)


def logmap0(y, *, c=1.0):
  """``log_0(y) = artanh(sqrt(c)|y|) y / (sqrt(c)|y|)``."""
  c = nm.as_curvature(c, y.dtype)
  sqrt_c = jnp.sqrt(c)
  n = nm.safe_norm(y, keepdims=True)
  return nm.scaled_by_norm(lambda t: nm.artanh(sqrt_c * t) / sqrt_c, n, 1.0) * y


def proj(x, *, c=1.0):
  """Rescales points with ``|x| > (1 - margin)/sqrt(c)`` onto that sphere; others unchanged."""
  c = nm.as_curvature(c, x.dtype)
  max_norm = (1.0 - nm.ball_margin(x.dtype)) / jnp.sqrt(c)
  n = nm.safe_norm(x, keepdims=True)
  return jnp.where(n > max_norm, x * (max_norm / jnp.where(n > 0, n, 1.0)), x)


def proj_tangent(x, v, *, c=1.0):
  del x, c
  return v


def egrad2rgrad(x, g, *, c=1.0):
  """Riemannian gradient ``g / lambda_x^2 = g (1 - c|x|^2)^2 / 4`` (N&K eq. 5)."""
  return g / conformal_factor(x, c=c) ** 2


def inner(x, u, v, *, c=1.0):
  return conformal_factor(x, c=c, keepdims=False) ** 2 * jnp.sum(u * v, axis=-1)


def norm(x, v, *, c=1.0):
  return conformal_factor(x, c=c, keepdims=False) * nm.safe_norm(v)


def transp(x, y, v, *, c=1.0):
  """Parallel transport ``P_{x->y}(v) = lambda_x / lambda_y gyr[y, -x] v``."""
  c = nm.as_curvature(c, x.dtype)
  return _gyration(y, -x, v, c=c) * conformal_factor(x, c=c) / conformal_factor(y, c=c)


def retr(x, v, *, c=1.0):
  return proj(x + v, c=c)


def origin(shape, *, c=1.0, dtype=jnp.float32):
  del c
  return jnp.zeros(shape, dtype)


def random_point(key, shape, *, c=1.0, dtype=jnp.float32):
  """``exp_0`` of a Gaussian tangent vector with per-coordinate std ``1/sqrt(c d)``."""
  c = nm.as_curvature(c, dtype)
  v = jax.random.normal(key, shape, dtype) / jnp.sqrt(c * shape[-1])
  return _expmap0_closed_form(v, c=c)


def random_tangent(key, x, *, c=1.0):
  """Gaussian in the orthonormal frame at ``x`` (Euclidean Gaussian divided by ``lambda_x``)."""
  return jax.random.normal(key, x.shape, x.dtype) / conformal_factor(x, c=c)


def is_on_manifold(x, *, c=1.0, atol=1e-5):
  """Finite and strictly inside the ball (``c|x|^2 < 1``; the open ball has no tolerance)."""
  del atol
  c = nm.as_curvature(c, x.dtype)
  inside = c * nm.sq_norm(x) < 1.0
  return inside & jnp.all(jnp.isfinite(x), axis=-1)


def ambient_dim(dim: int) -> int:
  return dim


def direction0(x, *, c=1.0):
  """``x / |x|``: the geodesic from the origin to ``x`` is the segment (the model is conformal at
  the origin), so its direction is the point's own (0 at the origin)."""
  del c
  return nm.unit(x)


def weighted_midpoint(points, weights, *, c=1.0):
  """Einstein midpoints ``[N, D], [M, N] -> [M, D]`` (Ungar 2005; the hyperbolic mean of
  Gulcehre et al. 2019, "Hyperbolic Attention Networks", and of Khrulkov et al. 2020).

  Map to the Klein model ``k = 2 x / (1 + c|x|^2)``, average with weights ``w_mn gamma_n``,
  ``gamma = 1 / sqrt(1 - c|k|^2)``, map back ``x = k / (1 + sqrt(1 - c|k|^2))``. Two points
  with equal weights give their geodesic midpoint. A row of zero total weight gives the origin.
  """
  weights, _, empty = nm.midpoint_weights(weights, points.dtype)
  sq = jnp.sum(points * points, axis=-1, keepdims=True)
  klein = 2.0 * points / (1.0 + c * sq)
  gamma = 1.0 / jnp.sqrt(jnp.maximum(1.0 - c * jnp.sum(klein * klein, -1, keepdims=True),
                                     jnp.finfo(points.dtype).tiny))
  mass = weights @ gamma
  mean = (weights @ (gamma * klein)) / jnp.where(mass > 0, mass, 1.0)
  root = jnp.sqrt(jnp.maximum(1.0 - c * jnp.sum(mean * mean, -1, keepdims=True), 0.0))
  mid = proj(mean / (1.0 + root), c=c)
  return jnp.where(empty, origin(mid.shape, c=c, dtype=points.dtype), mid)


MANIFOLD = Manifold(
    name="poincare", dist=dist, pairwise_dist=pairwise_dist, expmap=expmap, logmap=logmap,
    proj=proj, proj_tangent=proj_tangent, egrad2rgrad=egrad2rgrad, inner=inner, norm=norm,
    transp=transp, retr=retr, origin=origin, random_point=random_point,
    random_tangent=random_tangent, is_on_manifold=is_on_manifold, ambient_dim=ambient_dim,
    curvature_sign=-1, weighted_midpoint=weighted_midpoint, expmap0=expmap0, logmap0=logmap0,
    direction0=direction0)
