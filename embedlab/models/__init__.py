"""Embedding models: constructions that need no training (and, later, flax modules).

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
from embedlab.models.hmds import hmds
from embedlab.models.nested_caps import NestedCaps

__all__ = [
    "CombinatorialEmbedding",
    "NestedCaps",
    "RefinementRound",
    "bits_needed",
    "combinatorial_embedding",
    "hmds",
    "refine_caps",
    "tau_for_distortion",
    "tau_for_precision",
]
