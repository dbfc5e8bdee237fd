"""A flax encoder whose output lies on a manifold: features -> MLP -> point.

:class:`MLP` maps Euclidean features to ``dim`` Euclidean coordinates ``v``;
:func:`to_manifold` puts ``v`` on the manifold, so plain optax Adam trains an encoder for
every geometry (no Riemannian optimizer):

* a ``vector_space`` geometry (Euclidean space): ``v`` itself;
* a ``radial`` geometry (the sphere): ``proj(v) = v / (sqrt(c) |v|)`` (L2 normalisation, as
  FaceNet / cosine embeddings);
* any other geometry (the Poincaré ball, the hyperboloid, one registered from a notebook):
  ``expmap0(clip(v))``, the exponential map at the origin of the tangent coordinates (Khrulkov
  et al., "Hyperbolic Image Embeddings", CVPR 2020), the feature clipped to norm at most
  ``clip_radius`` (Guo et al., "Clipped Hyperbolic Classifiers Are Super-Hyperbolic
  Classifiers", CVPR 2022): on the ball the points stay at hyperbolic distance
  ``<= 2 clip_radius`` from the origin, away from the float32 boundary where gradients vanish.
  ``clip_radius = 0`` disables clipping. On the hyperboloid the points have ambient size
  ``dim + 1``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from embedlab.geometry.base import Manifold


class MLP(nn.Module):
  """``Dense -> relu`` per hidden width, then a linear ``Dense(out)``.

  Attributes:
    hidden: the hidden widths, e.g. ``(256, 256)``; ``()`` gives a linear encoder.
    out: the output width (the embedding's intrinsic dimension).
  """

  hidden: Sequence[int]
  out: int

  @nn.compact
  def __call__(self, x):
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.out)(x)


def check_widths(hidden: Sequence[int], *, name: str = "hidden") -> tuple[int, ...]:
  """``hidden`` as a tuple of ints, each at least 1.

  Raises:
    ValueError: naming ``name`` when a width is not a positive int.
  """
  widths = tuple(hidden)
  if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
    raise ValueError(f"{name}={widths!r}: hidden widths must be positive ints "
                     "(an empty tuple gives a linear encoder)")
  return widths


def clip_norm(v, radius: float):
  """``v * min(1, radius / |v|)`` row-wise; ``radius <= 0`` returns ``v``.

  Args:
    v: ``[..., d]`` vectors.
    radius: the largest norm kept (a Python float: it selects the branch).
  """
  if radius <= 0:
    return v
  norm = jnp.sqrt(jnp.maximum(jnp.sum(v * v, axis=-1, keepdims=True), 1e-30))
  return v * jnp.minimum(1.0, radius / norm)


def to_manifold(v, *, manifold: Manifold, c, clip_radius: float = 0.0):
  """Maps Euclidean features ``v [..., dim]`` onto ``manifold`` (see the module docstring).

  Returns ``[..., manifold.ambient_dim(dim)]`` points.
  """
  if manifold.vector_space:
    return v
  if manifold.radial:
    return manifold.proj(v, c=c)
  return manifold.expmap0(clip_norm(v, clip_radius), c=c)


@functools.partial(jax.jit, static_argnames=("model", "clip_radius"))
def embed_points(model: nn.Module, encoder_params, x, *, manifold: Manifold, c,
                 clip_radius: float):
  """``to_manifold(model(x))`` of features ``x [N, F]``: ``[N, manifold.ambient_dim(out)]``.

  Jitted at module level, so every task with the same model shares one compilation per input
  shape.
  """
  chex.assert_rank(x, 2)
  v = model.apply({"params": encoder_params}, x)
  return to_manifold(v, manifold=manifold, c=c, clip_radius=clip_radius)
