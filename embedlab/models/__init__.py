"""Embedding models: constructions that need no training, and flax encoders onto a manifold.

The nested-caps builder is ``embedlab.models.nested_caps.nested_caps`` (the module keeps its name
here, so the function is not re-exported under it).
"""

from embedlab.models.cap_refinement import RefinementRound
from embedlab.models.cap_refinement import refine_caps
from embedlab.models.combinatorial import CombinatorialEmbedding
from embedlab.models.combinatorial import bits_needed
from embedlab.models.combinatorial import combinatorial_embedding
from embedlab.models.combinatorial import tau_for_distortion
from embedlab.models.combinatorial import tau_for_precision
from embedlab.models.encoder import MLP
from embedlab.models.encoder import check_widths
from embedlab.models.encoder import clip_norm
from embedlab.models.encoder import embed_points
from embedlab.models.encoder import to_manifold
from embedlab.models.hmds import hmds
from embedlab.models.nested_caps import NestedCaps

__all__ = [
    "CombinatorialEmbedding",
    "MLP",
    "NestedCaps",
    "RefinementRound",
    "bits_needed",
    "check_widths",
    "clip_norm",
    "combinatorial_embedding",
    "embed_points",
    "hmds",
    "refine_caps",
    "tau_for_distortion",
    "tau_for_precision",
    "to_manifold",
]
