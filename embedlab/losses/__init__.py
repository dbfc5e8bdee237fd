"""Pure loss functions; each takes a geometry so one loss works in every geometry."""

from embedlab.losses.hierarchy import (
    adjacency_contains, build_adjacency, hierarchy_loss, nickel_kiela_loss, sample_negatives)
from embedlab.losses.metric import contrastive_loss, pair_masks, snr_distance, triplet_loss

__all__ = ["adjacency_contains", "build_adjacency", "hierarchy_loss", "nickel_kiela_loss", "sample_negatives"]
__all__ += ["contrastive_loss", "pair_masks", "snr_distance", "triplet_loss"]
