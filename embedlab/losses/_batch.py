"""Shared kernel of the labelled-batch losses (metric, contrastive, proxy, prototype losses).

Not public API: the loss modules import it so that every loss checks its input, treats
non-finite embeddings, reduces, measures distance / similarity and takes a softmax
cross-entropy (:func:`cross_entropy`, precise for confident rows) the same way.

Distances: ``distance="geodesic"`` is the geometry's own ``pairwise_dist`` (one matmul);
``distance="snr"`` is the signal-to-noise-ratio distance of Yuan et al. 2019 (Euclidean
features: a ``vector_space`` geometry; asymmetric). Similarities and midpoints are the
geometry's own (``manifold.pairwise_similarity``, ``manifold.weighted_midpoint``): the sphere's
similarity is the cosine ``c <x, y>`` (what pytorch-metric-learning's ``CosineSimilarity``
computes on unit vectors), the default one the negative geodesic distance ``-d(x, y)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embedlab.geometry import row_dots
from embedlab.geometry.base import Manifold

REDUCTIONS = ("mean", "sum", "none")
DISTANCES = ("geodesic", "snr")


def check_reduction(reduction: str):
  if reduction not in REDUCTIONS:
    raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")


def check_batch(embeddings, labels, reduction: str):
  """Eager checks shared by the losses (shapes are static, so these run under ``jit`` too)."""
  check_reduction(reduction)
  if embeddings.ndim != 2:
    raise ValueError(f"embeddings must be [B, D]; got shape {embeddings.shape}")
  if labels.ndim != 1:
    raise ValueError(f"labels must be [B]; got shape {labels.shape}")
  if labels.shape[0] != embeddings.shape[0]:
    raise ValueError(f"labels and embeddings have different lengths: {labels.shape[0]} labels "
                     f"for {embeddings.shape[0]} embeddings")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"labels must be integers; got dtype {labels.dtype}")


def sanitize(embeddings, manifold: Manifold, c):
  """``(embeddings, all_finite)``; a batch with a non-finite entry is swapped for the origin.

  The swap keeps NaN out of the backward pass (a zero cotangent times a NaN partial is still
  NaN); :func:`nan_if` then puts the NaN back into the value.
  """
  finite = jnp.all(jnp.isfinite(embeddings))
  base = manifold.origin(embeddings.shape, c=c, dtype=embeddings.dtype)
  return jnp.where(finite, embeddings, base), finite


def nan_if(finite, values):
  """``values`` if ``finite`` else NaN everywhere."""
  return jnp.where(finite, values, jnp.nan)


def masked_reduce(values, count, reduction: str):
  """``"none"``: ``values``; ``"sum"``: their sum; ``"mean"``: sum / count (0 when count is 0)."""
  if reduction == "none":
    return values
  total = jnp.sum(values)
  if reduction == "sum":
    return total
  return total / jnp.maximum(count, 1).astype(values.dtype)


def pair_masks(labels):
  """Positive and negative pair masks of a labelled batch.

  Args:
    labels: ``[B]`` integer class labels.

  Returns:
    ``(positive [B, B] bool, negative [B, B] bool)``: ``positive[i, j]`` is
    ``labels[i] == labels[j] and i != j`` (the diagonal is excluded: a point is not its own
    positive); ``negative[i, j]`` is ``labels[i] != labels[j]``.
  """
  if labels.ndim != 1:
    raise ValueError(f"labels must be [B]; got shape {labels.shape}")
  same = labels[:, None] == labels[None, :]
  eye = jnp.eye(labels.shape[0], dtype=bool)
  return same & ~eye, ~same


def snr_distance(x, y):
  """Signal-to-noise-ratio distance ``Var(y_j - x_i) / Var(x_i)``, ``[n, D] x [m, D] -> [n, m]``.

  Yuan, Chen, Wang, Yu & Sun, "Signal-to-Noise Ratio: A Robust Distance Metric for Deep Metric
  Learning", CVPR 2019, eq. (5): the anchor ``x_i`` is the signal, ``y_j - x_i`` the noise;
  variances are over the ``D`` feature entries (population variance, ``1/D``). Not symmetric.
  Written with a matmul::

      Var(y - x) = (|x|^2 + |y|^2 - 2 <x, y>) / D - (mean(y) - mean(x))^2

  clamped at 0 (float rounding); a constant anchor (zero variance) gives ``inf``.
  """
  dim = x.shape[-1]
  sq_x = jnp.sum(x * x, axis=-1)
  sq_y = jnp.sum(y * y, axis=-1)
  mean_x = jnp.mean(x, axis=-1)
  mean_y = jnp.mean(y, axis=-1)
  noise = (sq_x[:, None] + sq_y[None, :] - 2.0 * row_dots(x, y)) / dim
  noise = jnp.maximum(noise - jnp.square(mean_y[None, :] - mean_x[:, None]), 0.0)
  signal = jnp.var(x, axis=-1)
  return noise / signal[:, None]


def check_distance(distance: str, manifold: Manifold):
  if distance not in DISTANCES:
    raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")
  if distance == "snr" and not manifold.vector_space:
    raise ValueError(f"distance='snr' is defined for Euclidean features (a vector_space "
                     f"geometry); got manifold {manifold.name!r}")


def pairwise_distance(x, y, *, manifold: Manifold, c, distance: str = "geodesic"):
  """``[n, D] x [m, D] -> [n, m]`` distances: geodesic on ``manifold`` or SNR (see module)."""
  check_distance(distance, manifold)
  if distance == "snr":
    return snr_distance(x, y)
  return manifold.pairwise_dist(x, y, c=c)


def class_centroids(embeddings, labels, *, num_classes: int, manifold: Manifold, c):
  """``(centroids [C, D], counts [C])``: each class's ``manifold.weighted_midpoint`` (the origin
  for a class with no member)."""
  one_hot = (labels[None, :] == jnp.arange(num_classes)[:, None])
  return (manifold.weighted_midpoint(embeddings, one_hot, c=c),
          jnp.sum(one_hot, axis=1))


def masked_logsumexp(x, mask):
  """``(log sum_{mask} exp(x), any(mask))`` along the last axis; ``0`` (finite) where empty.

  Masked-out entries are replaced by the row maximum *before* ``exp`` so that a huge masked
  entry cannot overflow into an ``inf * 0 = NaN`` gradient.
  """
  has_any = jnp.any(mask, axis=-1)
  row_max = jnp.max(jnp.where(mask, x, -jnp.inf), axis=-1, keepdims=True)
  row_max = jax.lax.stop_gradient(jnp.where(has_any[..., None], row_max, 0.0))
  shifted = jnp.where(mask, x, row_max) - row_max
  total = jnp.sum(jnp.where(mask, jnp.exp(shifted), 0.0), axis=-1)
  lse = jnp.log(jnp.where(has_any, total, 1.0)) + row_max[..., 0]
  return jnp.where(has_any, lse, 0.0), has_any


def cross_entropy(logits, target, allowed=True):
  """``-log softmax(logits)[target]`` per row over the ``allowed`` entries (one-hot ``target``).

  ``logits [..., C]``, ``target`` and ``allowed`` boolean masks broadcasting against them
  (``allowed=True``: every entry); returns ``[...]``.

  Written as ``softplus(log sum_{k != target} exp(l_k - l_target))`` so that a confident row
  keeps its relative precision (``lse - l_target`` would round ``log(1 + 1e-7)`` to 0 in
  float32); a row with no other allowed entry costs exactly 0.
  """
  target_logit = jnp.sum(jnp.where(target, logits, 0.0), axis=-1, keepdims=True)
  others_lse, has_other = masked_logsumexp(logits - target_logit, allowed & ~target)
  return jnp.where(has_other, jax.nn.softplus(others_lse), 0.0)
