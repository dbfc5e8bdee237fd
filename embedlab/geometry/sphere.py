"""The sphere of curvature ``c > 0`` (radius ``1/sqrt(c)``; ``c = 1`` is the unit sphere).

Model: ``{x in R^d : c |x|^2 = 1}`` embedded in R^d with the induced metric; tangent spaces are
``T_x = {v : <x, v> = 0}`` (so the manifold has dimension ``d - 1``: ``ambient_dim(k) == k``
here means *ambient* size ``k``, matching how spherical/cosine embeddings are used in metric
learning, e.g. L2-normalised 128-d FaceNet features).

Conventions: with ``n = sqrt(c) x`` the unit normal, ``dist = arccos(c <x, y>) / sqrt(c)``;
``expmap(x, v) = cos(sqrt(c)|v|) x + sin(sqrt(c)|v|) v / (sqrt(c)|v|)``.

Numerics: ``dist`` uses ``2 arcsin(sqrt(c)|x - y| / 2) / sqrt(c)``, exact for nearby points and
with gradient 0 at ``x == y`` (``arccos`` would be infinite-slope there). Antipodal points have
no unique geodesic; ``logmap`` there returns a finite but arbitrary-length-0 vector.
``pairwise_dist`` uses ``arccos`` of a matmul (clamped), so in float32 distances below ~3e-4
are not resolved there.

The record is ``radial``: a nonzero vector's direction is a point (``proj`` is the radial
projection, the map from a network's features), and ``pairwise_similarity`` is the cosine.
``expmap0`` / ``logmap0`` work at the north pole ``o = e_0 / sqrt(c)`` in ambient coordinates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embedlab.geometry import _numerics as nm
from embedlab.geometry.base import Manifold


def _dot(x, y):
  return jnp.sum(x * y, axis=-1, keepdims=True)


def dist(x, y, *, c=1.0):
  """Great-circle distance ``2 arcsin(sqrt(c) |x - y| / 2) / sqrt(c)``, ``[...]``."""
  c = nm.as_curvature(c, x.dtype)
  sqrt_c = jnp.sqrt(c)
  chord = sqrt_c * nm.safe_norm(x - y)
  return 2.0 * jnp.arcsin(jnp.clip(chord / 2.0, 0.0, 1.0 - nm.tiny(x.dtype))) / sqrt_c


def pairwise_dist(x, y, *, c=1.0):
  """``arccos(c x y^T) / sqrt(c)``, ``[..., n, d] x [..., m, d] -> [..., n, m]``."""
  c = nm.as_curvature(c, x.dtype)
  cos = c * nm.row_dots(x, y)
  return nm.safe_arccos(cos) / jnp.sqrt(c)


def proj(x, *, c=1.0):
  """Radial projection ``x / (sqrt(c) |x|)`` (the zero vector goes to the north pole)."""
  c = nm.as_curvature(c, x.dtype)
  n = nm.safe_norm(x, keepdims=True)
  pole = origin(x.shape, c=c, dtype=x.dtype)
  return jnp.where(n > 0, x / (jnp.sqrt(c) * jnp.where(n > 0, n, 1.0)), pole)


def proj_tangent(x, v, *, c=1.0):
  """``v - c <x, v> x``: removes the normal component."""
  c = nm.as_curvature(c, x.dtype)
  return v - c * _dot(x, v) * x


def egrad2rgrad(x, g, *, c=1.0):
  return proj_tangent(x, g, c=c)


def inner(x, u, v, *, c=1.0):
  del x, c
  return jnp.sum(u * v, axis=-1)


def norm(x, v, *, c=1.0):
  del x, c
  return nm.safe_norm(v)


def expmap(x, v, *, c=1.0):
  c = nm.as_curvature(c, x.dtype)
  sqrt_c = jnp.sqrt(c)
  n = nm.safe_norm(v, keepdims=True)
  scale = nm.scaled_by_norm(lambda t: jnp.sin(sqrt_c * t) / sqrt_c, n, 1.0)
  return proj(jnp.cos(sqrt_c * n) * x + scale * v, c=c)


def logmap(x, y, *, c=1.0):
  """``log_x(y) = d(x, y) u / |u|`` with ``u = y - c <x, y> x``."""
  u = proj_tangent(x, y, c=c)
  n = nm.safe_norm(u, keepdims=True)
  d = dist(x, y, c=c)[..., None]
  return jnp.where(n > 0, d / jnp.where(n > 0, n, 1.0), 1.0) * u


def transp(x, y, v, *, c=1.0):
  """Transport along the great circle: rotate the ``(e, n)`` plane by the angle ``sqrt(c) d``.

  With ``e = log_x(y)/|log_x(y)|`` and ``n = sqrt(c) x``:
  ``P(v) = v + <e, v> ((cos t - 1) e - sin t n)``, ``t = sqrt(c) d(x, y)``.
  """
  c = nm.as_curvature(c, x.dtype)
  sqrt_c = jnp.sqrt(c)
  u = proj_tangent(x, y, c=c)
  n_u = nm.safe_norm(u, keepdims=True)
  e = u / jnp.where(n_u > 0, n_u, 1.0)
  angle = sqrt_c * dist(x, y, c=c)[..., None]
  ev = _dot(e, v)
  return v + ev * ((jnp.cos(angle) - 1.0) * e - jnp.sin(angle) * sqrt_c * x)


def retr(x, v, *, c=1.0):
  return proj(x + v, c=c)


def origin(shape, *, c=1.0, dtype=jnp.float32):
  """The "north pole" ``e_0 / sqrt(c)``."""
  c = nm.as_curvature(c, dtype)
  return jnp.zeros(shape, dtype).at[..., 0].set(1.0 / jnp.sqrt(c))


def random_point(key, shape, *, c=1.0, dtype=jnp.float32):
  """Uniform on the sphere (normalised Gaussian)."""
  return proj(jax.random.normal(key, shape, dtype), c=c)


def random_tangent(key, x, *, c=1.0):
  return proj_tangent(x, jax.random.normal(key, x.shape, x.dtype), c=c)


def is_on_manifold(x, *, c=1.0, atol=1e-5):
  c = nm.as_curvature(c, x.dtype)
  on = jnp.abs(jnp.sqrt(c) * nm.safe_norm(x) - 1.0) <= atol
  return on & jnp.all(jnp.isfinite(x), axis=-1)


def ambient_dim(dim: int) -> int:
  return dim


def _tangent_at_origin(v):
  """The component of ``v`` in ``T_o = {v : v_0 = 0}`` (the origin is the north pole)."""
  return v.at[..., 0].set(0.0)


def expmap0(v, *, c=1.0):
  """``exp_o(v)`` at the north pole ``o``; ``v [..., D]`` in ambient coordinates, its
  component along ``o`` (coordinate 0) ignored."""
  return expmap(origin(v.shape, c=c, dtype=v.dtype), _tangent_at_origin(v), c=c)


def logmap0(x, *, c=1.0):
  """``log_o(x) = d(o, x) u / |u|`` with ``u = (0, x_{1:})``; 0 at both poles (at the south
  pole every direction is a shortest one)."""
  u = _tangent_at_origin(x)
  n = nm.safe_norm(u, keepdims=True)
  d = dist(origin(x.shape, c=c, dtype=x.dtype), x, c=c)[..., None]
  return jnp.where(n > 0, d / jnp.where(n > 0, n, 1.0), 1.0) * u


def direction0(x, *, c=1.0):
  del c
  return nm.unit(_tangent_at_origin(x))


def pairwise_similarity(x, y, *, c=1.0):
  """The cosine ``c <x, y> = cos(sqrt(c) d(x, y))``, ``[..., n, D] x [..., m, D] -> [..., n, m]``
  (pytorch-metric-learning's ``CosineSimilarity`` on unit vectors)."""
  return c * nm.row_dots(x, y)


def weighted_midpoint(points, weights, *, c=1.0):
  """The extrinsic mean: ``proj(sum_n w_mn x_n)``, the weighted mean rescaled to radius
  ``1/sqrt(c)``; ``[N, D], [M, N] -> [M, D]``. Two points with equal weights give their
  geodesic midpoint (unless antipodal). A row of zero total weight gives the origin."""
  weights, _, empty = nm.midpoint_weights(weights, points.dtype)
  mid = proj(weights @ points, c=c)
  return jnp.where(empty, origin(mid.shape, c=c, dtype=points.dtype), mid)


MANIFOLD = Manifold(
    name="sphere", dist=dist, pairwise_dist=pairwise_dist, expmap=expmap, logmap=logmap,
    proj=proj, proj_tangent=proj_tangent, egrad2rgrad=egrad2rgrad, inner=inner, norm=norm,
    transp=transp, retr=retr, origin=origin, random_point=random_point,
    random_tangent=random_tangent, is_on_manifold=is_on_manifold, ambient_dim=ambient_dim,
    curvature_sign=1, weighted_midpoint=weighted_midpoint, expmap0=expmap0, logmap0=logmap0,
    direction0=direction0, pairwise_similarity=pairwise_similarity, radial=True)
