"""The metric-learning loss registry: how a training task calls each loss of this package.

:data:`LOSSES` maps a loss name (``config.loss``) to a :class:`LossSpec`, a small adapter that
says whether the loss needs one vector per seen class (learned proxies / weights, or a fixed
basis), which geometries it supports (any, unless it needs a property of the geometry or is
written for one model), its default hyperparameters (``config.losses.<name>``),
and how to call it on a class-major batch (``P`` classes x ``K`` items, rows ``p K .. (p + 1)
K - 1`` of class ``p``). Every adapter has the signature of :attr:`LossSpec.fn`, so a task calls
any loss the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from embedlab.geometry.base import Manifold
from embedlab.losses import contrastive
from embedlab.losses import metric
from embedlab.losses import mixup
from embedlab.losses import prototypes
from embedlab.losses import proxy

@dataclasses.dataclass(frozen=True)
class LossSpec:
  """How a task calls one loss.

  Attributes:
    fn: ``fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
      **options) -> scalar``; ``labels`` are seen-class ids in ``[0, num_classes)``;
      ``key`` is the step's PRNG key (Metrix draws its mixes with it);
      ``class_points`` the ``[num_classes, D]`` learned class vectors on the manifold, or the
      fixed directions, or ``None`` (``class_params == "none"``); ``per_class`` the ``K`` of
      the class-major batch.
    defaults: the hyperparameters (``config.losses.<name>``), passed as ``**options``.
    class_params: ``"none"``, ``"learned"`` (proxies / weights, trained) or ``"fixed"``.
    geometries: the names of the only geometries it supports, for a loss written for one model
      (Busemann prototypes: the Poincaré ball's formula); ``None``: any geometry.
    requires: the :class:`~embedlab.geometry.Manifold` flags it needs (e.g. ``"vector_space"``
      for the SNR distance, defined on feature vectors), so a geometry registered later is
      supported exactly when it has them.
    fixed_basis: for ``class_params="fixed"``: ``(num_classes, dim, seed) -> [C, dim]``
      class directions, passed to the loss as they are (the prototype losses of
      :mod:`embedlab.losses.prototypes` place them on the manifold).
  """

  fn: Callable
  defaults: dict
  class_params: str = "none"
  geometries: tuple[str, ...] | None = None
  requires: tuple[str, ...] = ()
  fixed_basis: Callable | None = None

  def supports(self, manifold: Manifold) -> bool:
    """Whether the loss runs in ``manifold`` (see ``geometries`` and ``requires``)."""
    if self.geometries is not None and manifold.name not in self.geometries:
      return False
    return all(getattr(manifold, flag) for flag in self.requires)


def _plain(loss):
  """Adapter of a loss ``loss(embeddings, labels, *, manifold, c, **options)``."""
  def fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
         **options):
    del class_points, num_classes, per_class, key
    return loss(embeddings, labels, manifold=manifold, c=c, **options)
  return fn


def _with_class_points(loss):
  """Adapter of ``loss(embeddings, labels, class_points, *, manifold, c, **options)``."""
  def fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
         **options):
    del num_classes, per_class, key
    return loss(embeddings, labels, class_points, manifold=manifold, c=c, **options)
  return fn


def _busemann(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
              **options):
  del manifold, num_classes, per_class, key  # Poincaré ball only (LossSpec.geometries).
  return prototypes.busemann_prototype_loss(embeddings, labels, class_points, c=c, **options)


def _class_pairs(embeddings, per_class):
  """The first two items of each class of a class-major batch: ``([P, D], [P, D])``."""
  grouped = embeddings.reshape(-1, per_class, embeddings.shape[-1])
  return grouped[:, 0], grouped[:, 1]


def _npair(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
           **options):
  del labels, class_points, num_classes, key
  anchors, positives = _class_pairs(embeddings, per_class)
  return contrastive.npair_loss(anchors, positives, manifold=manifold, c=c, **options)


def _infonce(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
             **options):
  del labels, class_points, num_classes, key
  queries, keys = _class_pairs(embeddings, per_class)
  return contrastive.infonce_loss(queries, keys, manifold=manifold, c=c, **options)


def _prototypical(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
                  **options):
  """Support: the first ``K // 2`` items of each class of the batch; queries: the rest."""
  del class_points, key
  d = embeddings.shape[-1]
  half = per_class // 2
  grouped, grouped_labels = embeddings.reshape(-1, per_class, d), labels.reshape(-1, per_class)
  return contrastive.prototypical_loss(
      grouped[:, :half].reshape(-1, d), grouped_labels[:, :half].reshape(-1),
      grouped[:, half:].reshape(-1, d), grouped_labels[:, half:].reshape(-1),
      num_classes=num_classes, manifold=manifold, c=c, **options)


def _centroid_triplet(embeddings, labels, class_points, *, manifold, c, num_classes, per_class,
                      key, **options):
  del class_points, per_class, key
  return metric.centroid_triplet_loss(embeddings, labels, num_classes=num_classes,
                                      manifold=manifold, c=c, **options)


def _snr(loss):
  """A pair loss on the SNR distance plus the paper's zero-mean regulariser (``snr_weight``)."""
  def fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
         snr_weight, **options):
    del class_points, num_classes, per_class, key
    return (loss(embeddings, labels, manifold=manifold, c=c, distance="snr", **options)
            + metric.snr_regularizer(embeddings, weight=snr_weight))
  return fn


def _metrix(loss, *, with_class_points: bool = False):
  """Metrix (embedding mixup): ``num_mixes`` mixed pairs drawn with the step's key,
  ``lam ~ Beta(mix_alpha, mix_alpha)``."""
  def fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
         num_mixes, mix_alpha, **options):
    del num_classes, per_class
    mixes = mixup.sample_mixes(key, labels, num_mixes=num_mixes, alpha=mix_alpha)
    extra = (class_points,) if with_class_points else ()
    return loss(embeddings, labels, *extra, mixes, manifold=manifold, c=c, **options)
  return fn


def _ebv_basis(num_classes, dim, seed):
  return prototypes.equiangular_basis_vectors(num_classes, dim, seed=seed)


def _hyperspherical_basis(num_classes, dim, seed):
  return prototypes.hyperspherical_prototypes(num_classes, dim, seed=seed)


LOSSES: dict[str, LossSpec] = {
    # embedlab.losses.metric: pairs and triplets mined in the batch.
    "contrastive": LossSpec(_plain(metric.contrastive_loss),
                            {"pos_margin": 0.0, "neg_margin": 1.0, "distance": "geodesic"}),
    "triplet": LossSpec(_plain(metric.triplet_loss),
                        {"margin": 0.2, "mining": "batch_hard", "distance": "geodesic"}),
    "multi_similarity": LossSpec(_plain(metric.multi_similarity_loss),
                                 {"alpha": 2.0, "beta": 50.0, "base": 0.5,
                                  "mining_epsilon": 0.1}),
    "centroid_triplet": LossSpec(_centroid_triplet, {"margin": 0.1}),
    # The SNR distance of Yuan et al. 2019 is defined on feature vectors only.
    "contrastive_snr": LossSpec(_snr(metric.contrastive_loss),
                                {"pos_margin": 0.0, "neg_margin": 1.0, "snr_weight": 0.0},
                                requires=("vector_space",)),
    "triplet_snr": LossSpec(_snr(metric.triplet_loss),
                            {"margin": 0.2, "mining": "batch_hard", "snr_weight": 0.0},
                            requires=("vector_space",)),
    # embedlab.losses.mixup: Metrix, the clean loss plus mix_weight x the loss of mixed pairs.
    "metrix_contrastive": LossSpec(_metrix(mixup.metrix_contrastive_loss),
                                   {"pos_margin": 0.0, "neg_margin": 1.0, "mix_weight": 1.0,
                                    "num_mixes": 64, "mix_alpha": 2.0}),
    "metrix_multi_similarity": LossSpec(_metrix(mixup.metrix_multi_similarity_loss),
                                        {"alpha": 2.0, "beta": 50.0, "base": 0.5,
                                         "mix_weight": 1.0, "num_mixes": 64, "mix_alpha": 2.0}),
    "metrix_proxy_anchor": LossSpec(_metrix(mixup.metrix_proxy_anchor_loss,
                                            with_class_points=True),
                                    {"margin": 0.1, "alpha": 32.0, "mix_weight": 1.0,
                                     "num_mixes": 64, "mix_alpha": 2.0},
                                    class_params="learned"),
    # embedlab.losses.contrastive: softmax over the batch.
    "ntxent": LossSpec(_plain(contrastive.ntxent_loss), {"temperature": 0.1}),
    "supcon": LossSpec(_plain(contrastive.supcon_loss), {"temperature": 0.1}),
    "infonce": LossSpec(_infonce, {"temperature": 0.1, "symmetric": False}),
    "npair": LossSpec(_npair, {"l2_weight": 0.0}),
    "prototypical": LossSpec(_prototypical, {"squared": True}),
    # embedlab.losses.proxy: one learned vector per seen class.
    "proxy_nca": LossSpec(_with_class_points(proxy.proxy_nca_loss), {"softmax_scale": 1.0},
                          class_params="learned"),
    "proxy_anchor": LossSpec(_with_class_points(proxy.proxy_anchor_loss),
                             {"margin": 0.1, "alpha": 32.0}, class_params="learned"),
    "cosface": LossSpec(_with_class_points(proxy.cosface_loss), {"margin": 0.35, "scale": 64.0},
                        class_params="learned"),
    "arcface": LossSpec(_with_class_points(proxy.arcface_loss), {"margin": 0.5, "scale": 64.0},
                        class_params="learned"),
    # embedlab.losses.prototypes: fixed class directions chosen before training.
    "ebv": LossSpec(_with_class_points(prototypes.ebv_loss),
                    {"temperature": 0.07, "radius": 1.0}, class_params="fixed",
                    fixed_basis=_ebv_basis),
    "hyperspherical_prototype": LossSpec(
        _with_class_points(prototypes.hyperspherical_prototype_loss), {},
        class_params="fixed", fixed_basis=_hyperspherical_basis),
    "busemann_prototype": LossSpec(_busemann, {"phi": None}, class_params="fixed",
                                   geometries=("poincare",), fixed_basis=_hyperspherical_basis),
}


def loss_spec(name: str) -> LossSpec:
  """The :class:`LossSpec` of ``name``; ``ValueError`` listing the known names otherwise."""
  if name not in LOSSES:
    raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
  return LOSSES[name]


def loss_defaults() -> dict[str, dict]:
  """Every registered loss's default hyperparameters, ``{name: {option: value}}`` (copies).

  An experiment config holds them as ``config.losses``, so each is overridable from the CLI
  (``--config.losses.triplet.margin=0.1``).
  """
  return {name: dict(spec.defaults) for name, spec in LOSSES.items()}
