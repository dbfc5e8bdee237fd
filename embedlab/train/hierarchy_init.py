"""Initial tables of the hierarchy task: a registry of strategies.

Each strategy is a function ``(config, closure, manifold, key) -> (table, info)``: ``table`` the
``[N, D]`` points of the closure's nodes (``D`` the manifold's ambient size for ``config.dim``)
in ``config.dtype``, ``info`` a dict for ``results.json`` or ``None``. The task pads the table
with origin rows (:mod:`embedlab.train.sharding`).

* ``"uniform"``: ``exp_o(v)`` with ``v`` uniform in ``[-init_scale, init_scale]`` at the origin
  ``o`` (Nickel & Kiela initialise uniformly in a tiny box around the origin);
* ``"nested_caps"``: the closure built into the Poincaré ball without training
  (:mod:`embedlab.models.nested_caps`), then optionally bent to fit the DAG
  (:mod:`embedlab.models.cap_refinement`, ``nested_caps.refine.steps > 0``);
* ``"init_from"``: another run's table (``config.init_from``: its ``embeddings.npz`` or
  workdir), matched by node name and projected into this run's manifold: a fine-tune in one
  command.

:func:`strategy` picks one from the config (``init_from`` when it is set, else ``init``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from embedlab.geometry.base import Manifold
from embedlab.graphs import Closure
from embedlab.models import cap_refinement
from embedlab.models import nested_caps as nested_caps_lib


def _dtype_and_curvature(config: ml_collections.ConfigDict):
  dtype = jnp.dtype(config.dtype)
  return dtype, jnp.asarray(config.curvature, dtype)


def uniform(config, closure: Closure, manifold: Manifold, key):
  """N&K's start: every node within ``init_scale`` of the origin (tangent coordinates)."""
  dtype, c = _dtype_and_curvature(config)
  shape = (closure.num_nodes, manifold.ambient_dim(config.dim))
  origin = manifold.origin(shape, c=c, dtype=dtype)
  v = jax.random.uniform(key, origin.shape, dtype, -config.init_scale, config.init_scale)
  return manifold.expmap(origin, manifold.proj_tangent(origin, v, c=c), c=c), None


def nested_caps(config, closure: Closure, manifold: Manifold, key):
  """The nested-caps construction (seeded by ``config.seed``), refined when asked.

  Not projected: the deepest caps lie past the float64 ball margin (r ~ 23.7) and the
  construction's ranks need them there; training steps project the rows they move.
  """
  del manifold, key  # Poincaré-ball coordinates by construction (checked with the config).
  dtype, c = _dtype_and_curvature(config)
  edges = np.asarray(closure.edges)
  built = nested_caps_lib.nested_caps(edges, closure.num_nodes, dim=config.dim,
                                      margin=config.nested_caps.margin, c=float(c),
                                      seed=config.seed)
  refine = config.nested_caps.refine
  info = None
  if refine.steps > 0:
    tick = time.perf_counter()
    built, rounds = cap_refinement.refine_caps(
        edges, closure.num_nodes, built, steps=refine.steps,
        learning_rate=refine.learning_rate, margin=refine.margin, mine_every=refine.mine_every,
        c=float(c), progress=config.progress)
    info = {"seconds": round(time.perf_counter() - tick, 3),
            "rounds": [dataclasses.asdict(r) for r in rounds]}
    first, last = rounds[0], rounds[-1]
    print(f"nested caps refined in {info['seconds']:.0f} s ({refine.steps} steps): "
          f"ancestor pairs outside their caps {first.ancestor_violations} -> "
          f"{last.ancestor_violations}, non-ancestor pairs held out {last.pool}")
    info = {"nested_caps_refinement": info}
  return jnp.asarray(built.points, dtype), info


def init_from(config, closure: Closure, manifold: Manifold, key):
  """Another run's table, in this closure's node order, projected onto ``manifold``."""
  del key
  dtype, c = _dtype_and_curvature(config)
  vectors = vectors_from(config.init_from, closure, manifold, dim=config.dim)
  return manifold.proj(jnp.asarray(vectors, dtype), c=c), None


def vectors_from(path, closure: Closure, manifold: Manifold, *, dim: int) -> np.ndarray:
  """The ``[N, D]`` table of another run, in ``closure``'s node order.

  ``path`` is that run's ``embeddings.npz`` or its workdir. The file is matched to the closure
  by node name, so a run on the same nodes in any order can seed this one; its geometry and
  shape must match. A float32 table may seed a float64 run (the usual way to continue near the
  boundary with float64's smaller margin).
  """
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / "embeddings.npz"
  if not path.is_file():
    raise FileNotFoundError(f"init_from: {path} does not exist (expected a run's "
                            "embeddings.npz or the workdir holding it).")
  with np.load(path) as stored:
    missing = {"names", "vectors", "geometry"} - set(stored.files)
    if missing:
      raise ValueError(f"init_from: {path} lacks {sorted(missing)}; expected the "
                       "embeddings.npz a hierarchy run writes.")
    names, vectors, stored_geometry = stored["names"], stored["vectors"], str(stored["geometry"])
  if stored_geometry != manifold.name:
    raise ValueError(f"init_from: {path} holds {stored_geometry!r} points; this run's "
                     f"geometry is {manifold.name!r}.")
  ambient = manifold.ambient_dim(dim)
  if vectors.shape != (len(names), ambient):
    raise ValueError(f"init_from: {path} holds vectors {vectors.shape}; expected "
                     f"[{len(names)}, {ambient}] (dim {dim}).")
  row_of = {str(name): i for i, name in enumerate(names)}
  missing_names = [n for n in closure.names if n not in row_of]
  if missing_names:
    raise ValueError(f"init_from: {path} lacks {len(missing_names)} of this closure's "
                     f"{closure.num_nodes} nodes, e.g. {missing_names[0]!r}.")
  if not np.all(np.isfinite(vectors)):
    raise ValueError(f"init_from: {path} holds non-finite vectors.")
  return vectors[[row_of[n] for n in closure.names]]


INITS = {"uniform": uniform, "nested_caps": nested_caps, "init_from": init_from}
# The values config.init takes; "init_from" is chosen by setting config.init_from instead.
INIT_CHOICES = ("uniform", "nested_caps")


def strategy(config: ml_collections.ConfigDict) -> str:
  """The key of :data:`INITS` a config selects."""
  return "init_from" if config.init_from is not None else config.init
