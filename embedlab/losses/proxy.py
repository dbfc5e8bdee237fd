"""Losses with learnable class proxies / class weight vectors, for any geometry.

Every loss here scores a batch ``embeddings [B, D]`` with integer ``labels [B]`` against one
learnable vector per class, ``proxies [C, D]`` (ProxyNCA, Proxy Anchor) or ``weights [C, D]``
(CosFace, ArcFace: the rows of the last linear layer). The trainer owns and learns them; here
they are an input like the embeddings, and gradients flow to both.

Class vectors. ``[C, D]``, one row per class (pytorch-metric-learning stores CosFace/ArcFace's
``W`` as ``[D, C]``: pass its transpose).

* Sphere (any ``radial`` geometry, whose points are the directions of ambient vectors): raw
  vectors are accepted and **normalised inside** (``manifold.proj``, the radial projection to
  radius ``1/sqrt(c)``), as PML's ``CosineSimilarity`` does, so they can be learned as plain
  Euclidean parameters; points already on the sphere are unchanged. The *embeddings* must be
  points of the sphere (project raw features with ``sphere.proj`` first, as every embedlab loss
  expects).
* Euclidean: any vectors. Poincaré ball / Lorentz (every other geometry): the proxies must lie
  on the manifold (the trainer produces them with ``expmap`` at the origin); they are used as
  given, not projected.

Similarity: the geometry's ``manifold.pairwise_similarity``. On the sphere the similarity of an
embedding and a class vector is the cosine ``s = c <x, p>`` (PML's setting); by default it is
``s = -d(x, p)``, the negative geodesic distance. ProxyNCA is a softmax over *squared*
distances: a radial geometry's is the squared chord of the unit sphere ``2 (1 - s)`` (PML
normalises and uses squared L2), elsewhere ``d^2``. ArcFace puts its margin on the angle
``arccos(s)`` of a radial geometry, on ``d`` elsewhere.

Shared conventions:

* Labels outside ``[0, C)`` cannot raise inside ``jit`` (they are data): they make the result
  NaN, exactly like non-finite input, so a bad label is never silently masked away.
* Non-finite ``embeddings``, class vectors (or ``label_weights``): the result is NaN (every
  entry for ``reduction="none"``) and the gradient is zero, not NaN (``_batch.sanitize``).
* Shapes are checked eagerly (``ValueError``), so the same errors are raised under ``jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embedlab.geometry import _numerics as nm
from embedlab.geometry import sphere
from embedlab.geometry.base import Manifold
from embedlab.losses import _batch


def _check_class_vectors(embeddings, labels, vectors, reduction: str, what: str):
  _batch.check_batch(embeddings, labels, reduction)
  if vectors.ndim != 2:
    raise ValueError(f"{what} must be [C, D]; got shape {vectors.shape}")
  if vectors.shape[0] < 1:
    raise ValueError(f"{what} must hold at least one class; got shape {vectors.shape}")
  if vectors.shape[1] != embeddings.shape[1]:
    raise ValueError(f"{what} must be [C, D] with the embeddings' D = {embeddings.shape[1]}; "
                     f"got shape {vectors.shape}")


def _prepare(embeddings, labels, vectors, manifold: Manifold, c):
  """``(embeddings, vectors, one_hot [B, C], finite, labels_in_range)``, inputs sanitised."""
  num_classes = vectors.shape[0]
  embeddings, finite_e = _batch.sanitize(embeddings, manifold, c)
  vectors, finite_v = _batch.sanitize(vectors, manifold, c)
  if manifold.radial:  # Raw vectors stand for their directions: the points they project to.
    vectors = manifold.proj(vectors, c=c)
  in_range = jnp.all((labels >= 0) & (labels < num_classes))
  one_hot = labels[:, None] == jnp.arange(num_classes)[None, :]
  return embeddings, vectors, one_hot, finite_e & finite_v, in_range


def _similarity(embeddings, vectors, manifold: Manifold, c):
  return manifold.pairwise_similarity(embeddings, vectors, c=c)


def proxy_nca_loss(embeddings, labels, proxies, *, manifold: Manifold = sphere.MANIFOLD, c=1.0,
                   softmax_scale=1.0, reduction: str = "mean"):
  """ProxyNCA: softmax over negative squared distances to one proxy per class.

  Movshovitz-Attias, Toshev, Leung, Ioffe & Singh, "No Fuss Distance Metric Learning using
  Proxies", ICCV 2017, Sec. 4: their NCA loss with the data points replaced by proxies, here
  with the normaliser over *all* proxies (as PML's ``ProxyNCALoss`` and most
  reimplementations; the paper's sums over the negative proxies only)::

      L_b = -log( exp(-s D(x_b, p_{y_b})) / sum_k exp(-s D(x_b, p_k)) )

  with ``s = softmax_scale`` and ``D`` the squared distance: ``2 (1 - cos)`` on the sphere and
  any ``radial`` geometry (the squared L2 distance of unit vectors, PML's default
  ``LpDistance(power=2)`` after its normalisation), ``d(x, p)^2`` (geodesic) elsewhere.

  PML drops examples whose probability underflows to exactly 0; here ``log_softmax`` is used,
  so no example is dropped (they only differ when PML's value would be huge).

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer labels in ``[0, C)``.
    proxies: ``[C, D]`` one proxy per class (normalised inside on the sphere; points of the
      manifold otherwise, see the module docstring).
    manifold: the geometry; default the sphere (PML's setting).
    c: curvature magnitude.
    softmax_scale: the inverse temperature ``s``.
    reduction: ``"mean"`` (over the ``B`` examples, default), ``"sum"`` or ``"none"`` (``[B]``).

  Returns:
    A scalar, or ``[B]`` for ``reduction="none"``; NaN if an input is non-finite or a label is
    outside ``[0, C)``.
  """
  _check_class_vectors(embeddings, labels, proxies, reduction, "proxies")
  embeddings, proxies, one_hot, finite, in_range = _prepare(
      embeddings, labels, proxies, manifold, c)
  if manifold.radial:  # s = cos(angle): the squared chord of the unit sphere.
    squared = 2.0 * (1.0 - _similarity(embeddings, proxies, manifold, c))
  else:
    squared = jnp.square(_batch.pairwise_distance(embeddings, proxies, manifold=manifold, c=c))
  per_example = _batch.cross_entropy(-softmax_scale * squared, one_hot)
  loss = _batch.masked_reduce(per_example, labels.shape[0], reduction)
  return _batch.nan_if(finite & in_range, loss)


def _log1p_weighted_sum_exp(z, weights):
  """``log(1 + sum_b w_bk exp(z_bk))`` over the batch axis, ``[B, C] -> [C]``, stably.

  Entries with ``w = 0`` take no part (not even in the max shift), so they cannot overflow.
  """
  masked = jnp.where(weights > 0, z, -jnp.inf)
  shift = jax.lax.stop_gradient(jnp.maximum(jnp.max(masked, axis=0), 0.0))
  total = jnp.exp(-shift) + jnp.sum(weights * jnp.exp(masked - shift), axis=0)
  return shift + jnp.log(total)


def proxy_anchor_loss(embeddings, labels, proxies, *, manifold: Manifold = sphere.MANIFOLD,
                      c=1.0, margin=0.1, alpha=32.0, label_weights=None,
                      reduction: str = "mean"):
  """Proxy Anchor: each proxy is an anchor pulling its batch positives and pushing negatives.

  Kim, Kim, Cho & Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020, eq. (4),
  with similarity ``s(x, p)`` (cosine on the sphere, ``-d`` elsewhere)::

      L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X+_p} exp(-alpha (s(x, p) - margin)))
        + 1/|P|  sum_{p in P}  log(1 + sum_{x in X-_p} exp( alpha (s(x, p) + margin)))

  ``P`` is all ``C`` proxies, ``P+`` those with a positive in the batch, ``X+_p`` / ``X-_p``
  the batch embeddings of / not of ``p``'s class. Equal to PML's ``ProxyAnchorLoss`` (its
  ``DivisorReducer``: the two sums divided by ``|P+|`` and ``C``).

  Soft targets (``label_weights``, Venkataramanan, Psomas, Kijak, Amsaleg, Karantzalos &
  Avrithis, "It Takes Two to Tango: Mixup for Deep Metric Learning", ICLR 2022, the Proxy Anchor
  form of the Metrix loss): with ``w [B, C]`` in ``[0, 1]`` the sets become weights::

      pos_k = log(1 + sum_b w_bk       exp(-alpha (s_bk - margin)))
      neg_k = log(1 + sum_b (1 - w_bk) exp( alpha (s_bk + margin)))
      L = sum_k pos_k / |{k : sum_b w_bk > 0}| + sum_k neg_k / C

  so a mixed example ``lam * x_1 + (1 - lam) * x_2`` gets ``w = lam`` at class ``y_1``,
  ``1 - lam`` at ``y_2`` and 0 elsewhere (negative weight ``1 - w``: ``1 - lam`` at ``y_1``,
  ``lam`` at ``y_2``, 1 elsewhere). ``label_weights = one_hot(labels, C)`` is exactly the hard
  loss above; rows need not sum to 1. When ``label_weights`` is given, ``labels`` is only
  shape-checked (its values are not used). Weights outside ``[0, 1]`` or non-finite give NaN.

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer labels in ``[0, C)``.
    proxies: ``[C, D]`` one proxy per class (normalised inside on the sphere; points of the
      manifold otherwise, see the module docstring).
    manifold: the geometry; default the sphere (the paper's and PML's setting).
    c: curvature magnitude.
    margin: the margin ``delta``.
    alpha: the scale ``alpha``.
    label_weights: optional ``[B, C]`` soft targets in ``[0, 1]``; ``None`` means
      ``one_hot(labels, C)``.
    reduction: ``"mean"`` (the normalisation above, default), ``"sum"`` (of ``"none"``) or
      ``"none"``: the ``[C]`` per-proxy terms ``pos_k + neg_k``, unnormalised (so ``"mean"`` is
      *not* their mean).

  Returns:
    A scalar, or ``[C]`` for ``reduction="none"`` (when no proxy has a positive, only the
    negative term remains); NaN if an input is non-finite, a weight is outside ``[0, 1]`` or
    (without ``label_weights``) a label is outside ``[0, C)``.
  """
  _check_class_vectors(embeddings, labels, proxies, reduction, "proxies")
  num_classes = proxies.shape[0]
  if label_weights is not None:
    label_weights = jnp.asarray(label_weights)
  if label_weights is not None and label_weights.shape != (labels.shape[0], num_classes):
    raise ValueError(f"label_weights must be [B, C] = {(labels.shape[0], num_classes)}; got "
                     f"shape {label_weights.shape}")
  embeddings, proxies, one_hot, finite, in_range = _prepare(
      embeddings, labels, proxies, manifold, c)
  if label_weights is None:
    weights, ok = one_hot.astype(embeddings.dtype), finite & in_range
  else:
    weights = label_weights.astype(embeddings.dtype)
    weights_ok = jnp.all(jnp.isfinite(weights) & (weights >= 0) & (weights <= 1))
    # Zero weights stand in for bad ones so that no NaN reaches the backward pass.
    weights, ok = jnp.where(weights_ok, weights, 0.0), finite & weights_ok
  s = _similarity(embeddings, proxies, manifold, c)
  pos = _log1p_weighted_sum_exp(-alpha * (s - margin), weights)
  neg = _log1p_weighted_sum_exp(alpha * (s + margin), 1.0 - weights)
  if reduction == "none":
    loss = pos + neg
  elif reduction == "sum":
    loss = jnp.sum(pos + neg)
  else:
    with_positive = jnp.sum(jnp.sum(weights, axis=0) > 0)
    loss = (jnp.sum(pos) / jnp.maximum(with_positive, 1).astype(pos.dtype)
            + jnp.sum(neg) / num_classes)
  return _batch.nan_if(ok, loss)


def _margin_softmax(embeddings, labels, weights, manifold, c, scale, reduction, target_logit):
  """Cross-entropy of ``scale * s`` with the true class's ``s`` replaced by ``target_logit``."""
  _check_class_vectors(embeddings, labels, weights, reduction, "weights")
  embeddings, weights, one_hot, finite, in_range = _prepare(
      embeddings, labels, weights, manifold, c)
  s = _similarity(embeddings, weights, manifold, c)
  logits = scale * jnp.where(one_hot, target_logit(s), s)
  per_example = _batch.cross_entropy(logits, one_hot)
  loss = _batch.masked_reduce(per_example, labels.shape[0], reduction)
  return _batch.nan_if(finite & in_range, loss)


def cosface_loss(embeddings, labels, weights, *, manifold: Manifold = sphere.MANIFOLD, c=1.0,
                 margin=0.35, scale=64.0, reduction: str = "mean"):
  """CosFace (large margin cosine loss): an additive margin on the true class's similarity.

  Wang, Wang, Zhou, Ji, Gong, Zhou, Li & Liu, "CosFace: Large Margin Cosine Loss for Deep Face
  Recognition", CVPR 2018, eq. (4)::

      L_b = -log( exp(s_m (S_{b y_b} - m)) / (exp(s_m (S_{b y_b} - m))
                                               + sum_{k != y_b} exp(s_m S_bk)) )

  with ``s_m = scale``, ``m = margin`` and ``S`` the similarity to the class vectors: the
  cosine on the sphere (PML's ``CosFaceLoss``), ``-d`` elsewhere, where the true logit is
  ``-scale (d + m)``: the margin asks for the true class to be ``m`` closer than the others.

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer labels in ``[0, C)``.
    weights: ``[C, D]`` one class vector per row (PML's ``W`` is ``[D, C]``: pass ``W.T``);
      normalised inside on the sphere, points of the manifold otherwise.
    manifold: the geometry; default the sphere.
    c: curvature magnitude.
    margin: the additive cosine margin ``m``.
    scale: the logit scale ``s``.
    reduction: ``"mean"`` (over the ``B`` examples, default), ``"sum"`` or ``"none"`` (``[B]``).

  Returns:
    A scalar, or ``[B]`` for ``reduction="none"``; NaN if an input is non-finite or a label is
    outside ``[0, C)``.
  """
  return _margin_softmax(embeddings, labels, weights, manifold, c, scale, reduction,
                         lambda s: s - margin)


def arcface_loss(embeddings, labels, weights, *, manifold: Manifold = sphere.MANIFOLD, c=1.0,
                 margin=0.5, scale=64.0, reduction: str = "mean"):
  """ArcFace: an additive margin on the geodesic distance (angle) to the true class.

  Deng, Guo, Xue & Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
  Recognition", CVPR 2019, eq. (3). On the sphere, with ``theta`` the angle between an
  embedding and its class vector (``arccos`` of the cosine; the geodesic distance of the unit
  sphere) and ``m = margin`` in **radians** (PML's ``ArcFaceLoss`` takes degrees, default
  ``28.6`` = ``0.4992`` rad)::

      logit_true = scale * cos(theta + m)            if theta <= pi - m
                 = scale * (cos(theta) - m sin(m))   otherwise
      logit_k    = scale * cos(theta_k)              (k != y_b)

  The second line is the insightface / PML convention for ``theta + m > pi``, where
  ``cos(theta + m)`` would start to *increase* with ``theta``: it keeps the logit monotonically
  decreasing in ``theta``. ``cos(theta + m)`` is computed as ``cos theta cos m - sin theta
  sin m`` (no ``arccos``; a zero-gradient square root at ``theta = 0, pi``), so ``0 <= m < pi``
  is assumed.

  The same holds in any ``radial`` geometry (its similarity is the cosine). Elsewhere the
  margin is added to the geodesic distance before it is mapped to the similarity ``-d``:
  ``logit_true = -scale (d + m)``, the same as :func:`cosface_loss` there (the two only differ
  where the similarity is ``cos`` of the distance).

  Args:
    embeddings, labels, weights, manifold, c, scale, reduction: as in :func:`cosface_loss`.
    margin: the additive angular (geodesic) margin ``m``, in radians.

  Returns:
    As :func:`cosface_loss`: a scalar, or ``[B]`` for ``reduction="none"``.
  """
  if not manifold.radial:
    target = lambda s: s - margin  # s = -d, so this is -(d + m).
  else:
    def target(cos):
      cos = jnp.clip(cos, -1.0, 1.0)
      sin = nm.safe_sqrt(1.0 - cos * cos)
      cos_m, sin_m = jnp.cos(margin), jnp.sin(margin)
      # theta <= pi - m  <=>  cos(theta) >= cos(pi - m) = -cos(m).
      return jnp.where(cos >= -cos_m, cos * cos_m - sin * sin_m, cos - margin * sin_m)
  return _margin_softmax(embeddings, labels, weights, manifold, c, scale, reduction, target)
