"""Euclidean space R^d as a (flat) manifold.

Conventions: points and tangent vectors are ``[..., d]``; the curvature ``c`` is accepted for a
uniform signature and ignored. ``dist`` is the L2 distance with gradient 0 at ``x == y``;
``pairwise_dist`` uses ``|x|^2 + |y|^2 - 2 x.y`` (one matmul), so its float32 error near 0 is
about ``sqrt(eps) * |x|``: use ``dist`` where small distances must be exact.

The record is a ``vector_space``: points are plain vectors (losses may average and dot them);
``expmap0`` / ``logmap0`` are the identity and the midpoint is the weighted mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embedlab.geometry import _numerics as nm
from embedlab.geometry.base import Manifold


def dist(x, y, *, c=0.0):
  del c
  return nm.safe_norm(x - y)


def pairwise_sq_dist(x, y):
  """``[..., n, d] x [..., m, d] -> [..., n, m]`` squared L2 distances via one matmul."""
  xy = nm.row_dots(x, y)
  sq = nm.sq_norm(x)[..., :, None] + nm.sq_norm(y)[..., None, :] - 2.0 * xy
  return jnp.maximum(sq, 0.0)


def pairwise_dist(x, y, *, c=0.0):
  del c
  return nm.safe_sqrt(pairwise_sq_dist(x, y))


def expmap(x, v, *, c=0.0):
  del c
  return x + v


def logmap(x, y, *, c=0.0):
  del c
  return y - x


def proj(x, *, c=0.0):
  del c
  return x


def proj_tangent(x, v, *, c=0.0):
  del x, c
  return v


def egrad2rgrad(x, g, *, c=0.0):
  del x, c
  return g


def inner(x, u, v, *, c=0.0):
  del x, c
  return jnp.sum(u * v, axis=-1)


def norm(x, v, *, c=0.0):
  del x, c
  return nm.safe_norm(v)


def transp(x, y, v, *, c=0.0):
  del x, y, c
  return v


def retr(x, v, *, c=0.0):
  return expmap(x, v, c=c)


def origin(shape, *, c=0.0, dtype=jnp.float32):
  del c
  return jnp.zeros(shape, dtype)


def random_point(key, shape, *, c=0.0, dtype=jnp.float32):
  del c
  return jax.random.normal(key, shape, dtype)


def random_tangent(key, x, *, c=0.0):
  del c
  return jax.random.normal(key, x.shape, x.dtype)


def is_on_manifold(x, *, c=0.0, atol=1e-5):
  del c, atol
  return jnp.all(jnp.isfinite(x), axis=-1)


def ambient_dim(dim: int) -> int:
  return dim


def expmap0(v, *, c=0.0):
  """``exp_0(v) = v``: tangent coordinates at the origin are the point's coordinates."""
  del c
  return v


def logmap0(x, *, c=0.0):
  del c
  return x


def direction0(x, *, c=0.0):
  del c
  return nm.unit(x)


def weighted_midpoint(points, weights, *, c=0.0):
  """The weighted mean ``sum_n w_mn x_n / sum_n w_mn``, ``[N, D], [M, N] -> [M, D]``; a row of
  zero total weight gives the origin."""
  weights, total, empty = nm.midpoint_weights(weights, points.dtype)
  mid = (weights @ points) / total
  return jnp.where(empty, origin(mid.shape, c=c, dtype=points.dtype), mid)


MANIFOLD = Manifold(
    name="euclidean", dist=dist, pairwise_dist=pairwise_dist, expmap=expmap, logmap=logmap,
    proj=proj, proj_tangent=proj_tangent, egrad2rgrad=egrad2rgrad, inner=inner, norm=norm,
    transp=transp, retr=retr, origin=origin, random_point=random_point,
    random_tangent=random_tangent, is_on_manifold=is_on_manifold, ambient_dim=ambient_dim,
    curvature_sign=0, weighted_midpoint=weighted_midpoint, expmap0=expmap0, logmap0=logmap0,
    direction0=direction0, vector_space=True)
