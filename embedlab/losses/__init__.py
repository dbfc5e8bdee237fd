"""Pure loss functions; each takes a geometry so one loss works in every geometry.

Modules: ``hierarchy`` (Nickel & Kiela negative sampling), ``negatives`` (the negative
samplers a table task composes: per pair, shared by a batch, every node, hard pools), ``metric`` (pair / triplet /
multi-similarity / centroid-triplet losses, SNR distance), ``contrastive`` (NT-Xent, SupCon,
InfoNCE, N-pair, prototypical), ``proxy`` (ProxyNCA, Proxy Anchor, CosFace, ArcFace),
``prototypes`` (equiangular basis vectors, hyperspherical and Busemann prototypes) and
``mixup`` (Metrix). ``registry`` maps metric-learning loss names to adapters a task calls
uniformly (:data:`LOSSES`, :class:`LossSpec`).
"""

from embedlab.losses.contrastive import (
    infonce_loss, npair_loss, ntxent_loss, prototypical_loss, supcon_loss)
from embedlab.losses.hierarchy import (
    adjacency_contains, build_adjacency, hierarchy_loss, nearest_non_ancestors, nickel_kiela_loss,
    pool_outranked, sample_negatives, shared_negatives_loss, shared_negatives_mask)
from embedlab.losses.metric import (
    centroid_triplet_loss, contrastive_loss, multi_similarity_loss, pair_masks, snr_distance,
    snr_regularizer, triplet_loss)
from embedlab.losses.mixup import (
    Mixes, metrix_contrastive_loss, metrix_multi_similarity_loss, metrix_proxy_anchor_loss,
    mix_embeddings, mix_points, sample_mixes)
from embedlab.losses.prototypes import (
    busemann_prototype_loss, ebv_loss, equiangular_basis_vectors, extend_prototypes,
    hyperspherical_prototype_loss, hyperspherical_prototypes, max_pairwise_cosine)
from embedlab.losses.proxy import arcface_loss, cosface_loss, proxy_anchor_loss, proxy_nca_loss
from embedlab.losses.registry import LOSSES, LossSpec, loss_defaults, loss_spec

__all__ = [
    # hierarchy
    "adjacency_contains", "build_adjacency", "hierarchy_loss", "nearest_non_ancestors",
    "nickel_kiela_loss", "pool_outranked", "sample_negatives", "shared_negatives_loss",
    "shared_negatives_mask",
    # metric
    "centroid_triplet_loss", "contrastive_loss", "multi_similarity_loss", "pair_masks",
    "snr_distance", "snr_regularizer", "triplet_loss",
    # contrastive
    "infonce_loss", "npair_loss", "ntxent_loss", "prototypical_loss", "supcon_loss",
    # proxy
    "arcface_loss", "cosface_loss", "proxy_anchor_loss", "proxy_nca_loss",
    # prototypes
    "busemann_prototype_loss", "ebv_loss", "equiangular_basis_vectors", "extend_prototypes",
    "hyperspherical_prototype_loss", "hyperspherical_prototypes", "max_pairwise_cosine",
    # mixup (Metrix)
    "Mixes", "metrix_contrastive_loss", "metrix_multi_similarity_loss",
    "metrix_proxy_anchor_loss", "mix_embeddings", "mix_points", "sample_mixes",
    # registry (metric learning)
    "LOSSES", "LossSpec", "loss_defaults", "loss_spec",
]
