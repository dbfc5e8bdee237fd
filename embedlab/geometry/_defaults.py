"""Generic defaults of the optional operations of a :class:`~embedlab.geometry.base.Manifold`.

A record that leaves an optional field out gets the function of the same name here, built from
its required operations (``origin``, ``expmap``, ``logmap``, ``proj_tangent``, ``pairwise_dist``,
``ambient_dim``), so a geometry written in a notebook works in every loss and task without them.
The built-in geometries define closed forms instead (see each module).

Tangent coordinates at the origin: a tangent vector at ``origin`` is written with the ``d``
coordinates of ``manifold.tangent_dim(D)``, the *last* ``d`` of its ``D`` ambient coordinates;
the ``D - d`` leading ones (the hyperboloid's time coordinate) are 0 on ``T_origin`` and dropped.
Where ``d == D`` (the ball, Euclidean space, the sphere) the coordinates are the ambient ones.

Each function takes the manifold first; the record binds it (``manifold.expmap0(v, c=c)``).
"""

from __future__ import annotations

import jax.numpy as jnp

from embedlab.geometry import _numerics as nm


def expmap0(manifold, v, *, c):
  """``exp_o(v)``: the tangent coordinates ``v [..., d]`` padded with ``D - d`` leading zeros,
  projected onto ``T_o`` (``proj_tangent``) and mapped by ``expmap`` at the origin ``o``;
  ``[..., D]``."""
  extra = manifold.ambient_dim(v.shape[-1]) - v.shape[-1]
  if extra < 0:
    raise ValueError(f"{manifold.name}: ambient_dim({v.shape[-1]}) < {v.shape[-1]}; expmap0 "
                     "needs tangent coordinates that embed into the ambient ones")
  u = jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(extra, 0)])
  o = manifold.origin(u.shape, c=c, dtype=u.dtype)
  return manifold.expmap(o, manifold.proj_tangent(o, u, c=c), c=c)


def logmap0(manifold, x, *, c):
  """``log_o(x)`` in tangent coordinates: ``logmap`` at the origin, leading ``D - d`` ambient
  coordinates dropped; ``[..., D] -> [..., d]``."""
  ambient = x.shape[-1]
  o = manifold.origin(x.shape, c=c, dtype=x.dtype)
  return manifold.logmap(o, x, c=c)[..., ambient - manifold.tangent_dim(ambient):]


def direction0(manifold, x, *, c):
  """``log_o(x) / |log_o(x)|``: the unit direction of ``x`` seen from the origin, in tangent
  coordinates (zero at the origin itself)."""
  return nm.unit(manifold.logmap0(x, c=c))


def pairwise_similarity(manifold, x, y, *, c):
  """``-d(x, y)``: the negative geodesic distance, ``[..., n, D] x [..., m, D] -> [..., n, m]``."""
  return -manifold.pairwise_dist(x, y, c=c)


def weighted_midpoint(manifold, points, weights, *, c):
  """The weighted mean in the tangent space at the origin, mapped back:
  ``exp_o(sum_n w_mn log_o(x_n) / sum_n w_mn)``; ``[N, D], [M, N] -> [M, D]``.

  One step, no iteration: cheap, differentiable everywhere ``logmap0`` is, on the manifold by
  construction, permutation invariant, exact for identical points and in flat space, and the
  origin for a row of zero total weight. It is *not* the geodesic midpoint of two points
  (unless they are symmetric about the origin) and it depends on where the origin is: a
  geometry with a closed-form barycentre (an Einstein midpoint, a normalised sum) should
  define its own ``weighted_midpoint``, which the conformance suite then holds to the
  geodesic midpoint.
  """
  weights, total, empty = nm.midpoint_weights(weights, points.dtype)
  mid = manifold.expmap0((weights @ manifold.logmap0(points, c=c)) / total, c=c)
  return jnp.where(empty, manifold.origin(mid.shape, c=c, dtype=points.dtype), mid)


GENERIC = {
    "weighted_midpoint": weighted_midpoint,
    "expmap0": expmap0,
    "logmap0": logmap0,
    "direction0": direction0,
    "pairwise_similarity": pairwise_similarity,
}
