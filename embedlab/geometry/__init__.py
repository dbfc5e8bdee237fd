"""Geometries: one module of pure functions per manifold, and the explicit registry.

>>> from embedlab import geometry
>>> ball = geometry.get("poincare")
>>> ball.dist(x, y, c=1.0)  # doctest: +SKIP
"""

from embedlab.geometry import euclidean, lorentz, poincare, sphere
from embedlab.geometry._numerics import row_dots
from embedlab.geometry.base import Manifold, check_on_manifold, checkify_on_manifold

GEOMETRIES: dict[str, Manifold] = {
    "euclidean": euclidean.MANIFOLD,
    "poincare": poincare.MANIFOLD,
    "lorentz": lorentz.MANIFOLD,
    "sphere": sphere.MANIFOLD,
}


def get(name: str) -> Manifold:
  """The registered geometry called ``name``; ``ValueError`` listing the valid names otherwise."""
  try:
    return GEOMETRIES[name]
  except KeyError:
    raise ValueError(
        f"unknown geometry {name!r}; expected one of {sorted(GEOMETRIES)}") from None


__all__ = ["GEOMETRIES", "Manifold", "check_on_manifold", "checkify_on_manifold", "get", "row_dots",
           "euclidean", "lorentz", "poincare", "sphere"]
