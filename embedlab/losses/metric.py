"""Pair and triplet metric-learning losses over a labelled batch, for any geometry.

Every loss takes a batch ``embeddings [B, D]`` of points on ``manifold`` with integer
``labels [B]``, computes all distances ``d = manifold.pairwise_dist(embeddings, embeddings)``
once (one matmul), and builds its pairs / triplets from the label masks of :func:`pair_masks`.
Mining runs inside ``jit``: every miner is a fixed-shape masked reduction over ``[B, B]`` or
``[B, B, B]`` arrays, never a data-dependent gather, so a batch compiles once per ``B``.

Conventions shared by all losses here:

* A *positive pair* is ``(i, j)`` with ``labels[i] == labels[j]`` and ``i != j``; a *negative
  pair* has ``labels[i] != labels[j]``. A point is never its own positive.
* Anchors without a positive (a class with a single sample in the batch) or without a negative
  (a batch of one class) form no pair / triplet and are masked out. If a batch has no valid
  unit at all, the loss is ``0`` with zero gradient (no error: a jitted step cannot raise on
  data, and a small random batch can legitimately hold no triplet).
* Non-finite input: if any entry of ``embeddings`` is NaN or infinite the result is NaN (every
  entry, for ``reduction="none"``), whether or not that row takes part in a valid unit, so a bad
  row is never silently masked away (the train loop raises on the first non-finite loss). The
  gradient is then zero, not NaN.
* ``distance="snr"`` swaps the geodesic distance for the SNR distance of Yuan et al. 2019
  (:func:`snr_distance`, Euclidean features), in every pair / triplet loss here.
* ``pairwise_dist`` is the matmul form: in float32 its error near ``d = 0`` is about
  ``sqrt(eps)`` times the norms (see each geometry's docstring); use float64 for reference checks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embedlab.geometry import euclidean
from embedlab.geometry.base import Manifold
from embedlab.losses import _batch
from embedlab.losses._batch import pair_masks, snr_distance

_MININGS = ("batch_all", "batch_hard", "semi_hard")


def contrastive_loss(embeddings, labels, *, manifold: Manifold = euclidean.MANIFOLD, c=1.0,
                     pos_margin=0.0, neg_margin=1.0, distance: str = "geodesic",
                     reduction: str = "mean"):
  """Contrastive pair loss over all pairs of the batch (Hadsell, Chopra & LeCun 2006).

  For each ordered pair ``i != j`` with distance ``d_ij``::

      L_ij = relu(d_ij - pos_margin)^2     if labels[i] == labels[j]   (pull together)
      L_ij = relu(neg_margin - d_ij)^2     otherwise                   (push past the margin)

  With ``pos_margin = 0`` this is eq. (4) of Hadsell et al., "Dimensionality Reduction by
  Learning an Invariant Mapping", CVPR 2006, without its constant factor ``1/2``;
  ``pos_margin > 0`` is the double-margin variant (positives closer than ``pos_margin`` cost
  nothing).

  Averaging: ``"mean"`` is the plain mean over all ``B (B - 1)`` ordered pairs ``i != j``
  (equivalently over the ``B (B - 1) / 2`` unordered pairs), pairs with zero loss included
  (not the "mean over non-zero pairs" of pytorch-metric-learning); ``0`` for ``B = 1``.
  ``"sum"`` sums the ``[B, B]`` matrix (each unordered pair counted twice). ``"none"`` returns
  the symmetric ``[B, B]`` matrix ``L`` with zeros on the diagonal.

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer class labels.
    manifold: the geometry (its ``pairwise_dist`` is used); default Euclidean.
    c: curvature magnitude.
    pos_margin: positives closer than this cost nothing.
    neg_margin: negatives farther than this cost nothing.
    distance: ``"geodesic"`` (the manifold's distance, default) or ``"snr"`` (the
      signal-to-noise-ratio distance of Yuan et al. 2019, :func:`snr_distance`; Euclidean
      features only, ``d[i, j]`` with ``i`` the anchor).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

  Returns:
    A scalar, or ``[B, B]`` for ``reduction="none"``; NaN if any embedding is non-finite.
  """
  _batch.check_batch(embeddings, labels, reduction)
  embeddings, finite = _batch.sanitize(embeddings, manifold, c)
  d = _batch.pairwise_distance(embeddings, embeddings, manifold=manifold, c=c, distance=distance)
  positive, negative = pair_masks(labels)
  per_pair = jnp.where(positive, jnp.square(jnp.maximum(d - pos_margin, 0.0)), 0.0)
  per_pair += jnp.where(negative, jnp.square(jnp.maximum(neg_margin - d, 0.0)), 0.0)
  batch = labels.shape[0]
  loss = _batch.masked_reduce(per_pair, batch * (batch - 1), reduction)
  return _batch.nan_if(finite, loss)


def _batch_all(d, positive, negative, margin):
  """``[B, B, B]`` losses of all valid triplets and the count of those with positive loss."""
  valid = positive[:, :, None] & negative[:, None, :]
  per_triplet = jnp.maximum(d[:, :, None] - d[:, None, :] + margin, 0.0)
  per_triplet = jnp.where(valid, per_triplet, 0.0)
  return per_triplet, jnp.sum(per_triplet > 0)


def _batch_hard(d, positive, negative, margin):
  """``[B]`` losses of each anchor's hardest positive vs hardest negative; valid anchor count."""
  valid = jnp.any(positive, axis=1) & jnp.any(negative, axis=1)
  # Finite fills: distances are >= 0, so 0 never wins the max over positives, and the row's
  # largest distance never undercuts a real negative in the min (no inf arithmetic, no NaN grad).
  hardest_positive = jnp.max(jnp.where(positive, d, 0.0), axis=1)
  fill = jax.lax.stop_gradient(jnp.max(d, axis=1, keepdims=True))
  hardest_negative = jnp.min(jnp.where(negative, d, fill), axis=1)
  per_anchor = jnp.maximum(hardest_positive - hardest_negative + margin, 0.0)
  return jnp.where(valid, per_anchor, 0.0), jnp.sum(valid)


def _semi_hard(d, positive, negative, margin):
  """``[B, B]`` losses per positive pair ``(a, p)`` with its semi-hard negative; valid count."""
  valid = positive & jnp.any(negative, axis=1)[:, None]
  # outside[a, p, n]: n is a negative of a farther from a than p is.
  outside = negative[:, None, :] & (d[:, None, :] > d[:, :, None])
  has_outside = jnp.any(outside, axis=2)
  fill = jax.lax.stop_gradient(jnp.max(d, axis=1))[:, None, None]
  closest_outside = jnp.min(jnp.where(outside, d[:, None, :], fill), axis=2)
  farthest_negative = jnp.max(jnp.where(negative, d, 0.0), axis=1)[:, None]
  chosen = jnp.where(has_outside, closest_outside, farthest_negative)
  per_pair = jnp.maximum(d - chosen + margin, 0.0)
  return jnp.where(valid, per_pair, 0.0), jnp.sum(valid)


_MINERS = {"batch_all": _batch_all, "batch_hard": _batch_hard, "semi_hard": _semi_hard}


def triplet_loss(embeddings, labels, *, manifold: Manifold = euclidean.MANIFOLD, c=1.0,
                 margin=0.2, mining: str = "batch_all", distance: str = "geodesic",
                 reduction: str = "mean"):
  """Triplet margin loss with in-batch mining (FaceNet; batch-hard of Hermans et al.).

  For an anchor ``a``, a positive ``p`` (same label, ``p != a``) and a negative ``n`` (other
  label), with (non-squared) geodesic distances::

      L(a, p, n) = relu(d(a, p) - d(a, n) + margin)

  Schroff, Kalenichenko & Philbin, "FaceNet: A Unified Embedding for Face Recognition and
  Clustering", CVPR 2015 (eq. 1, used with distances rather than squared distances, as Hermans
  et al. recommend); Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for Person
  Re-Identification", arXiv:1703.07737, 2017 (batch-all and batch-hard).

  ``mining`` picks the triplets and sets what ``reduction`` averages:

  * ``"batch_all"``: every valid triplet. ``"none"``: ``[B, B, B]`` indexed ``[a, p, n]``, zero
    off the valid triplets; ``"sum"``: their sum; ``"mean"``: the sum divided by the number of
    triplets with *positive* loss (Hermans et al.'s "BA, non-zero"), so easy triplets do not
    dilute the gradient; ``0`` if none is active.
  * ``"batch_hard"``: per anchor, the farthest positive against the closest negative.
    ``"none"``: ``[B]``; ``"mean"``: mean over anchors that have a positive and a negative.
  * ``"semi_hard"``: per positive pair ``(a, p)``, the closest negative *farther* than
    ``d(a, p)``; if no negative is farther, the farthest negative of ``a`` (the semantics of
    TensorFlow Addons' ``triplet_semihard_loss``; FaceNet Sec. 3.2 only says semi-hard
    negatives satisfy ``d(a, p) < d(a, n)``). ``"none"``: ``[B, B]`` indexed ``[a, p]``, zero
    off the valid pairs; ``"mean"``: mean over positive pairs whose anchor has a negative.

  Masked units (no positive / no negative) are zero in ``"none"`` and left out of ``"mean"``.
  Miners compare distances with ``>``; ties (e.g. duplicate points) are broken by that rule.

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer class labels.
    manifold: the geometry (its ``pairwise_dist`` is used); default Euclidean.
    c: curvature magnitude.
    margin: the margin ``alpha``.
    mining: ``"batch_all"`` (default), ``"batch_hard"`` or ``"semi_hard"``.
    distance: ``"geodesic"`` (the manifold's distance, default) or ``"snr"`` (the
      signal-to-noise-ratio distance of Yuan et al. 2019, :func:`snr_distance`; Euclidean
      features only, ``d[i, j]`` with ``i`` the anchor).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

  Returns:
    A scalar, or the per-unit array above for ``reduction="none"``; ``0`` if the batch holds no
    valid triplet; NaN if any embedding is non-finite.
  """
  if mining not in _MININGS:
    raise ValueError(f"unknown mining {mining!r}; expected one of {_MININGS}")
  _batch.check_batch(embeddings, labels, reduction)
  embeddings, finite = _batch.sanitize(embeddings, manifold, c)
  d = _batch.pairwise_distance(embeddings, embeddings, manifold=manifold, c=c, distance=distance)
  positive, negative = pair_masks(labels)
  values, count = _MINERS[mining](d, positive, negative, margin)
  return _batch.nan_if(finite, _batch.masked_reduce(values, count, reduction))
