"""Pictures of embeddings: hierarchies in the 2-D Poincaré disk.

Points of any geometry are first mapped to a 2-D picture:
* Poincaré / Lorentz: to the Poincaré ball (Lorentz via the isometry); exact for ``d == 2``.
  For ``d > 2``: directions from the two principal axes of ``logmap0``, picture radius
  proportional to the hyperbolic distance from the origin (a projection, labelled as such).
* Euclidean / sphere: the two principal axes of the coordinates.
Edges of the *direct* hierarchy (each node to its nearest ancestor in the closure, i.e. the
ancestor with the most ancestors of its own) are drawn, and the top levels are labelled.
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")  # Headless: experiments run on servers and in CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from embedlab.geometry.base import Manifold  # noqa: E402


def _principal_axes(points: np.ndarray, k: int = 2) -> np.ndarray:
  centered = points - points.mean(axis=0, keepdims=True)
  _, _, vt = np.linalg.svd(centered, full_matrices=False)
  return centered @ vt[:k].T


def to_disk(vectors: np.ndarray, *, manifold: Manifold, c: float) -> tuple[np.ndarray, bool]:
  """``[N, D] -> ([N, 2], is_hyperbolic)``: 2-D coordinates to draw."""
  vectors = np.asarray(vectors, np.float32)
  if manifold.curvature_sign < 0:
    origin = manifold.origin(vectors.shape, c=c, dtype=vectors.dtype)
    radius = np.asarray(manifold.dist(origin, vectors, c=c))
    tangent = np.asarray(manifold.logmap0(vectors, c=c))
    if tangent.shape[1] == 2:
      # The isometry onto the unit disk: same direction at the origin, Poincaré radius
      # tanh(sqrt(c) d / 2) for hyperbolic distance d.
      direction = np.asarray(manifold.direction0(vectors, c=c))
      return np.tanh(np.sqrt(c) * radius / 2)[:, None] * direction, True
    # Directions from the principal axes of the tangent vectors at the origin; picture radius
    # proportional to the hyperbolic distance from the origin (the exact disk radius would put
    # every leaf on the rim and hide the levels).
    flat = _principal_axes(tangent)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    return 0.98 * unit * (radius / max(radius.max(), 1e-12))[:, None], True
  if vectors.shape[1] == 2:
    return vectors, False
  return _principal_axes(vectors), False


def parent_of(closure) -> np.ndarray:
  """Direct parent of each node (-1 for roots): its ancestor with the most ancestors."""
  edges = np.asarray(closure.edges)
  depth = np.bincount(edges[:, 0], minlength=closure.num_nodes)  # number of ancestors
  parent = np.full(closure.num_nodes, -1)
  best = np.full(closure.num_nodes, -1)
  for child, ancestor in edges:
    if depth[ancestor] > best[child]:
      best[child], parent[child] = depth[ancestor], ancestor
  return parent


def plot_hierarchy(vectors, closure, *, manifold: Manifold, c: float, path, title: str = "",
                   label_levels: int = 2, max_labels: int = 40) -> pathlib.Path:
  """Draws the embedding (and its direct edges) and saves it to ``path`` (PNG)."""
  xy, hyperbolic = to_disk(vectors, manifold=manifold, c=c)
  edges = np.asarray(closure.edges)
  depth = np.bincount(edges[:, 0], minlength=closure.num_nodes)
  parent = parent_of(closure)
  fig, ax = plt.subplots(figsize=(8, 8))
  if hyperbolic:
    ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.3", lw=1))
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
  children = np.flatnonzero(parent >= 0)
  for child in children:
    a, b = xy[child], xy[parent[child]]
    ax.plot([a[0], b[0]], [a[1], b[1]], color="0.75", lw=0.3, zorder=1)
  ax.scatter(xy[:, 0], xy[:, 1], s=6, c=depth, cmap="viridis", zorder=2)
  descendants = np.bincount(edges[:, 1], minlength=closure.num_nodes)
  top = [i for i in np.argsort(-descendants) if depth[i] <= label_levels][:max_labels]
  for i in top:
    ax.annotate(closure.names[i].split(".")[0], xy[i], fontsize=7, zorder=3,
                xytext=(2, 2), textcoords="offset points")
  ax.set_aspect("equal")
  ax.set_title(title or f"{manifold.name} embedding", fontsize=10)
  ax.set_xticks([])
  ax.set_yticks([])
  path = pathlib.Path(path)
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)
  return path
