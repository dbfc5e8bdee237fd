r"""Cap refinement: nested caps bent to fit a DAG, by gradient descent on the sphere.

:func:`embedlab.models.nested_caps.nested_caps` lays a transitive closure out along a tree, so
a node with a second parent in an unrelated branch (WordNet's ``alcohol`` under ``beverage``
and ``drug_of_abuse``) sits in one parent's cap only, and for it and its descendants the other
parent's whole chain of ancestors ranks behind hundreds of unrelated nodes. This module moves
the caps until the DAG fits as well as it can.

What has to hold. For a far query ``u`` in direction ``e_u``, ranking the other nodes by
distance is ranking them by their Busemann functions, and ``y`` is nearer than the root iff
``e_u`` lies in ``y``'s cap (see :mod:`embedlab.models.nested_caps`). So every ancestor ``a`` of
``u`` ranks first iff, on the unit sphere,

  angle(e_u, e_a) < theta_a   for every ancestor a,   angle(e_u, e_y) > theta_y   otherwise.

Only the *centres* of the nodes have to lie in the caps of their ancestors (caps need not nest
any more): a relaxed disk embedding (Suzuki, Takahama & Onoda, "Hyperbolic Disk Embeddings for
Directed Acyclic Graphs", ICML 2019, embed a DAG as nested disks). Radii follow from the caps
as in the construction, ``r = log(1 / sin^2(theta / 2) - 1)``.

How. Squared hinges on the log-ratios, scale-free from the top level (caps of ~1 rad) to the
deepest (~1e-8 rad)::

  L = sum_{(u, a) in closure} relu(log angle(e_u, e_a) - log theta_a + margin)^2
    + sum_{(u, y) mined}     relu(log theta_y - log angle(e_u, e_y) + margin)^2,

minimised with Adam over a *hierarchical* parametrisation: each node's direction is an offset
from its layout parent's direction measured in units of the parent's cap, and its cap a log
ratio to the parent's. Moving a node moves its subtree, and a step means the same at every
depth. The non-ancestor pairs are mined exactly every ``mine_every`` steps (every centre that
lies in another node's cap enlarged by ``exp(mine_slack * margin)``, by ball queries on a k-d
tree of the centres) and kept in a growing pool, so that a cap pushed out of a region stays
out.

Started from the construction (where every tree pair already holds with margin), the
refinement pulls each shared subtree and its off-layout ancestors' caps together. On the
WordNet nouns in dimension 10, 150 steps (~2.5 min on 2 CPU cores) take the construction's
mean rank 85.2 / MAP 0.969 to about 2 / 0.977 (all queries; see the README). On random DAGs
in few dimensions the stretched caps can brush past other nodes and cost some MAP.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.spatial
import tqdm

from embedlab import graphs
from embedlab.models import nested_caps as nested_caps_lib

@dataclasses.dataclass(frozen=True)
class RefinementRound:
  """What one mining round found (before that round's steps).

  Attributes:
    step: steps taken so far.
    loss: the objective at this point.
    ancestor_violations: closure pairs whose centre lies outside the ancestor's cap (the
      objective also counts those inside it by less than the margin).
    mined: non-ancestor pairs found inside the (slack-enlarged) caps this round.
    pool: non-ancestor pairs held in the objective from now on (every round's, deduplicated).
  """
  step: int
  loss: float
  ancestor_violations: int
  mined: int
  pool: int


@dataclasses.dataclass(frozen=True)
class _Layout:
  """The layout tree as levels: ``levels[k] = (nodes, parents)``, parents in earlier levels."""
  top: np.ndarray          # nodes whose direction is free (below the centred root, or roots)
  levels: tuple            # ((nodes, parents), ...) for depth 1, 2, ... below the top nodes
  fixed: np.ndarray        # bool [N]: the centred root (cap pi, at the origin)


def _layout(caps: nested_caps_lib.NestedCaps) -> _Layout:
  parent = caps.layout_parent
  fixed = caps.cap_angles >= np.pi
  is_top = ~fixed & ((parent < 0) | np.isin(parent, np.flatnonzero(fixed)))
  inner = ~fixed & ~is_top
  # The top nodes share one layout depth (the roots', or their centred parent's plus one), so
  # the levels below them are the layout depths that follow, parents always a level earlier.
  top_depth = int(caps.layout_depth[is_top].min(initial=0))
  levels = []
  for depth in range(top_depth + 1, int(caps.layout_depth.max(initial=0)) + 1):
    nodes = np.flatnonzero(inner & (caps.layout_depth == depth))
    levels.append((nodes, parent[nodes]))
  return _Layout(top=np.flatnonzero(is_top), levels=tuple(levels), fixed=fixed)


def _directions(caps: nested_caps_lib.NestedCaps) -> np.ndarray:
  norms = np.linalg.norm(caps.points, axis=1, keepdims=True)
  return np.where(norms > 0, caps.points / np.where(norms > 0, norms, 1.0), 0.0)


def _sphere_log(base: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Tangent vector at unit ``base`` pointing to unit ``target``, of length their angle."""
  cosine = (base * target).sum(-1, keepdims=True)
  # target - cos * base is the difference of two nearly equal vectors: no cancellation in the
  # angle, which comes from atan2 of the tangent's norm.
  tangent = target - cosine * base
  norm = np.linalg.norm(tangent, axis=-1, keepdims=True)
  return tangent / np.maximum(norm, 1e-300) * np.arctan2(norm, cosine)


def _parameters(caps, layout: _Layout, directions: np.ndarray):
  """Offsets ``[N, dim]`` and log cap ratios ``[N]`` that reproduce ``caps``."""
  offsets = np.zeros_like(directions)
  log_ratios = np.zeros(len(directions))
  offsets[layout.top] = directions[layout.top]
  log_ratios[layout.top] = np.log(caps.cap_angles[layout.top] / np.pi)
  for nodes, parents in layout.levels:
    offsets[nodes] = (_sphere_log(directions[parents], directions[nodes])
                      / caps.cap_angles[parents][:, None])
    log_ratios[nodes] = np.log(caps.cap_angles[nodes] / caps.cap_angles[parents])
  return offsets, log_ratios


def _unpack(offsets, log_ratios, layout: _Layout):
  """Directions ``[N, dim]`` and cap angles ``[N]`` from the hierarchical parameters."""
  directions = jnp.zeros_like(offsets)
  angles = jnp.full(offsets.shape[:1], jnp.pi, offsets.dtype)
  top = layout.top
  free = offsets[top]
  directions = directions.at[top].set(free / jnp.linalg.norm(free, axis=-1, keepdims=True))
  angles = angles.at[top].set(jnp.pi * jnp.exp(log_ratios[top]))
  for nodes, parents in layout.levels:
    base, base_angle = directions[parents], angles[parents]
    tangent = offsets[nodes]
    tangent = tangent - (tangent * base).sum(-1, keepdims=True) * base
    norm = jnp.sqrt((tangent * tangent).sum(-1, keepdims=True) + 1e-300)
    turn = base_angle[:, None] * norm
    directions = directions.at[nodes].set(jnp.cos(turn) * base + jnp.sin(turn) * tangent / norm)
    angles = angles.at[nodes].set(base_angle * jnp.exp(log_ratios[nodes]))
  return directions, angles


def _angle(a, b):
  """Angle between unit vectors from their chord (exact for tiny angles, unlike arccos)."""
  chord = jnp.sqrt(((a - b) ** 2).sum(-1) + 1e-300)
  return 2.0 * jnp.arcsin(jnp.clip(chord / 2.0, 0.0, 1.0))


def _objective(params, ancestor_pairs, negative_pairs, negative_mask, *, layout, margin):
  """The squared hinges of the module docstring; also counts ancestors' caps missed."""
  directions, angles = _unpack(*params, layout)
  u, a = ancestor_pairs
  outside = jnp.log(_angle(directions[u], directions[a])) - jnp.log(angles[a]) + margin
  u, y = negative_pairs
  inside = jnp.log(angles[y]) - jnp.log(_angle(directions[u], directions[y])) + margin
  ancestor_loss = jnp.sum(jax.nn.relu(outside) ** 2)
  negative_loss = jnp.sum(negative_mask * jax.nn.relu(inside) ** 2)
  return ancestor_loss + negative_loss, jnp.sum(outside > margin)  # centre outside the cap


def _mine(directions, angles, ancestor_keys, *, fixed, limit_scale):
  """Pairs ``(u, y)``, ``y`` not ``u`` nor an ancestor, with ``e_u`` in ``y``'s scaled cap.

  A ball query per cap on a k-d tree of the centres: the chords are exact differences (a
  matmul's ``2 - 2 x.y`` would cancel below the deepest caps' width), and the work is the
  number of (centre, cap) hits, about the closure's size, not ``N^2``.
  """
  num_nodes = len(directions)
  caps = np.flatnonzero(~fixed)
  limit = np.minimum(angles[caps] * limit_scale, np.pi)
  tree = scipy.spatial.cKDTree(directions)
  members = tree.query_ball_point(directions[caps], r=2.0 * np.sin(limit / 2.0), workers=-1,
                                  return_sorted=False)
  sizes = np.fromiter((len(m) for m in members), np.int64, len(members))
  rows = np.fromiter(itertools.chain.from_iterable(members), np.int64, int(sizes.sum()))
  cols = np.repeat(caps, sizes)
  keep = (rows != cols) & ~fixed[rows]
  rows, cols = rows[keep], cols[keep]
  related = np.isin(rows * num_nodes + cols, ancestor_keys)
  return rows[~related], cols[~related]


def check_settings(*, steps: int, learning_rate: float, margin: float, mine_every: int) -> None:
  """Raises ``ValueError`` unless :func:`refine_caps` can run with these settings."""
  if steps < 0 or mine_every < 1 or not margin >= 0 or not learning_rate > 0:
    raise ValueError(f"cap refinement needs steps >= 0, mine_every >= 1, margin >= 0 and "
                     f"learning_rate > 0; got steps={steps}, mine_every={mine_every}, "
                     f"margin={margin}, learning_rate={learning_rate}")


def refine_caps(edges, num_nodes: int | None = None,
                caps: nested_caps_lib.NestedCaps | None = None, *, steps: int = 150,
                learning_rate: float = 0.005, margin: float = 0.05, mine_every: int = 25,
                mine_slack: float = 2.0, c: float = 1.0, progress: bool = False,
                ) -> tuple[nested_caps_lib.NestedCaps, list[RefinementRound]]:
  """Moves nested caps so that every node's centre lies in its ancestors' caps, DAG included.

  Args:
    edges: the closure ``caps`` was built from: a :class:`~embedlab.graphs.Closure`, or
      ``int [E, 2]`` rows ``(child, ancestor)``.
    num_nodes: ``N``; needed with rows, optional with a ``Closure``.
    caps: a :class:`~embedlab.models.nested_caps.NestedCaps` of that closure (the start).
    steps: Adam steps (each sees every closure pair and the whole mined pool).
    learning_rate: Adam's step size, in units of the parent cap (offsets) and of log ratios.
    margin: in log-angle: a centre counts as inside a cap when its angle is below
      ``theta e^{-margin}``, outside when above ``theta e^{margin}``.
    mine_every: steps between mining rounds (the first is before step 0).
    mine_slack: mine non-ancestor centres up to ``theta e^{mine_slack * margin}`` from a centre,
      so that pairs about to enter a cap are held back before they do.
    c: curvature ``-c`` of the ball the returned points live in.
    progress: show a progress bar.

  Returns:
    ``(refined NestedCaps, rounds)``: same layout tree and ``off_layout_pairs``; new points,
    radii and cap angles; one :class:`RefinementRound` per mining round.
  """
  check_settings(steps=steps, learning_rate=learning_rate, margin=margin, mine_every=mine_every)
  if caps is None:
    raise TypeError("refine_caps needs the caps to start from (caps=nested_caps(...)).")
  if num_nodes is not None and caps.points.shape[0] != num_nodes:
    raise ValueError(f"caps hold {caps.points.shape[0]} points for num_nodes={num_nodes}")
  closure = graphs.as_closure(edges, num_nodes)
  if caps.points.shape[0] != closure.num_nodes:
    raise ValueError(f"caps hold {caps.points.shape[0]} points for a closure of "
                     f"num_nodes={closure.num_nodes}")
  closure.check_closed()  # the same checks as the construction
  edges, num_nodes = closure.edges, closure.num_nodes
  layout = _layout(caps)
  if len(layout.top) == 0:  # a lone root: nothing to move
    return caps, [RefinementRound(step=0, loss=0.0, ancestor_violations=0, mined=0, pool=0)]
  keep = ~layout.fixed[edges[:, 1]]
  ancestor_pairs = (edges[keep, 0], edges[keep, 1])
  ancestor_keys = edges[:, 0].astype(np.int64) * num_nodes + edges[:, 1]
  rounds: list[RefinementRound] = []
  # float64 throughout: the deepest caps are ~1e-8 rad wide.
  with jax.enable_x64(True):
    start_directions = _directions(caps)
    params = tuple(jnp.asarray(p, jnp.float64)
                   for p in _parameters(caps, layout, start_directions))
    objective = functools.partial(_objective, layout=layout, margin=margin)
    optimizer = optax.adam(learning_rate)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, ancestors, negatives, mask):
      (loss, violations), grads = jax.value_and_grad(objective, has_aux=True)(
          params, ancestors, negatives, mask)
      updates, state = optimizer.update(grads, state, params)
      return optax.apply_updates(params, updates), state, loss, violations

    device_ancestors = tuple(jnp.asarray(p) for p in ancestor_pairs)
    pool = np.zeros(0, np.int64)
    negatives = mask = None
    bar = tqdm.trange(steps, disable=not progress, unit="step", desc="refining caps")
    for index in range(steps + 1):
      if index % mine_every == 0 or index == steps:
        directions, angles = (np.asarray(a) for a in _unpack(*params, layout))
        mined_u, mined_y = _mine(directions, angles, ancestor_keys, fixed=layout.fixed,
                                 limit_scale=np.exp(mine_slack * margin))
        pool = np.union1d(pool, mined_u.astype(np.int64) * num_nodes + mined_y)
        # A power-of-two pool shape: the step recompiles only when the pool doubles.
        padded = 1 << int(np.ceil(np.log2(max(len(pool), 4096))))
        fill = padded - len(pool)
        first_top = int(layout.top[0])
        negatives = (jnp.asarray(np.concatenate([pool // num_nodes, np.full(fill, first_top)])),
                     jnp.asarray(np.concatenate([pool % num_nodes, np.full(fill, first_top)])))
        mask = jnp.asarray(np.concatenate([np.ones(len(pool)), np.zeros(fill)]))
        loss, violations = objective(params, device_ancestors, negatives, mask)
        if not np.isfinite(float(loss)):
          raise FloatingPointError(f"cap refinement diverged (non-finite objective at step "
                                   f"{index}); lower learning_rate (now {learning_rate}).")
        rounds.append(RefinementRound(step=index, loss=float(loss),
                                      ancestor_violations=int(violations),
                                      mined=len(mined_u), pool=len(pool)))
      if index == steps:
        break
      params, state, loss, violations = step(params, state, device_ancestors, negatives, mask)
      bar.update()
      bar.set_postfix(loss=f"{float(loss):.3g}", outside=int(violations), pool=len(pool),
                      refresh=False)
    bar.close()
  # directions and angles: the last round's (it always runs at index == steps).
  return _with_caps(caps, directions, angles, c=c), rounds


def _with_caps(caps, directions, angles, *, c):
  """``caps`` with new centres and angles (radii and points follow)."""
  angles = np.where(caps.cap_angles >= np.pi, np.pi, angles)
  points, radii = nested_caps_lib.points_from_caps(directions, angles, c=c, stacklevel=4)
  return dataclasses.replace(caps, points=points, radii=radii, cap_angles=angles)
