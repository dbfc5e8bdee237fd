"""Metrix: embedding mixup with interpolated targets for deep metric learning, in any geometry.

Venkataramanan, Psomas, Kijak, Amsaleg, Karantzalos & Avrithis, "It Takes Two to Tango: Mixup
for Deep Metric Learning", ICLR 2022 (arXiv:2106.04990). Metrix writes a metric-learning loss per
anchor ``a`` as a function of its positives ``P(a)`` (target ``y = 1``) and negatives ``N(a)``
(``y = 0``), then mixes a *positive pair* ``(a, p)`` with a *negative pair* ``(a, n)`` of the same
anchor into a *mixed pair* ``(a, u)``, ``u = mix_lam(x_p, x_n)``, whose target is the interpolated
label ``lam`` (``lam`` of "positive", ``1 - lam`` of "negative"). The mixed loss replaces the
0/1 sets by these weights; the total loss is the clean one plus ``mix_weight`` times the mixed
one (the paper's ``L + w L~``, its "mixup strength" ``w``, default 1).

This module implements the *embedding mixup* variant (mixing the output embeddings, the cheapest
of the paper's three: input / feature / embedding) with ``lam ~ Beta(alpha, alpha)``:

* Mixing: ``u = weighted_midpoint({x_p: lam, x_n: 1 - lam})`` (``manifold.weighted_midpoint``):
  the linear interpolation in Euclidean space, renormalised on the sphere, the Einstein midpoint
  in the Poincaré ball (the normalised sum on the hyperboloid), the generic default of a
  geometry without its own, so mixed points always lie on the manifold. ``lam = 1`` gives
  ``x_p``, ``lam = 0`` gives ``x_n``.
* Sampling (:func:`sample_mixes`): each of the ``M`` mixes draws an anchor uniformly among the
  anchors that have a positive and a negative in the batch, then one of its positives and one of
  its negatives uniformly. The paper mixes a fixed number of such pairs per batch; how they are
  drawn (all pairs, hardest, random) is an implementation detail it leaves open, and this uniform
  fixed-``M`` draw keeps shapes static under ``jit``.
* A mixed pair belongs to its anchor only: anchor ``b`` sees the mixed points ``u_m`` with
  ``anchor_m == b`` (the paper's ``U(a)``), as a pair with positive weight ``lam_m`` and negative
  weight ``1 - lam_m``.

Because the Metrix losses are defined from the clean losses, this module builds on
:mod:`embedlab.losses.metric` and :mod:`embedlab.losses.proxy` (the shared pair kernel lives in
``metric``; the soft-target Proxy Anchor form in ``proxy``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from embedlab.geometry import euclidean, sphere
from embedlab.geometry.base import Manifold
from embedlab.losses import _batch, metric, proxy

_REDUCTIONS = ("mean", "sum")


class Mixes(NamedTuple):
  """``M`` mixed pairs: ``u_m = mix(x[positive_m], x[negative_m])`` with weight ``lam_m``.

  Attributes:
    anchor: ``[M]`` int, the anchor the mixed pair belongs to.
    positive: ``[M]`` int, a positive of the anchor (weight ``lam`` in the mix).
    negative: ``[M]`` int, a negative of the anchor (weight ``1 - lam``).
    lam: ``[M]`` float in ``[0, 1]``, the interpolation factor = the mixed pair's target.
    valid: ``[M]`` bool; ``False`` when the batch has no anchor with both a positive and a
      negative (then ``positive = negative = anchor`` and ``lam = 1``: the "mix" is a clean copy
      of the anchor, which the pair losses ignore).
  """
  anchor: jax.Array
  positive: jax.Array
  negative: jax.Array
  lam: jax.Array
  valid: jax.Array


def _check_mixes(mixes: Mixes):
  shapes = {name: jnp.shape(getattr(mixes, name)) for name in Mixes._fields}
  if len(set(shapes.values())) != 1 or len(shapes["lam"]) != 1:
    raise ValueError(f"every field of Mixes must be [M]; got shapes {shapes}")


def sample_mixes(key, labels, *, num_mixes: int, alpha=2.0, dtype=jnp.float32) -> Mixes:
  """Draws ``num_mixes`` (anchor, positive, negative, lam) mixes of a labelled batch.

  Anchors are uniform over those with a positive and a negative; the positive and negative are
  uniform over the anchor's; ``lam ~ Beta(alpha, alpha)`` (the paper's ``alpha = 2``).
  Fixed shapes: jit-compatible. See :class:`Mixes` for a batch without any valid anchor.

  Args:
    key: a ``jax.random`` key.
    labels: ``[B]`` integer labels.
    num_mixes: ``M`` (static).
    alpha: the Beta distribution's parameter.
    dtype: float dtype of ``lam``.

  Returns:
    :class:`Mixes` of ``[M]`` arrays.
  """
  if labels.ndim != 1:
    raise ValueError(f"labels must be [B]; got shape {labels.shape}")
  if num_mixes < 1:
    raise ValueError(f"num_mixes must be >= 1; got {num_mixes}")
  positive, negative = _batch.pair_masks(labels)
  usable = jnp.any(positive, axis=1) & jnp.any(negative, axis=1)
  any_usable = jnp.any(usable)
  log = lambda mask: jnp.where(mask, 0.0, -jnp.inf)
  k_anchor, k_pos, k_neg, k_lam = jax.random.split(key, 4)
  anchor = jax.random.categorical(k_anchor, jnp.where(any_usable, log(usable), 0.0),
                                  shape=(num_mixes,))
  # Rows of an unusable anchor are all -inf; they are overwritten below, the 0 keeps them finite.
  pos_logits = jnp.where(usable[anchor, None], log(positive[anchor]), 0.0)
  neg_logits = jnp.where(usable[anchor, None], log(negative[anchor]), 0.0)
  pos = jax.random.categorical(k_pos, pos_logits, axis=-1)
  neg = jax.random.categorical(k_neg, neg_logits, axis=-1)
  lam = jax.random.beta(k_lam, alpha, alpha, (num_mixes,), dtype)
  valid = usable[anchor]
  return Mixes(anchor=anchor, positive=jnp.where(valid, pos, anchor),
               negative=jnp.where(valid, neg, anchor), lam=jnp.where(valid, lam, 1.0),
               valid=valid)


def mix_points(embeddings, mixes: Mixes, *, manifold: Manifold, c=1.0):
  """``[M, D]`` mixed points ``weighted_midpoint({x_positive: lam, x_negative: 1 - lam})``.

  On the manifold in every geometry (see the module docstring); differentiable in
  ``embeddings`` (and ``lam``).
  """
  _check_mixes(mixes)
  batch = embeddings.shape[0]
  lam = mixes.lam.astype(embeddings.dtype)[:, None]
  weights = (lam * jax.nn.one_hot(mixes.positive, batch, dtype=embeddings.dtype)
             + (1.0 - lam) * jax.nn.one_hot(mixes.negative, batch, dtype=embeddings.dtype))
  return manifold.weighted_midpoint(embeddings, weights, c=c)


def mix_embeddings(key, embeddings, labels, *, manifold: Manifold, c=1.0, num_mixes: int,
                   alpha=2.0):
  """Metrix embedding mixup: ``(mixed points [M, D], Mixes)``.

  :func:`sample_mixes` then :func:`mix_points`. The :class:`Mixes` record is the soft-target
  structure the Metrix losses take (they recompute the mixed points from ``embeddings`` so the
  gradient flows through them); :func:`mixed_class_targets` turns it into ``[M, C]`` soft labels.

  Args:
    key: a ``jax.random`` key.
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer labels.
    manifold: the geometry.
    c: curvature magnitude.
    num_mixes: ``M`` (static).
    alpha: ``lam ~ Beta(alpha, alpha)``.
  """
  _batch.check_batch(embeddings, labels, "mean")
  mixes = sample_mixes(key, labels, num_mixes=num_mixes, alpha=alpha, dtype=embeddings.dtype)
  return mix_points(embeddings, mixes, manifold=manifold, c=c), mixes


def mixed_pair_weights(mixes: Mixes, batch: int):
  """``(pairs [B, M] bool, targets [M])``: ``pairs[b, m]`` iff mix ``m`` is valid and its anchor
  is ``b``; the pair's positive weight is ``targets[m] = lam_m``, its negative weight
  ``1 - lam_m``."""
  pairs = (mixes.anchor[None, :] == jnp.arange(batch)[:, None]) & mixes.valid[None, :]
  return pairs, mixes.lam


def mixed_class_targets(labels, mixes: Mixes, num_classes: int):
  """``[M, C]`` soft labels ``lam one_hot(y_positive) + (1 - lam) one_hot(y_negative)``."""
  lam = mixes.lam[:, None]
  return (lam * jax.nn.one_hot(labels[mixes.positive], num_classes, dtype=mixes.lam.dtype)
          + (1.0 - lam) * jax.nn.one_hot(labels[mixes.negative], num_classes,
                                         dtype=mixes.lam.dtype))


def _prepare(embeddings, labels, mixes, manifold, c, reduction):
  if reduction not in _REDUCTIONS:
    raise ValueError(f"unknown reduction {reduction!r} for a Metrix loss; expected one of "
                     f"{_REDUCTIONS} (clean and mixed terms have different units)")
  _batch.check_batch(embeddings, labels, reduction)
  _check_mixes(mixes)
  clean, finite = _batch.sanitize(embeddings, manifold, c)
  mixed = mix_points(clean, mixes, manifold=manifold, c=c)
  pairs, lam = mixed_pair_weights(mixes, embeddings.shape[0])
  return clean, finite, mixed, pairs, lam.astype(embeddings.dtype)


def metrix_contrastive_loss(embeddings, labels, mixes: Mixes, *,
                            manifold: Manifold = euclidean.MANIFOLD, c=1.0, pos_margin=0.0,
                            neg_margin=1.0, mix_weight=1.0, reduction: str = "mean"):
  """Metrix contrastive loss: clean :func:`metric.contrastive_loss` + ``mix_weight`` x mixed.

  The mixed term interpolates the two error functions of the contrastive loss by the mixed
  pair's target (Metrix's contrastive form, with the squared hinges embedlab's contrastive loss
  uses; the paper writes it with cosine similarities and unsquared hinges)::

      L~ = 1/|U| sum_{(a, u) in U} [ lam_u relu(d(a, u) - pos_margin)^2
                                     + (1 - lam_u) relu(neg_margin - d(a, u))^2 ]

  over the valid mixed pairs ``U`` of ``mixes`` (:func:`mixed_pair_weights`). ``"sum"`` sums
  both terms instead of averaging (``clean sum + mix_weight * mixed sum``).

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer labels.
    mixes: the :class:`Mixes` to apply (e.g. from :func:`sample_mixes`).
    manifold, c, pos_margin, neg_margin: as in :func:`metric.contrastive_loss`.
    mix_weight: ``w``, the weight of the mixed term.
    reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    A scalar; NaN if any embedding is non-finite.
  """
  clean, finite, mixed, pairs, lam = _prepare(embeddings, labels, mixes, manifold, c, reduction)
  clean_loss = metric.contrastive_loss(clean, labels, manifold=manifold, c=c,
                                       pos_margin=pos_margin, neg_margin=neg_margin,
                                       reduction=reduction)
  d = manifold.pairwise_dist(clean, mixed, c=c)
  per_pair = (lam * jnp.square(jnp.maximum(d - pos_margin, 0.0))
              + (1.0 - lam) * jnp.square(jnp.maximum(neg_margin - d, 0.0)))
  mixed_loss = _batch.masked_reduce(jnp.where(pairs, per_pair, 0.0), jnp.sum(pairs), reduction)
  return _batch.nan_if(finite, clean_loss + mix_weight * mixed_loss)


def metrix_multi_similarity_loss(embeddings, labels, mixes: Mixes, *,
                                 manifold: Manifold = sphere.MANIFOLD, c=1.0, alpha=2.0,
                                 beta=50.0, base=0.5, mix_weight=1.0,
                                 reduction: str = "mean"):
  """Metrix multi-similarity loss: clean :func:`metric.multi_similarity_loss` + ``w`` x mixed.

  Per anchor ``a`` with mixed pairs ``U(a)`` (similarity ``S`` as in the clean loss), Metrix's
  multi-similarity form puts the interpolated targets inside the two log-sum-exps::

      L~_a = (1/alpha) log(1 + sum_{u in U(a)} lam_u       exp(-alpha (S_au - base)))
           + (1/beta)  log(1 + sum_{u in U(a)} (1 - lam_u) exp( beta (S_au - base)))

  ``"mean"`` averages ``L~_a`` over the anchors that own at least one valid mix (the paper sums
  over anchors without saying which normaliser the mixed term uses; this one keeps the mixed
  term's scale independent of ``M / B``); ``"sum"`` sums both terms. The clean term is the
  unmined loss (mean over all ``B`` anchors, eq. 7).

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer labels.
    mixes: the :class:`Mixes` to apply.
    manifold, c, alpha, beta, base: as in :func:`metric.multi_similarity_loss`.
    mix_weight: ``w``, the weight of the mixed term.
    reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    A scalar; NaN if any embedding is non-finite.
  """
  clean, finite, mixed, pairs, lam = _prepare(embeddings, labels, mixes, manifold, c, reduction)
  clean_loss = metric.multi_similarity_loss(clean, labels, manifold=manifold, c=c, alpha=alpha,
                                            beta=beta, base=base, reduction=reduction)
  sim = manifold.pairwise_similarity(clean, mixed, c=c)
  per_anchor = metric._multi_similarity_terms(  # pylint: disable=protected-access
      sim, jnp.where(pairs, lam, 0.0), jnp.where(pairs, 1.0 - lam, 0.0), alpha=alpha,
      beta=beta, base=base)
  mixed_loss = _batch.masked_reduce(per_anchor, jnp.sum(jnp.any(pairs, axis=1)), reduction)
  return _batch.nan_if(finite, clean_loss + mix_weight * mixed_loss)


def metrix_proxy_anchor_loss(embeddings, labels, proxies, mixes: Mixes, *,
                             manifold: Manifold = sphere.MANIFOLD, c=1.0, margin=0.1,
                             alpha=32.0, mix_weight=1.0, reduction: str = "mean"):
  """Metrix Proxy Anchor loss: clean :func:`proxy.proxy_anchor_loss` + ``w`` x mixed.

  The mixed term is :func:`proxy.proxy_anchor_loss` of the ``M`` mixed points with the soft
  class targets of :func:`mixed_class_targets` (``lam`` at the positive's class, ``1 - lam`` at
  the negative's), i.e. Metrix's Proxy Anchor form (written out in ``proxy_anchor_loss``'s
  docstring). Here every proxy is an anchor, so a mixed point is not tied to its sampling
  anchor. Invalid mixes (a batch without any positive-negative pair) are clean copies of their
  anchor with a hard target (see :class:`Mixes`).

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer labels in ``[0, C)``.
    proxies: ``[C, D]`` one proxy per class.
    mixes: the :class:`Mixes` to apply.
    manifold, c, margin, alpha: as in :func:`proxy.proxy_anchor_loss`.
    mix_weight: ``w``, the weight of the mixed term.
    reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    A scalar; NaN if an input is non-finite.
  """
  clean, finite, mixed, _, _ = _prepare(embeddings, labels, mixes, manifold, c, reduction)
  kwargs = dict(manifold=manifold, c=c, margin=margin, alpha=alpha, reduction=reduction)
  clean_loss = proxy.proxy_anchor_loss(clean, labels, proxies, **kwargs)
  targets = mixed_class_targets(labels, mixes, proxies.shape[0]).astype(clean.dtype)
  mixed_loss = proxy.proxy_anchor_loss(mixed, labels[mixes.anchor], proxies,
                                       label_weights=targets, **kwargs)
  return _batch.nan_if(finite, clean_loss + mix_weight * mixed_loss)
