"""Embedding models: constructions that need no training (and, later, flax modules)."""

from embedlab.models.combinatorial import CombinatorialEmbedding
from embedlab.models.combinatorial import bits_needed
from embedlab.models.combinatorial import combinatorial_embedding
from embedlab.models.combinatorial import tau_for_distortion
from embedlab.models.combinatorial import tau_for_precision
from embedlab.models.hmds import hmds

__all__ = [
    "CombinatorialEmbedding",
    "bits_needed",
    "combinatorial_embedding",
    "hmds",
    "tau_for_distortion",
    "tau_for_precision",
]
