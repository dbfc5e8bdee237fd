"""Softmax (contrastive-family) losses: NT-Xent, SupCon, InfoNCE, N-pair, prototypical.

Every loss here is a cross-entropy over similarity logits ``s / temperature`` (or over negative
distances), computed for the whole batch with one matmul-form ``pairwise_dist`` / inner product
and reduced with fixed-shape masks, so each compiles once per batch shape under ``jit``.

Similarity: the geometry's own ``manifold.pairwise_similarity``: on the sphere the cosine
``c <x, y>`` (what pytorch-metric-learning's ``CosineSimilarity`` computes on unit vectors), by
default the negative geodesic distance ``-d(x, y)``. :func:`npair_loss` differs in a
``vector_space`` geometry (Euclidean space: the inner product, as in Sohn 2016) and
:func:`prototypical_loss` uses ``-d^2`` or ``-d`` (Snell et al. 2017); both say so in their
docstrings.

Conventions shared by all losses here:

* Log-sum-exps are masked and shifted by the (gradient-stopped) masked maximum, so large
  ``|s| / temperature`` (e.g. ``-d / 0.05`` for far-apart hyperbolic points) neither overflows
  nor leaks NaN into the gradient of masked-out entries.
* Units without a positive (an anchor alone in its class, a query whose class has no support)
  contribute ``0`` and are left out of ``"mean"``; if no unit is valid the loss is ``0`` with
  zero gradient (a jitted step cannot raise on data).
* Non-finite input: if any entry of an input array is NaN or infinite the result is NaN
  (every entry, for ``reduction="none"``) and the gradient is zero (the policy of
  :func:`embedlab.losses._batch.sanitize` / :func:`embedlab.losses._batch.nan_if`).
* Inputs must lie on ``manifold`` (nothing is projected or normalised here; on the sphere that
  means rows of norm ``1 / sqrt(c)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from embedlab.geometry import euclidean, sphere
from embedlab.geometry.base import Manifold
from embedlab.losses import _batch


def _check_temperature(temperature):
  if isinstance(temperature, (int, float)) and temperature <= 0:
    raise ValueError(f"temperature must be positive; got {temperature}")


def _labelled_logits(embeddings, labels, manifold: Manifold, c, temperature, reduction: str):
  """Checks a labelled batch; ``(similarity / temperature [B, B], all_finite)``."""
  _batch.check_batch(embeddings, labels, reduction)
  _check_temperature(temperature)
  embeddings, finite = _batch.sanitize(embeddings, manifold, c)
  logits = manifold.pairwise_similarity(embeddings, embeddings, c=c)
  return logits / temperature, finite


def _check_pairs(queries, keys, reduction: str, names=("queries", "keys")):
  """Eager checks of two row-aligned ``[B, D]`` arrays."""
  _batch.check_reduction(reduction)
  for name, array in zip(names, (queries, keys)):
    if array.ndim != 2:
      raise ValueError(f"{name} must be [B, D]; got shape {array.shape}")
  if queries.shape != keys.shape:
    raise ValueError(f"{names[0]} and {names[1]} must have the same shape; got {queries.shape} "
                     f"and {keys.shape}")


def _sanitize_pair(x, y, manifold: Manifold, c):
  x, x_finite = _batch.sanitize(x, manifold, c)
  y, y_finite = _batch.sanitize(y, manifold, c)
  return x, y, x_finite & y_finite


def ntxent_loss(embeddings, labels, *, manifold: Manifold = sphere.MANIFOLD, c=1.0,
                temperature=0.1, reduction: str = "mean"):
  """NT-Xent (normalised temperature-scaled cross-entropy) over the labelled pairs of a batch.

  For each positive pair ``(a, p)`` (``labels[a] == labels[p]``, ``a != p``), with similarity
  ``s`` and ``N(a)`` the points of other labels::

      L_ap = -log( exp(s_ap / t) / (exp(s_ap / t) + sum_{n in N(a)} exp(s_an / t)) )

  Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of Visual
  Representations", ICML 2020, eq. (1), in the labelled form of pytorch-metric-learning's
  ``NTXentLoss``: other positives of ``a`` are *not* in the denominator (each positive pair
  competes only against the negatives). With two views per label this is SimCLR's loss.

  Agrees with ``NTXentLoss(temperature=t)`` (cosine similarity, default ``MeanReducer``) on unit
  vectors with ``manifold=sphere.MANIFOLD, c=1``; PML's default temperature is 0.07, this
  function's 0.1. ``"mean"`` averages over all positive pairs (those whose anchor has no
  negative included: their loss is exactly 0, as in PML).

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer class labels.
    manifold: the geometry; default the sphere (cosine similarity).
    c: curvature magnitude.
    temperature: the temperature ``t > 0``.
    reduction: ``"mean"`` (over positive pairs, default), ``"sum"`` or ``"none"`` (``[B, B]``
      indexed ``[a, p]``, zero off the positive pairs).

  Returns:
    A scalar, or ``[B, B]``; ``0`` if the batch has no positive pair; NaN if any embedding is
    non-finite.
  """
  logits, finite = _labelled_logits(embeddings, labels, manifold, c, temperature, reduction)
  positive, negative = _batch.pair_masks(labels)
  negatives_lse, has_negative = _batch.masked_logsumexp(logits, negative)
  # -log(e^l / (e^l + e^N)) = softplus(N - l); without negatives the loss is exactly 0.
  per_pair = jax.nn.softplus(negatives_lse[:, None] - logits)
  per_pair = jnp.where(positive & has_negative[:, None], per_pair, 0.0)
  loss = _batch.masked_reduce(per_pair, jnp.sum(positive), reduction)
  return _batch.nan_if(finite, loss)


def supcon_loss(embeddings, labels, *, manifold: Manifold = sphere.MANIFOLD, c=1.0,
                temperature=0.1, reduction: str = "mean"):
  """Supervised contrastive loss ``L^sup_out`` over a labelled batch.

  For each anchor ``i`` with positives ``P(i)`` (same label, ``p != i``) and ``A(i)`` every
  other point of the batch::

      L_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / t) / sum_{a in A(i)} exp(s_ia / t) )

  Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu & Krishnan, "Supervised
  Contrastive Learning", NeurIPS 2020, eq. (2).

  Agrees with pytorch-metric-learning's ``SupConLoss(temperature=t)`` (cosine similarity,
  ``AvgNonZeroReducer``) on unit vectors with ``manifold=sphere.MANIFOLD, c=1`` whenever the
  batch has at least two labels. ``"mean"`` averages over the anchors that have a positive
  (PML: over anchors with a non-zero loss, the same set once a negative exists). A batch of a
  single label gives the value of eq. (2) here (``log |P(i)|`` at equal similarities) but 0 in
  PML.

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer class labels.
    manifold: the geometry; default the sphere (cosine similarity).
    c: curvature magnitude.
    temperature: the temperature ``t > 0``.
    reduction: ``"mean"`` (over anchors with a positive, default), ``"sum"`` or ``"none"``
      (``[B]``, zero for anchors without a positive).

  Returns:
    A scalar, or ``[B]``; ``0`` if no anchor has a positive; NaN if any embedding is non-finite.
  """
  logits, finite = _labelled_logits(embeddings, labels, manifold, c, temperature, reduction)
  positive, _ = _batch.pair_masks(labels)
  others = ~jnp.eye(labels.shape[0], dtype=bool)
  lse, _ = _batch.masked_logsumexp(logits, others)
  num_positives = jnp.sum(positive, axis=1)
  log_prob_sum = jnp.sum(jnp.where(positive, logits - lse[:, None], 0.0), axis=1)
  valid = num_positives > 0
  per_anchor = jnp.where(valid, -log_prob_sum / jnp.maximum(num_positives, 1), 0.0)
  loss = _batch.masked_reduce(per_anchor, jnp.sum(valid), reduction)
  return _batch.nan_if(finite, loss)


def infonce_loss(queries, keys, *, manifold: Manifold = sphere.MANIFOLD, c=1.0, temperature=0.1,
                 symmetric: bool = False, reduction: str = "mean"):
  """InfoNCE over paired views: row ``i``'s positive is ``keys[i]``, every other key a negative.

  With similarity ``s`` and ``B`` pairs::

      L_i = -log( exp(s(q_i, k_i) / t) / sum_j exp(s(q_i, k_j) / t) )

  van den Oord, Li & Vinyals, "Representation Learning with Contrastive Predictive Coding",
  arXiv:1807.03748, 2018, eq. (4), with the other rows of the batch as the negative samples.
  ``symmetric=True`` averages it with the keys-to-queries direction, ``(L_i + L'_i) / 2`` where
  ``L'_i`` is the same with ``q`` and ``k`` swapped (the loss of CLIP: Radford et al.,
  "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021).
  Unlike :func:`ntxent_loss`, queries are never compared with other queries.

  Args:
    queries: ``[B, D]`` points on ``manifold``.
    keys: ``[B, D]`` points on ``manifold``; ``keys[i]`` is the positive of ``queries[i]``.
    manifold: the geometry; default the sphere (cosine similarity).
    c: curvature magnitude.
    temperature: the temperature ``t > 0``.
    symmetric: also the keys-to-queries direction, averaged per row.
    reduction: ``"mean"`` (over rows, default), ``"sum"`` or ``"none"`` (``[B]``).

  Returns:
    A scalar, or ``[B]``; NaN if any entry of ``queries`` or ``keys`` is non-finite.
  """
  _check_pairs(queries, keys, reduction)
  _check_temperature(temperature)
  queries, keys, finite = _sanitize_pair(queries, keys, manifold, c)
  logits = manifold.pairwise_similarity(queries, keys, c=c) / temperature
  eye = jnp.eye(logits.shape[0], dtype=bool)
  per_row = _batch.cross_entropy(logits, eye, True)
  if symmetric:
    per_row = 0.5 * (per_row + _batch.cross_entropy(logits.T, eye, True))
  loss = _batch.masked_reduce(per_row, queries.shape[0], reduction)
  return _batch.nan_if(finite, loss)


def _is_zero(value) -> bool:
  return isinstance(value, (int, float)) and value == 0


def npair_loss(anchors, positives, *, manifold: Manifold = euclidean.MANIFOLD, c=1.0,
               l2_weight=0.0, reduction: str = "mean"):
  """Multi-class N-pair loss: ``B`` (anchor, positive) pairs of ``B`` distinct classes.

  With ``f_i = anchors[i]``, ``f_i+ = positives[i]`` and similarity ``s``::

      L_i = log(1 + sum_{j != i} exp(s(f_i, f_j+) - s(f_i, f_i+)))
          = -log softmax_j(s(f_i, f_j+))[i]
            + l2_weight / 4 * (|f_i|^2 + |f_i+|^2)

  Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective", NeurIPS 2016:
  the (N+1)-tuplet loss of eq. (3) in its softmax form, with the other pairs' positives as the
  negatives (the multi-class N-pair loss, N-pair-mc). Similarity per geometry:
  a ``vector_space`` one (Euclidean space): the inner product ``<f_i, f_j+>`` (Sohn's choice;
  *not* the ``-d`` of the other losses here); any other: ``manifold.pairwise_similarity``
  (sphere: the cosine ``c <x, y>``, the inner product of unit vectors; Poincaré / Lorentz:
  ``-d(x, y)``). No temperature: Sohn controls the scale with the norms.

  ``l2_weight`` is Sohn's L2 penalty on the embedding norms, with the scaling of
  TensorFlow's ``npairs_loss`` (``reg_lambda / 4`` times the mean squared norms of anchors
  plus positives); ``vector_space`` geometries only, since on the sphere the norm is constant
  and in hyperbolic space it is not the geometry's size. Rows must be pairs of distinct
  classes: a repeated class would count its own positive as a negative (no labels are taken;
  use :func:`ntxent_loss` for labelled batches).

  Agrees with pytorch-metric-learning's ``NPairsLoss`` (mean cross-entropy) fed
  ``concat([anchors, positives])`` with labels ``concat([arange(B), arange(B)])``:
  ``NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))`` is this loss in
  Euclidean space with ``l2_weight=0``; PML's default ``NPairsLoss()`` L2-normalises first, i.e.
  this loss on the unit sphere (``manifold=sphere.MANIFOLD, c=1``, unit-norm inputs).

  Args:
    anchors: ``[B, D]`` points on ``manifold``.
    positives: ``[B, D]`` points on ``manifold``, ``positives[i]`` of ``anchors[i]``'s class.
    manifold: the geometry; default Euclidean (inner product).
    c: curvature magnitude.
    l2_weight: Sohn's ``lambda`` (``vector_space`` geometries only; must be 0 elsewhere).
    reduction: ``"mean"`` (over pairs, default), ``"sum"`` or ``"none"`` (``[B]``).

  Returns:
    A scalar, or ``[B]``; NaN if any entry of ``anchors`` or ``positives`` is non-finite.
  """
  _check_pairs(anchors, positives, reduction, names=("anchors", "positives"))
  if not manifold.vector_space and not _is_zero(l2_weight):
    raise ValueError(f"l2_weight is defined for Euclidean embeddings only (a vector_space "
                     f"geometry); got manifold {manifold.name!r} with l2_weight={l2_weight!r}")
  anchors, positives, finite = _sanitize_pair(anchors, positives, manifold, c)
  if manifold.vector_space:
    logits = anchors @ positives.T
  else:
    logits = manifold.pairwise_similarity(anchors, positives, c=c)
  per_row = _batch.cross_entropy(logits, jnp.eye(logits.shape[0], dtype=bool), True)
  if manifold.vector_space:
    squared_norms = jnp.sum(anchors * anchors, axis=1) + jnp.sum(positives * positives, axis=1)
    per_row = per_row + 0.25 * l2_weight * squared_norms
  loss = _batch.masked_reduce(per_row, anchors.shape[0], reduction)
  return _batch.nan_if(finite, loss)


def prototypical_loss(support, support_labels, queries, query_labels, *, num_classes: int,
                      manifold: Manifold = euclidean.MANIFOLD, c=1.0, squared: bool = True,
                      reduction: str = "mean"):
  """Prototypical-network loss: softmax over negative distances to the class prototypes.

  Prototypes are the class midpoints of the support set (``manifold.weighted_midpoint``:
  the mean in Euclidean space, the Einstein midpoint in the Poincaré ball as in Khrulkov,
  Mirvakhabova, Ustinova, Oseledets & Lempitsky, "Hyperbolic Image Embeddings", CVPR 2020, the
  same point on the hyperboloid, the normalised mean on the sphere). For a query ``x`` of class
  ``y``::

      p(k | x) = exp(-d(x, c_k)^2) / sum_{k' present} exp(-d(x, c_k')^2)
      L(x) = -log p(y | x)

  Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017,
  eqs. (1)-(2), with squared Euclidean distance (their choice, a Bregman divergence);
  ``squared=False`` uses ``-d`` instead (Khrulkov et al. use the plain hyperbolic distance).

  Classes absent from the support set have no prototype and are left out of every softmax.
  A query whose class is absent from the support set (or outside ``[0, num_classes)``) cannot
  be scored: it contributes ``0`` (also in ``"none"``) and is left out of ``"mean"``; this is
  data-dependent, so it is masked rather than raised (the loss must ``jit``).

  Args:
    support: ``[S, D]`` points on ``manifold``.
    support_labels: ``[S]`` integer classes in ``[0, num_classes)`` (others are ignored).
    queries: ``[Q, D]`` points on ``manifold``.
    query_labels: ``[Q]`` integer classes.
    num_classes: the static number of classes ``C`` (prototypes are ``[C, D]``).
    manifold: the geometry; default Euclidean.
    c: curvature magnitude.
    squared: logits ``-d^2`` (default, Snell et al.) or ``-d``.
    reduction: ``"mean"`` (over scorable queries, default), ``"sum"`` or ``"none"`` (``[Q]``).

  Returns:
    A scalar, or ``[Q]``; ``0`` if no query is scorable; NaN if any entry of ``support`` or
    ``queries`` is non-finite.
  """
  _batch.check_batch(support, support_labels, reduction)
  _batch.check_batch(queries, query_labels, reduction)
  if queries.shape[1] != support.shape[1]:
    raise ValueError(f"queries and support must have the same width; got {queries.shape[1]} "
                     f"and {support.shape[1]}")
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or (
      num_classes < 1):
    raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
  support, support_finite = _batch.sanitize(support, manifold, c)
  queries, query_finite = _batch.sanitize(queries, manifold, c)
  num_classes = int(num_classes)
  prototypes, counts = _batch.class_centroids(support, support_labels, num_classes=num_classes,
                                              manifold=manifold, c=c)
  d = manifold.pairwise_dist(queries, prototypes, c=c)
  logits = -jnp.square(d) if squared else -d
  present = jnp.broadcast_to(counts > 0, logits.shape)
  one_hot = query_labels[:, None] == jnp.arange(num_classes)[None, :]
  scorable = jnp.any(one_hot & present, axis=1)
  per_query = jnp.where(scorable, _batch.cross_entropy(logits, one_hot, present), 0.0)
  loss = _batch.masked_reduce(per_query, jnp.sum(scorable), reduction)
  return _batch.nan_if(support_finite & query_finite, loss)
