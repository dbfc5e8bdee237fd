"""Geometries as a notebook would write them: the built-in records with every optional field
left out, so their optional operations come from the generic defaults
(``embedlab.geometry._defaults``) and their flags are off. Tests of the defaults and of losses
"in a geometry embedlab does not know" use them."""

import dataclasses

from embedlab.geometry import GEOMETRIES, Manifold

OPTIONAL = dict(weighted_midpoint=None, expmap0=None, logmap0=None, direction0=None,
                pairwise_similarity=None, radial=False, vector_space=False)


def bare(manifold: Manifold) -> Manifold:
  """``manifold`` without its optional fields, renamed ``<name>_bare``."""
  return dataclasses.replace(manifold, name=f"{manifold.name}_bare", **OPTIONAL)


# The built-in geometries at import time (before any test registers another one).
BARE = {f"{name}_bare": bare(manifold) for name, manifold in GEOMETRIES.items()}
