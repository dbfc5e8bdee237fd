r"""Nested caps: a transitive closure in the Poincaré ball without optimisation.

A construction (no training) for the reconstruction task of Nickel & Kiela, "Poincaré
Embeddings for Learning Hierarchical Representations", NeurIPS 2017: for every node ``u``, its
ancestors should be nearer to ``u`` than every other node. In the spirit of the entailment
cones of Ganea, Bécigneul & Hofmann (ICML 2018) and of Sarkar's / Sala et al.'s
combinatorial construction (:mod:`embedlab.models.combinatorial`), but built for the closure's
ranking rather than for a tree metric.

Why caps. Write a point as ``(r, e)``: hyperbolic distance ``r`` from the origin and direction
``e`` on the unit sphere. With the root at the origin, ``d(u, root) = r_u``, and the
hyperbolic law of cosines gives, for nodes ``u, x`` at angle ``phi``::

  cosh d(u, x) = cosh(r_u - r_x) + 2 sinh(r_u) sinh(r_x) sin^2(phi / 2).

As ``r_u`` grows, ``d(u, x) < r_u = d(u, root)`` becomes ``sin^2(phi/2) < 1 / (1 + e^{r_x})``:
``u``'s direction lies in the spherical *cap* of ``x``, of angular radius ``theta_x`` with
``sin^2(theta_x / 2) = 1 / (1 + e^{r_x})`` (a node's depth buys it a cap that shrinks like
``e^{-r_x / 2}``). So if each node's cap holds the directions of exactly its descendants,
every query ``u`` sees its ancestors (whose caps hold it) nearer than the root, and every other
node farther: all ranks are 1. (For a shallower query the inequality is stricter, so the
condition errs on the safe side; ``margin`` keeps a gap.)

Construction. On a *layout tree* (each node's direct parent with the most ancestors, i.e. the
deepest): the root sits at the origin; its children get disjoint caps centred on a spherical
code; recursively, the ``n`` children of ``p`` get equal caps of radius
``theta_c = theta_p s / (2 + s) / (1 + margin)`` centred at angle ``beta = theta_p (2 / (2 + s))``
from ``e_p`` along a spherical code on the ``(d - 2)``-sphere of ``e_p``'s tangent directions
(min chord ``s``, randomly rotated). Then the child caps lie inside ``p``'s, do not overlap
each other (``beta s >= 2 theta_c``) and leave ``p``'s own direction out (``beta >= theta_c``),
and ``r_c = log(1 / sin^2(theta_c / 2) - 1)``. Each level costs ``2 log((2 + s) / s)`` plus
``2 log(1 + margin)`` of radius: 1.39 at best (one child), ~1.76 for up to ``2 (d - 1)``
children (the cross-polytope), more for large fan-outs.

Precision. Radii grow by ~1.5-2.5 per level, so a hierarchy of height ~19 (WordNet nouns)
reaches ``r ~ 38``, where float64 rounds points onto the boundary (``1 - |x| ~ 2 e^{-r}``).
Rankings survive better than distances do (a query's own rounding scales all its distances
alike), but nodes past ``r ~ 36`` are unreliable: the builder warns about them. Training after
the construction clamps points at the ball margin of its dtype (``r ~ 23.7`` in float64).

What a tree layout cannot do. A node with two or more direct parents in unrelated branches
(a DAG, e.g. WordNet's ``person`` under ``organism`` and ``causal_agent``) sits in one
parent's cap; for it and its descendants, ancestors off the layout path rank behind many
unrelated nodes. :func:`layout_tree` reports how many (node, ancestor) pairs that concerns;
:func:`embedlab.models.cap_refinement.refine_caps` then bends the caps to fit the DAG.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np

from embedlab import graphs
from embedlab.graphs import Closure

# Past this distance from the origin float64 no longer resolves 1 - |x| (a few ulps of 1).
_FLOAT64_RELIABLE_RADIUS = 36.0
# Repulsion steps for spherical codes with more points than the cross-polytope has.
_CODE_STEPS = 300


@dataclasses.dataclass(frozen=True)
class NestedCaps:
  """A nested-caps embedding.

  Attributes:
    points: ``float64 [N, dim]`` Poincaré-ball coordinates (curvature ``c``).
    radii: ``float64 [N]`` hyperbolic distances from the origin (curvature -1 units).
    cap_angles: ``float64 [N]`` angular radius of each node's cap (``pi`` for the root).
    layout_parent: ``int64 [N]`` the parent each node was placed under (``-1``: a root).
    off_layout_pairs: closure pairs ``(u, a)`` whose ancestor ``a`` is not on ``u``'s
      layout path (the DAG part the caps cannot rank well).
    layout_depth: ``int64 [N]`` each node's depth in the layout tree (``0``: a root).
  """
  points: np.ndarray
  radii: np.ndarray
  cap_angles: np.ndarray
  layout_parent: np.ndarray
  off_layout_pairs: int
  layout_depth: np.ndarray


def _layout(closure: Closure) -> tuple[np.ndarray, np.ndarray, int]:
  """``(parent int64 [N], depth int64 [N], off_layout_pairs)`` of :func:`layout_tree`."""
  closure.check_closed()
  parent = np.array(closure.deepest_parent)
  num_ancestors = closure.num_ancestors
  depth = np.zeros(closure.num_nodes, np.int64)
  for v in np.argsort(num_ancestors, kind="stable"):  # ancestors come first in this order
    if parent[v] >= 0:
      depth[v] = depth[parent[v]] + 1
  return parent, depth, int(num_ancestors.sum() - depth.sum())


def layout_tree(edges, num_nodes: int | None = None) -> tuple[np.ndarray, int]:
  """The tree the caps are nested along, from a transitive closure.

  Each node's layout parent is its direct parent (an ancestor that is no other ancestor's
  ancestor) with the most ancestors, ties to the smallest id: the deepest one
  (:attr:`embedlab.graphs.Closure.deepest_parent`), which keeps most of the node's ancestors
  on its path to the root.

  Args:
    edges: a :class:`~embedlab.graphs.Closure`, or ``int [E, 2]`` closure rows
      ``(child, ancestor)``; must be transitively closed and acyclic.
    num_nodes: ``N``; needed with rows, optional with a ``Closure``.

  Returns:
    ``(parent int64 [N], off_layout_pairs)``: ``-1`` for nodes without ancestors; the number of
    closure pairs whose ancestor is not on the child's layout path.

  Raises:
    ValueError: on a cycle, or rows that are not transitively closed (with an example).
  """
  parent, _, off_layout = _layout(graphs.as_closure(edges, num_nodes))
  return parent, off_layout


@functools.lru_cache(maxsize=1024)
def _cached_code(n: int, dim: int, seed: int) -> tuple[np.ndarray, float]:
  points, chord = spherical_code(n, dim, seed=seed)
  points.setflags(write=False)  # shared between calls
  return points, chord


def spherical_code(n: int, dim: int, *, seed: int = 0) -> tuple[np.ndarray, float]:
  """``n`` unit vectors in ``R^dim`` spread far apart, and their smallest pairwise chord.

  One point: ``e_1`` (chord 2 by convention). Up to ``2 dim``: vertices of the cross-polytope
  (``+-e_i``; two points are antipodal), chord ``sqrt(2)``. More: random points pushed apart
  by a few hundred steps of a steep repulsion (``|x_i - x_j|^{-14}``), deterministic in
  ``seed``.
  """
  if n < 1 or dim < 1:
    raise ValueError(f"need n >= 1 points and dim >= 1; got n={n}, dim={dim}")
  if n == 1:
    return np.eye(1, dim), 2.0
  if n == 2:
    e = np.eye(1, dim)
    return np.concatenate([e, -e]), 2.0
  if n <= 2 * dim:
    points = np.concatenate([np.eye(dim), -np.eye(dim)])[:n]
    return points, float(np.sqrt(2.0))
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(n, dim))
  points /= np.linalg.norm(points, axis=1, keepdims=True)
  for step in range(_CODE_STEPS):
    # |x_i - x_j|^2 = 2 - 2 x_i.x_j on the sphere; the push on x_i is sum_j w_ij (x_i - x_j).
    inverse = 1.0 / np.maximum(2.0 - 2.0 * points @ points.T, 1e-12)
    squared = inverse * inverse
    weight = squared * squared * squared * inverse  # ** -7, without pow's cost
    np.fill_diagonal(weight, 0.0)
    push = weight.sum(1, keepdims=True) * points - weight @ points
    push -= (push * points).sum(1, keepdims=True) * points  # along the sphere
    # Normalised steps that shrink to 0: the steep weights make raw steps explode.
    push /= np.linalg.norm(push, axis=1).mean() + 1e-300
    points += 0.05 * (1.0 - step / _CODE_STEPS) * push
    points /= np.linalg.norm(points, axis=1, keepdims=True)
  chords = np.sqrt(np.maximum(2.0 - 2.0 * points @ points.T, 0.0))
  np.fill_diagonal(chords, np.inf)
  return points, float(chords.min())


def _tangent_basis(e: np.ndarray) -> np.ndarray:
  """``[dim - 1, dim]`` orthonormal rows spanning the directions orthogonal to unit ``e``."""
  v = e.copy()
  v[0] += 1.0 if v[0] >= 0 else -1.0
  reflection = np.eye(len(e)) - 2.0 * np.outer(v, v) / (v @ v)  # maps e_1 to -+e
  return reflection[:, 1:].T


def cap_radius_to_distance(theta):
  """Distance ``r`` from the origin whose cap has angular radius ``theta``:
  ``r = log(1 / sin^2(theta / 2) - 1)`` (``theta < pi / 2`` gives ``r > 0``)."""
  return np.log(1.0 / np.sin(np.asarray(theta) / 2.0) ** 2 - 1.0)


def nested_caps(edges, num_nodes: int | None = None, *, dim: int, margin: float = 0.1,
                c: float = 1.0, seed: int = 0) -> NestedCaps:
  """Embeds a transitive closure in the ``dim``-dimensional Poincaré ball by nested caps.

  Args:
    edges: a :class:`~embedlab.graphs.Closure`, or ``int [E, 2]`` closure rows
      ``(child, ancestor)`` (transitively closed, acyclic).
    num_nodes: ``N``; needed with rows, optional with a ``Closure``.
    dim: ball dimension, ``>= 3`` (the children of a node are spread over the
      ``(dim - 2)``-sphere of its tangent directions).
    margin: child caps are shrunk by ``1 + margin`` inside the room they are given, so a node
      just outside a cap is farther than the root by a visible gap. Costs ``2 log(1 + margin)``
      of radius per level.
    c: curvature ``-c`` of the ball (radius ``1 / sqrt(c)``); ranks do not depend on it.
    seed: seeds the rotations of the codes.

  Returns:
    A :class:`NestedCaps`. Nodes without ancestors: one such root sits at the origin; several
    are placed like the children of a virtual root at the origin.
  """
  if dim < 3:
    raise ValueError(f"nested caps need dim >= 3 (a node's children spread over the "
                     f"(dim-2)-sphere of its tangent directions); got dim={dim}")
  if not margin >= 0:
    raise ValueError(f"margin must be >= 0, got {margin}")
  closure = graphs.as_closure(edges, num_nodes)
  num_nodes = closure.num_nodes
  parent, depth, off_layout = _layout(closure)
  children = [[] for _ in range(num_nodes)]
  for v in range(num_nodes):
    if parent[v] >= 0:
      children[parent[v]].append(v)
  roots = np.flatnonzero(parent < 0)
  rng = np.random.default_rng(seed)
  directions = np.zeros((num_nodes, dim))
  cap = np.zeros(num_nodes)
  def code(n, d):
    # Codes repeat across calls (the same child counts): cached for the process.
    return _cached_code(n, d, n)

  def place_on_sphere(nodes):
    # Disjoint caps centred on a code of the whole sphere; capped at 60 degrees (r >= log 3)
    # so that a lone child does not sit at the origin.
    if not len(nodes):  # a lone root
      return
    points, chord = code(len(nodes), dim)
    half_angle = min(np.arcsin(min(chord, 2.0) / 2.0), np.pi / 3.0)
    directions[nodes] = points @ np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    cap[nodes] = half_angle / (1.0 + margin)

  if len(roots) == 1:
    cap[roots[0]] = np.pi
    place_on_sphere(np.asarray(children[roots[0]], np.int64))
    stack = list(children[roots[0]])
  else:
    place_on_sphere(roots)
    stack = list(roots)
  while stack:
    node = stack.pop()
    kids = children[node]
    if not kids:
      continue
    points, chord = code(len(kids), dim - 1)
    room = cap[node] * chord / (2.0 + chord)
    beta = cap[node] - room
    rotation = np.linalg.qr(rng.normal(size=(dim - 1, dim - 1)))[0]
    tangents = points @ rotation @ _tangent_basis(directions[node])
    moved = np.cos(beta) * directions[node] + np.sin(beta) * tangents
    directions[kids] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    cap[kids] = room / (1.0 + margin)
    stack.extend(kids)

  points, radii = points_from_caps(directions, cap, c=c, stacklevel=3)
  return NestedCaps(points=points, radii=radii, cap_angles=cap, layout_parent=parent,
                    off_layout_pairs=off_layout, layout_depth=depth)


def points_from_caps(directions, cap_angles, *, c: float = 1.0, stacklevel: int = 2):
  """Poincaré points ``[N, dim]`` and radii ``[N]`` of nodes given their caps.

  ``r = cap_radius_to_distance(theta)``; a cap of ``pi`` is the centred root (``r = 0``). A cap
  of a hemisphere or more has no radius (``r <= 0``): such a node is put next to the origin
  (``r = 1e-3``), nearer than the root to half the sphere (only cap refinement makes them; the
  construction's caps stay below 60 degrees). Warns when nodes lie past the float64-reliable
  radius (``stacklevel`` as for :func:`warnings.warn`, counted from this function).
  """
  radii = np.zeros(len(cap_angles))
  placed = cap_angles < np.pi
  radii[placed] = np.maximum(
      cap_radius_to_distance(np.minimum(cap_angles[placed], np.pi / 2 - 1e-9)), 1e-3)
  deep = int(np.sum(radii > _FLOAT64_RELIABLE_RADIUS))
  if deep:
    warnings.warn(f"{deep} of {len(radii)} nodes lie farther than {_FLOAT64_RELIABLE_RADIUS} "
                  f"from the origin (max {radii.max():.1f}), where float64 barely resolves "
                  "the ball's boundary; their distances are approximate.", stacklevel=stacklevel)
  points = (np.tanh(radii / 2.0)[:, None] * directions) / np.sqrt(c)
  return points, radii
