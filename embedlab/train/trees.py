"""Tree embeddings without training (Sala, De Sa, Gu & Ré, ICML 2018): build, evaluate, report.

Not a training task: :func:`run` loads a graph, builds the embedding in one shot (the
combinatorial construction of :mod:`embedlab.models.combinatorial` on a BFS spanning tree, or
h-MDS of :mod:`embedlab.models.hmds` on the graph distances), evaluates distortion and MAP
against the *original* graph (:mod:`embedlab.evals.distortion`) and writes to the workdir:

* ``config.json``: the config (overwritten: a rerun replaces the whole result);
* ``embeddings.npz``: ``points`` (float64 Poincaré coordinates), ``ids`` (original node ids),
  ``parent`` (the spanning tree, combinatorial only), the scale, and for high precision the
  exact fixed-point coordinates as hex strings ``fixed_hex`` with ``frac_bits``
  (``x = int(h, 16) / 2**frac_bits``);
* ``<dataset>_<method>_dim2.png`` for 2-D embeddings (:func:`embedlab.train.plots.plot_tree`);
* ``results.json``: metrics, sizes, timings (``build_seconds``, ``eval_seconds``,
  ``wall_seconds_this_run``) and the machine (:mod:`embedlab.train.outputs`). Nothing is
  trained, so it has none of the training loop's keys (``epochs_completed``,
  ``train_seconds_this_run``).
"""

from __future__ import annotations

import pathlib
import time

import ml_collections
import numpy as np

from embedlab import data as data_lib
from embedlab import models
from embedlab.evals import distortion
from embedlab.train import loop
from embedlab.train import outputs
from embedlab.train import plots

# config.tau: a number, or a rule: "eps" (the tau whose worst-case distortion bound is
# 1 + config.eps) or "precision" (the largest tau the bits afford).
TAU_RULES = ("eps", "precision")
# h-MDS holds a few dense N x N float64 matrices (cosh, Gram, eigenvectors).
HMDS_MAX_NODES = 8192


def load_graph(config: ml_collections.ConfigDict) -> data_lib.Graph:
  """``config.dataset``: a name in :data:`embedlab.data.TREES`, or ``"balanced"`` (no data)."""
  if config.dataset == "balanced":
    return data_lib.balanced_tree(branching=config.balanced.branching,
                                  depth=config.balanced.depth)
  return data_lib.load_named_tree(config.dataset, data_dir=config.data_dir)


def _precision(text: str) -> str | int:
  if text == "float64":
    return text
  try:
    return int(text)
  except ValueError:
    raise ValueError(f"precision={text!r}: expected 'float64' or a number of bits") from None


def _tau_rule(text: str) -> float | str:
  if text in TAU_RULES:
    return text
  try:
    return float(text)
  except ValueError:
    raise ValueError(f"tau={text!r}: expected a number or one of {TAU_RULES}") from None


def _combinatorial(config, graph):
  parent = data_lib.bfs_tree(graph, root=config.root)
  tau, eps = _tau_rule(config.tau), None
  if tau == "eps":
    tau, eps = None, config.eps
  elif tau == "precision":
    tau = None  # neither tau nor eps: the largest tau the bits afford
  emb = models.combinatorial_embedding(parent, dim=config.dim, tau=tau, eps=eps,
                                       precision=_precision(config.precision))
  tree_edges = int(np.sum(parent >= 0))
  info = {"tau": emb.tau, "precision": emb.precision, "bits_needed": emb.bits_needed,
          "max_radius": float(np.max(emb.radii)), "tree_edges": tree_edges,
          "dropped_edges": graph.num_edges - tree_edges, "roots": int(np.sum(parent < 0))}
  arrays = {"parent": parent, "tau": emb.tau, "radii": emb.radii}
  if emb.fixed is not None:
    arrays["fixed_hex"] = np.vectorize(lambda v: format(v, "x"), otypes=[str])(emb.fixed)
    arrays["frac_bits"] = emb.frac_bits
    rows = emb.distance_rows
  else:
    rows = distortion.poincare_distance_rows(emb.points)
  tree = np.stack([np.flatnonzero(parent >= 0), parent[parent >= 0]], axis=1)
  return emb.points, rows, emb.tau, info, arrays, tree


def _hmds(config, graph):
  if graph.num_nodes > HMDS_MAX_NODES:
    raise ValueError(f"h-MDS needs dense {graph.num_nodes} x {graph.num_nodes} matrices; this "
                     f"runner stops at {HMDS_MAX_NODES} nodes.")
  graph_dist = distortion.graph_distances(graph.edges, num_nodes=graph.num_nodes)
  if np.any(graph_dist < 0):
    raise ValueError(f"{graph.source} is not connected; h-MDS needs every distance.")
  points = models.hmds(graph_dist, dim=config.dim, scale=config.scale)
  info = {"scale": config.scale}
  arrays = {"scale": config.scale}
  return (points, distortion.poincare_distance_rows(points), config.scale, info, arrays,
          graph.edges)


BUILDERS = {"combinatorial": _combinatorial, "hmds": _hmds}


def run(config: ml_collections.ConfigDict, workdir) -> loop.Outcome:
  """Builds ``config.method`` on ``config.dataset``, evaluates it and writes ``workdir``."""
  wall_start = time.perf_counter()
  if config.method not in BUILDERS:
    raise ValueError(f"unknown method {config.method!r}; expected one of {sorted(BUILDERS)}")
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  outputs.write_json(workdir / "config.json", outputs.config_dict(config))

  graph = load_graph(config)
  tick = time.perf_counter()
  points, rows, scale, info, arrays, drawn = BUILDERS[config.method](config, graph)
  build_seconds = time.perf_counter() - tick
  tick = time.perf_counter()
  metrics = distortion.distortion_metrics(
      rows, graph.edges, num_nodes=graph.num_nodes, scale=scale,
      max_sources=config.eval.max_sources, seed=config.eval.seed,
      collapse_tol=config.eval.collapse_tol, progress=config.progress)
  eval_seconds = time.perf_counter() - tick

  np.savez_compressed(workdir / "embeddings.npz", points=points, ids=graph.ids,
                      method=config.method, **arrays)
  results = outputs.new_results(
      finished=True, task="trees", method=config.method, dataset=config.dataset,
      graph=graph.source, num_nodes=graph.num_nodes, num_edges=graph.num_edges,
      dim=config.dim, **info, metrics=metrics, build_seconds=round(build_seconds, 3),
      eval_seconds=round(eval_seconds, 3))
  if config.plot and config.dim == 2:
    # The construction's radii are exact, also where float64 points sit on the rim.
    radii = arrays["radii"] if "radii" in arrays else plots.disk_radii(points)
    name = f"{config.dataset}_{config.method}_dim2.png"
    plots.plot_tree(points, drawn, radii, workdir / name, title=plots.tree_title(results))
    results["plot"] = name
  outputs.write_results(workdir, results, wall_start=wall_start)
  return loop.Outcome(params={"points": points}, results=results)
