"""Pictures of embeddings in the Poincaré disk: hierarchies and tree embeddings.

:func:`plot_hierarchy` first maps points of any geometry to a 2-D picture:
* hyperbolic geometries (any model, ``curvature_sign < 0``): for ``d == 2`` the isometry onto
  the Poincaré disk (the direction at the origin, ``direction0``, and the disk radius of the
  distance to the origin); for ``d > 2`` directions from the two principal axes of ``logmap0``,
  picture radius proportional to the distance from the origin (a projection, labelled as such);
* other geometries: the two principal axes of the coordinates.
Edges of the *direct* hierarchy (each node to its nearest ancestor in the closure, i.e. the
ancestor with the most ancestors of its own) are drawn, and the top levels are labelled.

:func:`plot_tree` draws a 2-D Poincaré embedding of a graph twice: in the disk, and with the
angle kept and the radius proportional to the hyperbolic distance from the origin (where deep
levels stay apart).

Figures are built with :class:`matplotlib.figure.Figure` and saved with ``savefig``, without
pyplot: no backend is chosen for the process, so importing this module changes nothing for a
notebook or another library.
"""

from __future__ import annotations

import pathlib

import chex
import matplotlib.collections
import matplotlib.figure
import matplotlib.patches
import numpy as np

from embedlab.geometry.base import Manifold


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


def _draw_disk(ax) -> None:
  """The unit circle (the ball's boundary at ``c = 1``) and limits just outside it."""
  ax.add_patch(matplotlib.patches.Circle((0, 0), 1.0, fill=False, color="0.3", lw=1))
  ax.set_xlim(-1.05, 1.05)
  ax.set_ylim(-1.05, 1.05)


def _draw_edges(ax, xy: np.ndarray, edges: np.ndarray, *, color: str) -> None:
  """Straight segments between the rows ``edges [E, 2]`` of ``xy [N, 2]``, under the points."""
  segments = np.stack([xy[edges[:, 0]], xy[edges[:, 1]]], axis=1)
  ax.add_collection(matplotlib.collections.LineCollection(segments, colors=color, lw=0.3,
                                                          zorder=1))


def _save(fig: matplotlib.figure.Figure, path) -> pathlib.Path:
  path = pathlib.Path(path)
  fig.savefig(path, dpi=120, bbox_inches="tight")
  return path


def plot_hierarchy(vectors, closure, *, manifold: Manifold, c: float, path, title: str = "",
                   label_levels: int = 2, max_labels: int = 40) -> pathlib.Path:
  """Draws the embedding (and its direct edges) and saves it to ``path`` (PNG).

  Args:
    vectors: ``[N, D]`` points of ``manifold``.
    closure: the :class:`embedlab.graphs.Closure` they embed (its names and structure).
    manifold, c: their geometry and curvature.
    path: the PNG written.
    title: the picture's title (default: the geometry's name).
    label_levels: nodes with at most this many ancestors may be labelled ...
    max_labels: ... the ones with the most descendants, at most this many.
  """
  xy, hyperbolic = to_disk(vectors, manifold=manifold, c=c)
  depth = closure.num_ancestors
  parent = closure.deepest_parent
  fig = matplotlib.figure.Figure(figsize=(8, 8))
  ax = fig.subplots()
  if hyperbolic:
    _draw_disk(ax)
  children = np.flatnonzero(parent >= 0)
  _draw_edges(ax, xy, np.stack([children, parent[children]], axis=1), color="0.75")
  ax.scatter(xy[:, 0], xy[:, 1], s=6, c=depth, cmap="viridis", zorder=2)
  descendants = closure.descendants.counts
  top = [i for i in np.argsort(-descendants) if depth[i] <= label_levels][:max_labels]
  for i in top:
    ax.annotate(closure.names[i].split(".")[0], xy[i], fontsize=7, zorder=3,
                xytext=(2, 2), textcoords="offset points")
  ax.set_aspect("equal")
  ax.set_title(title or f"{manifold.name} embedding", fontsize=10)
  ax.set_xticks([])
  ax.set_yticks([])
  return _save(fig, path)


def disk_radii(points: np.ndarray) -> np.ndarray:
  """``2 artanh |x|``: the hyperbolic distance from the origin of Poincaré-disk points (c = 1).

  Points that float64 rounds onto the rim get the largest finite value; where exact radii are
  known (the combinatorial construction's), pass those to :func:`plot_tree` instead.
  """
  return 2.0 * np.arctanh(np.minimum(np.linalg.norm(points, axis=1), 1.0 - 1e-16))


def tree_title(results: dict) -> str:
  """Two title lines of a tree embedding from its ``results.json`` fields.

  The first names the dataset, method and scale (``tau`` and precision for the combinatorial
  construction, ``scale`` for h-MDS); the second MAP and average / worst-case distortion.
  """
  m = results["metrics"]
  if "tau" in results:
    precision = results["precision"]
    precision = f"{precision} bits" if isinstance(precision, int) else precision
    scale = f"tau {results['tau']:.3g}, {precision}"
  else:
    scale = f"scale {results['scale']:.3g}"
  return (f"{results['dataset']} · {results['method']} · dim 2 · {scale}\nMAP {m['map']:.3f} · "
          f"D_avg {m['average_distortion']:.3f} · D_wc {m['worst_case_distortion']:.3g}")


def plot_tree(points, edges, radii, path, *, title: str) -> pathlib.Path:
  """Two panels: the Poincaré disk, and angle kept with radius ∝ hyperbolic distance.

  Args:
    points: ``[N, 2]`` Poincaré-disk coordinates (``c = 1``).
    edges: ``[E, 2]`` node pairs drawn as straight segments (the spanning tree for the
      combinatorial construction, the graph for h-MDS).
    radii: ``[N]`` hyperbolic distances from the origin (the colour, and the second panel's
      radius), e.g. :func:`disk_radii`.
    path: the PNG written.
    title: the figure's title, e.g. :func:`tree_title`.
  """
  points, edges, radii = np.asarray(points), np.asarray(edges), np.asarray(radii)
  chex.assert_shape(points, (None, 2))
  chex.assert_shape(edges, (None, 2))
  chex.assert_shape(radii, points.shape[:1])
  angle = np.arctan2(points[:, 1], points[:, 0])
  stretched = (radii / max(float(radii.max()), 1e-12))[:, None] * np.stack(
      [np.cos(angle), np.sin(angle)], axis=1)
  fig = matplotlib.figure.Figure(figsize=(14, 7))
  axes = fig.subplots(1, 2)
  for ax, xy, label in [(axes[0], points, "Poincaré disk"),
                        (axes[1], stretched, "radius ∝ distance to the origin")]:
    _draw_disk(ax)
    _draw_edges(ax, xy, edges, color="0.7")
    ax.scatter(xy[:, 0], xy[:, 1], s=2, c=radii, cmap="viridis", zorder=2)
    ax.set_aspect("equal")
    ax.set_title(label)
    ax.axis("off")
  fig.suptitle(title)
  return _save(fig, path)


def hierarchy_title(dataset: str, *, manifold: Manifold, dim: int, metrics: dict) -> str:
  """The title of a hierarchy run's picture: data, geometry, how it is drawn, its metrics.

  Hyperbolic points of more than 2 dimensions are drawn by :func:`to_disk`'s projection (radius
  proportional to the distance to the origin), and the title says so.
  """
  view = (" (projected: radius ∝ distance to origin)"
          if dim != 2 and manifold.curvature_sign < 0 else "")
  return (f"{dataset} · {manifold.name} · dim {dim}{view} · "
          f"mean rank {metrics.get('mean_rank', float('nan')):.3f} · "
          f"MAP {metrics.get('map', float('nan')):.3f}")
