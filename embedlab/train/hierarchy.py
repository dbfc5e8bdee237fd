"""The hierarchy-embedding task (Nickel & Kiela 2017/2018) for the shared loop.

The task composes named parts, each with its home:

* the config's checks, the negative-sampling settings and the learning-rate schedule:
  :mod:`embedlab.train.hierarchy_settings`;
* the closure (:mod:`embedlab.data`), and with ``link_prediction.test_fraction > 0`` a share of
  its non-basic rows held out (:mod:`embedlab.data.splits`): training sees the rest, negatives
  exclude only training rows, and evaluation ranks the held-out rows against non-edges
  (filtered) next to the reconstruction of the training rows;
* the negative sampler (:mod:`embedlab.losses.negatives`): an epoch's batches of closure rows,
  each batch's negatives, the loss with them, and the hard-negative pools it refreshes from the
  table (:meth:`HierarchyTask.refresh_data`, which the loop calls before each jitted call);
* the initial table (:mod:`embedlab.train.hierarchy_init`);
* the optimizer (:mod:`embedlab.optim`), and for large tables its sparse row update
  (:func:`embedlab.optim.sparse_rows`): a step touches ``B (K + 2)`` rows, so it differentiates
  with respect to those rows and updates only them, at a cost independent of the table size;
* re-seating of stuck leaves (:mod:`embedlab.train.reseat`), evaluation
  (:mod:`embedlab.evals.reconstruction`) and the picture (:mod:`embedlab.train.plots`).

Parameters: ``{"embeddings": [table_rows, D]}``, the node table padded with origin rows to a
multiple of :data:`embedlab.train.sharding.ROW_MULTIPLE` (so it row-shards evenly); rows past
``num_nodes`` are never sampled. ``config.model="translational"`` (flat geometries) adds
``{"translation": [D]}``, N&K's translational baseline ``d(u + r, v)``.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from embedlab import data as data_lib
from embedlab import geometry
from embedlab import optim
from embedlab.data import splits
from embedlab.evals import reconstruction
from embedlab.losses import negatives as negatives_lib
from embedlab.train import hierarchy_init
from embedlab.train import hierarchy_settings as settings
from embedlab.train import plots
from embedlab.train import reseat as reseat_lib
from embedlab.train import sharding as sharding_lib


class HierarchyTask:
  """Builds data, parameters, optimizer and the pure step from a hierarchy config."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.manifold = geometry.get(config.geometry)
    settings.check_config(config, self.manifold)
    self.dtype = jnp.dtype(config.dtype)
    self.c = jnp.asarray(config.curvature, self.dtype)
    self.translational = config.model == "translational"
    self.closure = data_lib.load_named_closure(config.dataset, data_dir=config.data_dir,
                                               format=config.dataset_format)
    self.split = None
    if config.link_prediction.test_fraction > 0:
      self.split = splits.link_prediction_split(
          self.closure, test_fraction=config.link_prediction.test_fraction,
          seed=config.link_prediction.seed)
    self.train_closure = self.split.train if self.split else self.closure
    self.num_nodes = self.closure.num_nodes
    self.table_rows = sharding_lib.padded_rows(self.num_nodes)
    self.ambient = self.manifold.ambient_dim(config.dim)
    self.init_info = None  # what the init strategy reports, for results.json

    self.sampler = negatives_lib.negative_sampler(
        settings.negative_settings(config), self.train_closure, manifold=self.manifold,
        c=self.c, batch_size=config.batch_size, table_rows=self.table_rows)
    self.steps_per_epoch = self.sampler.steps_per_epoch
    self.data = self.sampler.data()
    if config.reseat.every_epochs:
      self._leaves = reseat_lib.leaf_structure(self.train_closure,
                                               max_parents=config.reseat.max_parents)

    self._schedule = settings.learning_rate_schedule(config, self.steps_per_epoch)
    self.optimizer = settings.OPTIMIZERS[config.optim.name](
        self._schedule, manifold=self.manifold, c=self.c, update=config.optim.update_rule)
    # Dense updates win on small tables (a CPU step is dominated by per-op overhead there);
    # sparse ones when the table is much larger than the rows a step touches. The translation
    # vector is shared by every pair, so the translational model always takes the dense step;
    # so do samplers whose negatives are the whole table.
    per_step = self.sampler.negatives_per_step
    self.sparse = per_step is not None and not self.translational and (
        config.row_updates == "sparse" or (
            config.row_updates == "auto"
            and self.table_rows > 8 * (2 * config.batch_size + per_step)))
    self.rows = (optim.sparse_rows(self.optimizer, manifold=self.manifold, c=self.c,
                                   linear=config.linear_rows) if self.sparse else None)

  # --- parameters ---------------------------------------------------------------------------
  def init_params(self, key):
    """The init strategy's table (:mod:`embedlab.train.hierarchy_init`), padding rows at the
    origin, and a zero translation for the translational model."""
    m, c = self.manifold, self.c
    init = hierarchy_init.INITS[hierarchy_init.strategy(self.config)]
    table, self.init_info = init(self.config, self.train_closure, m, key)
    padding = m.origin((self.table_rows - self.num_nodes, self.ambient), c=c, dtype=self.dtype)
    params = {"embeddings": jnp.concatenate([table, padding], axis=0)}
    if self.translational:
      params["translation"] = jnp.zeros((self.ambient,), self.dtype)
    return params

  def learning_rate(self, step: int) -> float:
    return float(self._schedule(step))

  # --- step ---------------------------------------------------------------------------------
  def epoch_batches(self, key, data):
    return self.sampler.epoch(key, data)

  def train_step(self, params, opt_state, batch, key, data):
    pairs, negatives = self.sampler.draw(key, batch, data)
    if self.rows is None:
      def loss_of_params(p):
        return self.sampler.loss(p["embeddings"], pairs, negatives,
                                 translation=p.get("translation"))

      loss, grads = jax.value_and_grad(loss_of_params)(params)
      updates, opt_state = self.optimizer.update(grads, opt_state, params)
      params = optim.apply_updates(params, updates, manifold=self.manifold, c=self.c)
      return params, opt_state, loss
    # The same loss on the gathered rows: position i of the rows holds the node ids[i].
    ids, row_pairs, row_negatives = negatives_lib.touched_rows(pairs, negatives)
    loss, row_grads = jax.value_and_grad(
        lambda rows: self.sampler.loss(rows["embeddings"], row_pairs, row_negatives))(
            optim.gather_rows(params, ids))
    params, opt_state = self.rows.update(row_grads, opt_state, params, ids)
    return params, opt_state, loss

  def refresh_data(self, params, data, epoch: int):
    """Data derived from the table (hard-negative pools), before each jitted call."""
    return self.sampler.refresh(params["embeddings"], data, epoch)

  def refresh_params(self, params, epoch: int):
    """The loop calls this before each jitted call: every ``reseat.every_epochs`` from
    ``reseat.from_epoch`` on, moves stuck leaves next to a parent (:mod:`embedlab.train.reseat`).

    Returns ``(params, info)``; ``info`` is ``None`` when nothing ran. A function of the table
    and the epoch (its key is ``PRNGKey(seed + epoch)``), so a resumed run repeats it.
    Optimizer state of a moved row (Riemannian Adam's moments) is kept as it was.
    """
    reseat = self.config.reseat
    every = reseat.every_epochs
    if not every or epoch < reseat.from_epoch or (epoch - reseat.from_epoch) % every:
      return params, None
    leaves, ancestors, parents = self._leaves
    key = jax.random.PRNGKey(self.config.seed + epoch)
    table, info = reseat_lib.reseat_leaves(
        params["embeddings"], key, leaves=leaves, ancestors=ancestors, parents=parents,
        manifold=self.manifold, c=self.c, num_nodes=self.num_nodes,
        max_mean_rank=reseat.max_mean_rank, radii=tuple(reseat.radii),
        num_directions=reseat.num_directions, chunk_size=1024)
    return {**params, "embeddings": table}, info

  # --- evaluation and outputs ----------------------------------------------------------------
  def evaluate(self, params, *, final: bool = False) -> dict[str, float]:
    ev = self.config.eval
    # Periodic evaluations of big graphs may sample queries; the final one can rank them all.
    max_queries = None if final and ev.final_all_queries else ev.max_queries
    common = dict(manifold=self.manifold, c=self.c, num_nodes=self.num_nodes,
                  symmetric=ev.symmetric, max_queries=max_queries, seed=self.config.seed,
                  translation=params.get("translation"))
    # Reconstruction of what was trained on (the whole closure unless edges are held out).
    metrics = reconstruction.reconstruction_metrics(
        params["embeddings"], self.train_closure, **common)
    if self.split is not None:
      held_out = reconstruction.reconstruction_metrics(
          params["embeddings"], self.split.test, known_edges=self.split.all_edges, **common)
      metrics.update({f"link_{k}": v for k, v in held_out.items()})
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v)
            for k, v in metrics.items()}

  def embeddings(self, params) -> np.ndarray:
    return np.asarray(params["embeddings"][: self.num_nodes])

  def finalize(self, params, workdir: pathlib.Path, results: dict) -> None:
    vectors = self.embeddings(params)
    extra = {}
    if self.translational:
      extra["translation"] = np.asarray(params["translation"])
    if self.init_info is not None:
      results.update(self.init_info)
    np.savez(workdir / "embeddings.npz", names=np.asarray(self.closure.names), vectors=vectors,
             geometry=self.manifold.name, curvature=float(self.c), **extra)
    if self.config.plot:
      # A dataset given as a path is named by its file (the picture stays in the workdir).
      dataset = pathlib.Path(self.config.dataset).name.split(".")[0]
      path = workdir / f"{dataset}_{self.manifold.name}_dim{self.config.dim}.png"
      title = plots.hierarchy_title(dataset, manifold=self.manifold,
                                    dim=self.config.dim, metrics=results["metrics"])
      plots.plot_hierarchy(vectors, self.closure, manifold=self.manifold, c=float(self.c),
                           path=path, title=title)
      results["plot"] = path.name
