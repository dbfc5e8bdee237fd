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

from embedlab.geometry import euclidean, sphere
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


def _multi_similarity_terms(sim, pos_weight, neg_weight, *, alpha, beta, base):
  """``[N]`` per-anchor multi-similarity losses of ``sim [N, M]`` with pair weights ``[N, M]``.

  ``(1/alpha) log(1 + sum_j w+_ij e^{-alpha (S_ij - base)})
  + (1/beta) log(1 + sum_j w-_ij e^{beta (S_ij - base)})``; a zero weight drops the pair (its
  exponent is -inf inside a log-sum-exp that always holds the ``1``, so no overflow, no NaN).
  Shared with the Metrix losses (:mod:`embedlab.losses.mixup`).
  """
  def soft_plus_sum(exponent, weight):
    live = weight > 0
    logits = jnp.where(live, exponent + jnp.log(jnp.where(live, weight, 1.0)), -jnp.inf)
    logits = jnp.concatenate([logits, jnp.zeros_like(logits[:, :1])], axis=1)
    return jax.nn.logsumexp(logits, axis=1)

  positive = soft_plus_sum(-alpha * (sim - base), pos_weight) / alpha
  negative = soft_plus_sum(beta * (sim - base), neg_weight) / beta
  return positive + negative


def _multi_similarity_mine(sim, positive, negative, epsilon):
  """Pair mining of Wang et al. 2019, eq. (3)-(4): ``(kept positives, kept negatives)`` masks.

  A negative ``k`` of anchor ``i`` is kept if ``S_ik + epsilon > min_{j in P_i} S_ij``; a positive
  ``j`` is kept if ``S_ij - epsilon < max_{k in N_i} S_ik`` (both against the *unmined* sets, as
  pytorch-metric-learning's ``MultiSimilarityMiner``). An anchor without negatives keeps no
  positive and one without positives keeps no negative.
  """
  sim = jax.lax.stop_gradient(sim)
  min_positive = jnp.min(jnp.where(positive, sim, jnp.inf), axis=1, keepdims=True)
  max_negative = jnp.max(jnp.where(negative, sim, -jnp.inf), axis=1, keepdims=True)
  return positive & (sim - epsilon < max_negative), negative & (sim + epsilon > min_positive)


def multi_similarity_loss(embeddings, labels, *, manifold: Manifold = sphere.MANIFOLD, c=1.0,
                          alpha=2.0, beta=50.0, base=0.5, mining_epsilon=None,
                          label_weights=None, reduction: str = "mean"):
  """Multi-similarity loss (Wang, Han, Huang, Dong & Scott, CVPR 2019, eq. 7).

  Wang et al., "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning",
  CVPR 2019. With the similarity ``S = pairwise_similarity`` (the cosine ``c <x, y>`` on the
  sphere, ``-d(x, y)`` in every other geometry), per anchor ``i`` (eq. 7, ``base`` = lambda)::

      L_i = (1/alpha) log(1 + sum_{j in P_i} w+_ij exp(-alpha (S_ij - base)))
          + (1/beta)  log(1 + sum_{k in N_i} w-_ik exp( beta (S_ik - base)))

  with ``P_i``, ``N_i`` the positives / negatives of ``i`` (:func:`pair_masks`, self excluded)
  and all weights 1 unless ``label_weights`` is given. ``mining_epsilon`` enables the paper's
  pair mining (eq. 3-4, see :func:`_multi_similarity_mine`): only negatives with
  ``S_ik > min_P S_ij - epsilon`` and positives with ``S_ij < max_N S_ik + epsilon`` stay
  (pytorch-metric-learning ``MultiSimilarityMiner(epsilon)`` semantics); ``None`` uses every
  pair (``MultiSimilarityLoss`` without a miner).

  ``label_weights [B, B]`` (soft targets, e.g. interpolated mixup labels) replaces the label
  masks: ``w+_ij = label_weights[i, j]`` and ``w-_ij = 1 - label_weights[i, j]`` for ``i != j``
  (the diagonal is ignored); entries should lie in ``[0, 1]``. Hard weights
  ``label_weights = (labels[:, None] == labels[None, :])`` give the plain loss. With mining,
  the candidate sets are ``w+ > 0`` and ``w- > 0`` and the kept pairs keep their weights. The
  Metrix losses (:mod:`embedlab.losses.mixup`) use the same per-anchor form against mixed points.

  Outside the sphere ``S = -d``: pytorch-metric-learning with a distance (e.g. ``LpDistance``)
  writes the exponents as ``alpha (d - base')`` and ``beta (base' - d)``, which is this loss
  with ``base = -base'``.

  Averaging: ``"mean"`` is eq. 7's ``1/m`` over all ``B`` anchors (anchors without pairs add
  0, as in pytorch-metric-learning's ``MeanReducer``); ``"none"``: ``[B]``.

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer class labels.
    manifold: the geometry; default the sphere (cosine similarity, as in the paper).
    c: curvature magnitude.
    alpha: positive scale (paper 2).
    beta: negative scale (paper 50).
    base: the similarity margin lambda (paper 0.5 on the sphere).
    mining_epsilon: the mining margin epsilon (paper 0.1), or ``None`` for no mining.
    label_weights: optional ``[B, B]`` soft positive weights in ``[0, 1]``.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

  Returns:
    A scalar, or ``[B]`` for ``reduction="none"``; NaN if any embedding is non-finite.
  """
  _batch.check_batch(embeddings, labels, reduction)
  batch = labels.shape[0]
  if label_weights is not None and label_weights.shape != (batch, batch):
    raise ValueError(f"label_weights must be [B, B] = {(batch, batch)}; got shape "
                     f"{label_weights.shape}")
  embeddings, finite = _batch.sanitize(embeddings, manifold, c)
  sim = manifold.pairwise_similarity(embeddings, embeddings, c=c)
  if label_weights is None:
    positive, negative = pair_masks(labels)
    pos_weight, neg_weight = positive.astype(sim.dtype), negative.astype(sim.dtype)
  else:
    off_diagonal = ~jnp.eye(batch, dtype=bool)
    label_weights = label_weights.astype(sim.dtype)
    pos_weight = jnp.where(off_diagonal, label_weights, 0.0)
    neg_weight = jnp.where(off_diagonal, 1.0 - label_weights, 0.0)
  if mining_epsilon is not None:
    kept_pos, kept_neg = _multi_similarity_mine(sim, pos_weight > 0, neg_weight > 0,
                                                mining_epsilon)
    pos_weight = jnp.where(kept_pos, pos_weight, 0.0)
    neg_weight = jnp.where(kept_neg, neg_weight, 0.0)
  per_anchor = _multi_similarity_terms(sim, pos_weight, neg_weight, alpha=alpha, beta=beta,
                                       base=base)
  return _batch.nan_if(finite, _batch.masked_reduce(per_anchor, batch, reduction))


def centroid_triplet_loss(embeddings, labels, *, num_classes: int,
                          manifold: Manifold = euclidean.MANIFOLD, c=1.0, margin=0.1,
                          reduction: str = "mean"):
  """Centroid triplet loss: anchors against class centroids (Wieczorek et al., ICONIP 2021).

  Wieczorek, Rychalska & Dąbrowski, "On the Unreasonable Effectiveness of Centroids in Image
  Retrieval", ICONIP 2021, Sec. 3 (the centroid triplet loss, CTL): the triplet loss with the
  positive and negative replaced by class centroids. Per anchor ``a`` of class ``y_a``::

      L_a = relu(d(a, c_pos(a)) - min_{k != y_a, k in batch} d(a, c_k) + margin)

  * ``c_pos(a)``: the midpoint of the *other* samples of ``y_a`` (leave-one-out, so the anchor
    does not pull its own positive towards itself), ``manifold.weighted_midpoint`` with the
    ``[B, B]`` weights ``labels[i] == labels[j], i != j``.
  * ``c_k``: the midpoint of every sample of class ``k`` present in the batch
    (:func:`_batch.class_centroids`); the negative is the *closest* other-class centroid (the
    hardest; the paper does not specify how the negative class is picked).
  * Midpoints are the geometry's own (``manifold.weighted_midpoint``): the mean in Euclidean
    space, the renormalised mean on the sphere, the Einstein midpoint in the Poincaré ball (the
    normalised sum on the hyperboloid); a geometry without one gets the generic default.
  * ``d`` is the (non-squared) geodesic distance, as in :func:`triplet_loss`; the paper uses
    squared Euclidean distances and builds centroids from a support split of each class in the
    batch rather than leave-one-out. pytorch-metric-learning 2.9 has no centroid triplet loss
    (its older ``CentroidTripletLoss`` was removed), so there is no reference to match.

  Anchors whose class has a single sample in the batch (no positive centroid) or with no other
  class in the batch are masked out: zero in ``"none"``, left out of ``"mean"`` (0 if none is
  valid). Labels must lie in ``[0, num_classes)``; a label outside counts as no class (never a
  negative centroid) and its anchors are masked out.

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer class labels in ``[0, num_classes)``.
    num_classes: number of classes ``C`` (static: fixes the centroid table's shape).
    manifold: the geometry; default Euclidean.
    c: curvature magnitude.
    margin: the triplet margin.
    reduction: ``"mean"`` (default, over valid anchors), ``"sum"`` or ``"none"`` (``[B]``).

  Returns:
    A scalar, or ``[B]`` for ``reduction="none"``; NaN if any embedding is non-finite.
  """
  _batch.check_batch(embeddings, labels, reduction)
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1; got {num_classes}")
  embeddings, finite = _batch.sanitize(embeddings, manifold, c)
  positive, _ = pair_masks(labels)
  pos_centroid = manifold.weighted_midpoint(embeddings, positive, c=c)
  d_pos = manifold.dist(embeddings, pos_centroid, c=c)
  centroids, counts = _batch.class_centroids(embeddings, labels, num_classes=num_classes,
                                             manifold=manifold, c=c)
  d_cent = manifold.pairwise_dist(embeddings, centroids, c=c)
  classes = jnp.arange(num_classes)
  other = (counts > 0)[None, :] & (labels[:, None] != classes[None, :])
  in_range = (labels >= 0) & (labels < num_classes)
  valid = jnp.any(positive, axis=1) & jnp.any(other, axis=1) & in_range
  # A finite fill that never undercuts a real centroid (no inf arithmetic in the gradient).
  fill = jax.lax.stop_gradient(jnp.max(d_cent, axis=1, keepdims=True))
  d_neg = jnp.min(jnp.where(other, d_cent, fill), axis=1)
  per_anchor = jnp.where(valid, jnp.maximum(d_pos - d_neg + margin, 0.0), 0.0)
  return _batch.nan_if(finite, _batch.masked_reduce(per_anchor, jnp.sum(valid), reduction))


def snr_regularizer(embeddings, *, weight=1.0, reduction: str = "mean"):
  """Zero-mean regulariser of the SNR loss: ``weight * mean_i |sum_m h_im|``.

  Yuan, Chen, Wang, Yu & Sun, "Signal-to-Noise Ratio: A Robust Distance Metric for Deep Metric
  Learning", CVPR 2019, Sec. 3 (the regularised SNR loss): the SNR distance assumes zero-mean
  features (its noise model), so the loss adds
  ``lambda (1/N) sum_i |sum_m h_im|`` (``h_i`` the ``i``-th embedding, ``m`` its entries); with
  :func:`contrastive_loss` / :func:`triplet_loss` at ``distance="snr"``. pytorch-metric-learning's
  ``ZeroMeanRegularizer`` (``embedding_reg_weight = weight``) computes the same.

  Args:
    embeddings: ``[B, D]`` Euclidean features.
    weight: the regularisation strength lambda.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``[B]``, already weighted).

  Returns:
    A scalar or ``[B]``; NaN if any embedding is non-finite (zero gradient).
  """
  _batch.check_reduction(reduction)
  if embeddings.ndim != 2:
    raise ValueError(f"embeddings must be [B, D]; got shape {embeddings.shape}")
  embeddings, finite = _batch.sanitize(embeddings, euclidean.MANIFOLD, 0.0)
  per_row = weight * jnp.abs(jnp.sum(embeddings, axis=1))
  return _batch.nan_if(finite, _batch.masked_reduce(per_row, embeddings.shape[0], reduction))
