"""The hierarchy-embedding task (Nickel & Kiela 2017/2018) for the shared loop.

Data: a transitive closure (rows ``child, ancestor``) lives on device as int32 arrays; each
epoch is a random permutation of its edges cut into batches (the last partial batch is dropped,
as in the reference implementation), and negatives for each child are drawn inside the jitted
step, excluding the child and its true ancestors.

Parameters: ``{"embeddings": [table_rows, D]}``, the node table padded with origin rows to a
multiple of :data:`embedlab.train.sharding.ROW_MULTIPLE` (so it row-shards evenly); rows past
``num_nodes`` are never sampled. ``config.model="translational"`` (Euclidean only) adds
``{"translation": [D]}``, N&K's translational baseline ``d(u + r, v)``.

Link prediction (``config.link_prediction.test_fraction > 0``): a share of the closure's
non-basic edges is held out (:mod:`embedlab.data.splits`), training sees the rest (negatives
exclude only training edges), and evaluation ranks the held-out edges against non-edges
(filtered) next to the reconstruction of the training edges.

Hard negatives (``config.hard_negatives = H > 0``): each pair also gets ``H`` negatives drawn
uniformly from its child's ``hard_pool`` nearest non-ancestors
(:func:`embedlab.losses.hierarchy.nearest_non_ancestors`), recomputed from the current table
every ``hard_every_epochs`` from ``hard_from_epoch`` on by :meth:`HierarchyTask.refresh_data`,
which the loop calls before each jitted call (and so again after a resume: the pools are a
function of the table). They are ordinary, unweighted members of the softmax.

Sparse updates (``config.row_updates``: ``auto`` (default), ``dense`` or ``sparse``): a step
touches ``B (K + 2)`` rows, so the step gathers those rows, differentiates w.r.t. them, sums the
gradient of repeated ids, updates only them and scatters them back — the same result as the
dense update for stateless RSGD (rows with zero gradient do not move) at a cost independent of
the table size. Per-row optimizer
state (Riemannian Adam's moments) is gathered and scattered alongside ("lazy" Adam: untouched
rows keep their moments, as in sparse Adam implementations). Stateless RSGD with a step
``proj(x + v)`` (``update_rule="retr"``, or any rule in Euclidean space) takes a cheaper path:
its step is linear in the summed gradient before the projection, so each occurrence's step is
scatter-added straight into the table and only the touched rows are re-projected (no
table-sized gradient buffer). Both give the same result up to float rounding
(``tests/train/test_hierarchy_sparse_fast.py``). On WordNet nouns at batch 50 this is ~1.3x per
step, and ~3.3x together with the pooled redraws of ``sample_negatives``
(``benchmarks/hierarchy_step.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from embedlab import data as data_lib
from embedlab.data import splits
from embedlab import geometry
from embedlab import optim
from embedlab.evals import reconstruction
from embedlab.losses import hierarchy as hierarchy_loss
from embedlab.models import cap_refinement
from embedlab.models import nested_caps as nested_caps_lib
from embedlab.train import plots
from embedlab.train import reseat as reseat_lib
from embedlab.train import sharding as sharding_lib

OPTIMIZERS = {"rsgd": optim.riemannian_sgd, "radam": optim.riemannian_adam}
NEGATIVE_SOURCES = ("uniform", "unigram", "all", "batch")
ROW_UPDATES = ("auto", "dense", "sparse")
MODELS = ("distance", "translational")
# "uniform": N&K's tiny box around the origin; "nested_caps": embedlab.models.nested_caps.
INITS = ("uniform", "nested_caps")
# presample_negatives="auto" draws an epoch's negatives up front when there are at most this
# many (mammals, K = 50: 327k); larger graphs draw them in each step (bounded memory).
PRESAMPLE_MAX_DRAWS = 1 << 22


def _choice(value: str, valid, what: str) -> str:
  if value not in valid:
    raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(valid)}")
  return value


class HierarchyTask:
  """Builds data, parameters, optimizer and the pure step from a hierarchy config."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.refinement = None  # what init_params' cap refinement did, for results.json
    self.manifold = geometry.get(config.geometry)
    _choice(config.optim.name, OPTIMIZERS, "optimizer")
    _choice(config.negatives_from, NEGATIVE_SOURCES, "negatives_from")
    if config.dim < 1 or config.batch_size < 1 or config.num_negatives < 1:
      raise ValueError("dim, batch_size and num_negatives must be positive; got "
                       f"{config.dim}, {config.batch_size}, {config.num_negatives}")
    if config.dtype not in ("float32", "float64"):
      raise ValueError(f"unknown dtype {config.dtype!r}; expected 'float32' or 'float64'")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
      # float64 tables need x64 mode; it is process-wide, so a float64 run turns it on.
      jax.config.update("jax_enable_x64", True)
    self.dtype = jnp.dtype(config.dtype)
    _choice(config.model, MODELS, "model")
    self.translational = config.model == "translational"
    if self.translational and self.manifold.name != "euclidean":
      raise ValueError(f"model='translational' adds a vector to points, so it needs "
                       f"geometry='euclidean'; got {config.geometry!r}.")
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
    self.c = jnp.asarray(config.curvature, self.dtype)
    _check_init(config, self.manifold.name)

    edges = self.train_closure.edges.astype(np.int32)
    offsets, targets = data_lib.csr(edges, self.num_nodes)
    self.max_degree = int(np.max(np.diff(offsets))) if edges.size else 0
    if edges.shape[0] < config.batch_size:
      raise ValueError(f"batch_size {config.batch_size} exceeds the {edges.shape[0]} edges of "
                       f"{config.dataset!r}")
    self.steps_per_epoch = edges.shape[0] // config.batch_size
    self.data = {"edges": jnp.asarray(edges),
                 "adjacency": hierarchy_loss.build_adjacency(offsets, targets,
                                                             num_nodes=self.num_nodes)}
    self.hard_negatives = int(config.get("hard_negatives", 0))
    if self.hard_negatives:
      _check_hard_negatives(config, self.num_nodes)
    if config.negatives_from == "batch" or self.hard_negatives:
      if config.negatives_from == "batch" and config.batch_negatives < 1:
        raise ValueError(f"batch_negatives must be positive, got {config.batch_negatives}")
      # Row u: u itself, then its ancestors, padded with u (so padding excludes nothing new).
      own = np.arange(self.num_nodes, dtype=np.int32)
      width = self.max_degree + 1
      excluded = np.repeat(own[:, None], width, axis=1)
      counts = np.diff(offsets)
      rows = np.repeat(own, counts)
      within = np.arange(targets.size) - np.repeat(offsets[:-1], counts)
      excluded[rows, 1 + within] = targets
      self.data["excluded"] = jnp.asarray(excluded)
    if self.hard_negatives:
      # Filled by refresh_data from the current table; off (masked) until its first refresh.
      self.data["hard_pool"] = jnp.zeros((self.num_nodes, config.hard_pool), jnp.int32)
      self.data["hard_on"] = jnp.zeros((), bool)
      self._pool_epoch = None
    self.rank_weighting = float(config.get("rank_weighting", 0.0))
    if self.rank_weighting:
      if not self.hard_negatives or self.rank_weighting < 0:
        raise ValueError(f"rank_weighting (> 0) weighs pairs by ranks estimated from the "
                         f"hard-negative pools, so it needs hard_negatives > 0; got "
                         f"rank_weighting={self.rank_weighting}, hard_negatives="
                         f"{self.hard_negatives}.")
      # Edge e = (u, a) sits at excluded[u, 1 + within[e]] (built above: hard negatives on),
      # as edges and their CSR share one order.
      self._edge_slots = jnp.asarray(rows.astype(np.int64) * width + 1 + within)
      # Uniform until the first pool refresh replaces it (refresh_data).
      self.data["pair_cdf"] = jnp.arange(1, edges.shape[0] + 1, dtype=jnp.float32) / edges.shape[0]
    self.reseat = config.get("reseat") or ml_collections.ConfigDict({"every_epochs": 0})
    if self.reseat.every_epochs:
      # The loop calls refresh_params once per jitted call of epochs_per_call epochs, so the
      # schedule must land on those boundaries (a resumed run then repeats it exactly).
      per_call = config.epochs_per_call
      if (self.reseat.every_epochs < 0 or self.reseat.from_epoch < 0
          or self.reseat.every_epochs % per_call or self.reseat.from_epoch % per_call):
        raise ValueError(f"reseat.every_epochs and reseat.from_epoch must be non-negative "
                         f"multiples of epochs_per_call={per_call}; got "
                         f"{self.reseat.every_epochs} and {self.reseat.from_epoch}")
      self._leaves = reseat_lib.leaf_structure(edges, self.num_nodes,
                                               max_parents=self.reseat.max_parents)
    if config.negatives_from == "unigram":
      # Node frequency in the closure, damped by ^0.75 (word2vec, N&K reference code;
      # gensim's PoincareModel uses raw counts).
      counts = np.bincount(edges.reshape(-1), minlength=self.num_nodes).astype(np.float64)
      weights = counts ** 0.75
      self.data["cdf"] = jnp.asarray(np.cumsum(weights) / weights.sum(), jnp.float32)

    _choice(config.row_updates, ROW_UPDATES, "row_updates")
    # Dense updates win on small tables (a CPU step is dominated by per-op overhead there);
    # sparse ones when the table is much larger than the rows a step touches.
    self.batch_negatives = config.negatives_from == "batch"
    self.negatives_per_pair = config.num_negatives + self.hard_negatives
    # batch_negatives >= num_nodes: every node (once) is a negative of every pair, weighted
    # K / N: the noise-free loss of negatives_from="all" without its dense [N, N] adjacency
    # (a [B, N] distance matrix per step: an accelerator's job on large graphs).
    self.every_node_negative = (self.batch_negatives
                                and config.batch_negatives >= self.num_nodes)
    touched = config.batch_size * 2 + (config.batch_negatives if self.batch_negatives else
                                       config.batch_size * self.negatives_per_pair)
    self.all_negatives = config.negatives_from == "all"
    if self.all_negatives and "dense" not in self.data["adjacency"]:
      raise ValueError(f"negatives_from='all' needs a small graph (at most 4096 nodes); "
                       f"{config.dataset!r} has {self.num_nodes}. Sample negatives instead.")
    # The translation vector is shared by every pair: the row-gathering step has no place for
    # it, so the translational model always takes the dense step.
    self.sparse = not self.all_negatives and not self.translational and (
        config.row_updates == "sparse" or (
        config.row_updates == "auto" and self.table_rows > 8 * touched))
    # Stateless RSGD whose step is proj(x + v) (retr; expmap too where it is x + v) is linear
    # in the summed gradient before the projection, so a sparse step can scatter-add each
    # occurrence's step straight into the table (see _linear_sparse_step).
    self.linear_rows = self.sparse and config.optim.name == "rsgd" and (
        config.optim.update_rule == "retr" or self.manifold.name == "euclidean")

    _choice(config.presample_negatives, ("auto", "yes", "no"), "presample_negatives")
    sampled = config.negatives_from in ("uniform", "unigram")
    epoch_draws = self.steps_per_epoch * config.batch_size * config.num_negatives
    self.presample = sampled and (config.presample_negatives == "yes" or (
        config.presample_negatives == "auto" and epoch_draws <= PRESAMPLE_MAX_DRAWS))

    # Benchmarks and tests switch this off to time and compare the full-size redraw rounds.
    self.fast_negatives = True
    burn_in_steps = config.burn_in_epochs * self.steps_per_epoch
    # The decay starts after the burn-in, or later at optim.decay_begin_epoch: a long run at
    # constant rate can then end annealed (the rate, not the epoch count, sets SGD's noise floor).
    decay_begin = config.optim.get("decay_begin_epoch")
    if decay_begin is None:
      decay_begin = config.burn_in_epochs
    elif not config.burn_in_epochs <= decay_begin < config.epochs:
      raise ValueError(f"optim.decay_begin_epoch must be in [burn_in_epochs, epochs) = "
                       f"[{config.burn_in_epochs}, {config.epochs}); got {decay_begin}")
    decayed = optim.decay_schedule(
        config.optim.learning_rate, kind=config.optim.decay,
        begin_step=decay_begin * self.steps_per_epoch,
        end_step=config.epochs * self.steps_per_epoch,
        final_multiplier=config.optim.final_multiplier)
    self._schedule = optim.burn_in_schedule(
        decayed, burn_in_steps=burn_in_steps, burn_in_multiplier=config.burn_in_multiplier)
    self.optimizer = OPTIMIZERS[config.optim.name](
        self._schedule, manifold=self.manifold, c=self.c, update=config.optim.update_rule)

  # --- parameters ---------------------------------------------------------------------------
  def init_params(self, key):
    """Points ``exp_o(v)`` with ``v`` uniform in ``[-init_scale, init_scale]`` at the origin ``o``
    (N&K initialise uniformly in a tiny box around the origin), or another run's table
    (``config.init_from``, projected into this run's ball); padding rows at ``o``."""
    m, c = self.manifold, self.c
    if self.config.get("init_from"):
      table = m.proj(jnp.asarray(self._vectors_from(self.config.init_from), self.dtype), c=c)
    elif self.config.get("init", "uniform") == "nested_caps":
      # Not projected: the deepest caps lie past the float64 ball margin (r ~ 23.7) and the
      # construction's ranks need them there; training steps project the rows they move.
      built = nested_caps_lib.nested_caps(
          np.asarray(self.train_closure.edges), self.num_nodes, dim=self.config.dim,
          margin=self.config.nested_caps.margin, c=float(self.c), seed=self.config.seed)
      refine = self.config.nested_caps.refine
      if refine.steps > 0:
        tick = time.perf_counter()
        built, rounds = cap_refinement.refine_caps(
            np.asarray(self.train_closure.edges), self.num_nodes, built, steps=refine.steps,
            learning_rate=refine.learning_rate, margin=refine.margin,
            mine_every=refine.mine_every, c=float(self.c), progress=self.config.progress)
        self.refinement = {"seconds": round(time.perf_counter() - tick, 3),
                           "rounds": [dataclasses.asdict(r) for r in rounds]}
        first, last = rounds[0], rounds[-1]
        print(f"nested caps refined in {self.refinement['seconds']:.0f} s ({refine.steps} steps): "
              f"ancestor pairs outside their caps {first.ancestor_violations} -> "
              f"{last.ancestor_violations}, non-ancestor pairs held out {last.pool}")
      table = jnp.asarray(built.points, self.dtype)
    else:
      origin = m.origin((self.num_nodes, self.ambient), c=c, dtype=self.dtype)
      v = jax.random.uniform(key, origin.shape, self.dtype, -self.config.init_scale,
                             self.config.init_scale)
      table = m.expmap(origin, m.proj_tangent(origin, v, c=c), c=c)
    padding = m.origin((self.table_rows - self.num_nodes, self.ambient), c=c, dtype=self.dtype)
    params = {"embeddings": jnp.concatenate([table, padding], axis=0)}
    if self.translational:
      params["translation"] = jnp.zeros((self.ambient,), self.dtype)
    return params

  def _vectors_from(self, path: str) -> np.ndarray:
    """The ``[num_nodes, ambient]`` table of another run (``config.init_from``), in node order.

    ``path`` is that run's ``embeddings.npz`` or its workdir. The file is matched to this
    closure by node name, so a run on the same nodes in any order can seed this one; its
    geometry and shape must match. A float32 table may seed a float64 run (the usual way to
    continue near the boundary with float64's smaller margin).
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
    if stored_geometry != self.manifold.name:
      raise ValueError(f"init_from: {path} holds {stored_geometry!r} points; this run's "
                       f"geometry is {self.manifold.name!r}.")
    if vectors.shape != (len(names), self.ambient):
      raise ValueError(f"init_from: {path} holds vectors {vectors.shape}; expected "
                       f"[{len(names)}, {self.ambient}] (dim {self.config.dim}).")
    row_of = {str(name): i for i, name in enumerate(names)}
    missing_names = [n for n in self.closure.names if n not in row_of]
    if missing_names:
      raise ValueError(f"init_from: {path} lacks {len(missing_names)} of this closure's "
                       f"{self.num_nodes} nodes, e.g. {missing_names[0]!r}.")
    if not np.all(np.isfinite(vectors)):
      raise ValueError(f"init_from: {path} holds non-finite vectors.")
    return vectors[[row_of[n] for n in self.closure.names]]

  def learning_rate(self, step: int) -> float:
    return float(self._schedule(step))

  # --- step ---------------------------------------------------------------------------------
  def epoch_batches(self, key, data):
    edges = data["edges"]
    used = self.steps_per_epoch * self.config.batch_size
    if self.rank_weighting:
      # Pairs drawn with replacement, each with probability proportional to its weight.
      uniform = jax.random.uniform(key, (used,), data["pair_cdf"].dtype)
      order = jnp.minimum(jnp.searchsorted(data["pair_cdf"], uniform, side="right"),
                          edges.shape[0] - 1)
    else:
      order = jax.random.permutation(key, edges.shape[0])[:used]
    pairs = edges[order].reshape(self.steps_per_epoch, self.config.batch_size, 2)
    if not self.presample:
      return pairs
    # Negatives do not depend on the parameters, so a whole epoch's worth can be drawn in one
    # vectorised call before the scan: on small graphs sampling inside each step is a
    # third or more of the step.
    negatives, mask = self._negatives(jax.random.fold_in(key, 1), pairs.reshape(-1, 2), data)
    shape = pairs.shape[:2] + (self.negatives_per_pair,)
    return {"pairs": pairs, "negatives": negatives.reshape(shape), "mask": mask.reshape(shape)}

  def _negatives(self, key, pairs, data):
    # Without hard negatives the key is used as is: the same draws as before they existed.
    sample_key, hard_key = jax.random.split(key) if self.hard_negatives else (key, None)
    negatives, mask = hierarchy_loss.sample_negatives(
        sample_key, pairs[:, 0], num_negatives=self.config.num_negatives,
        num_nodes=self.num_nodes, adjacency=data["adjacency"], max_degree=self.max_degree,
        cumulative_weights=data.get("cdf"),
        redraw="pooled" if self.fast_negatives else "full")
    if not self.hard_negatives:
      return negatives, mask
    # H more per pair, uniform over u's pool of nearest non-ancestors (refresh_data), each an
    # ordinary negative of the softmax: the sum now leans on the negatives that outrank.
    columns = jax.random.randint(hard_key, (pairs.shape[0], self.hard_negatives), 0,
                                 self.config.hard_pool)
    hard = jnp.take_along_axis(data["hard_pool"][pairs[:, 0]], columns, axis=1)
    hard_mask = jnp.broadcast_to(data["hard_on"], hard.shape)
    return (jnp.concatenate([negatives, hard], axis=1),
            jnp.concatenate([mask, hard_mask], axis=1))

  def refresh_params(self, params, epoch: int):
    """The loop calls this before each jitted call: every ``reseat.every_epochs`` from
    ``reseat.from_epoch`` on, moves stuck leaves next to a parent (:mod:`embedlab.train.reseat`).

    Returns ``(params, info)``; ``info`` is ``None`` when nothing ran. A function of the table
    and the epoch (its key is ``PRNGKey(seed + epoch)``), so a resumed run repeats it.
    Optimizer state of a moved row (Riemannian Adam's moments) is kept as it was.
    """
    every = self.reseat.every_epochs
    if not every or epoch < self.reseat.from_epoch or (epoch - self.reseat.from_epoch) % every:
      return params, None
    leaves, ancestors, parents = self._leaves
    key = jax.random.PRNGKey(self.config.seed + epoch)
    table, info = reseat_lib.reseat_leaves(
        params["embeddings"], key, leaves=leaves, ancestors=ancestors, parents=parents,
        manifold=self.manifold, c=self.c, num_nodes=self.num_nodes,
        max_mean_rank=self.reseat.max_mean_rank, radii=tuple(self.reseat.radii),
        num_directions=self.reseat.num_directions, chunk_size=1024)
    return {**params, "embeddings": table}, info

  def refresh_data(self, params, data, epoch: int):
    """The loop calls this before each jitted call: recomputes the hard-negative pools from
    the current table every ``hard_every_epochs`` from ``hard_from_epoch`` on (and on resume)."""
    if not self.hard_negatives or epoch < self.config.hard_from_epoch:
      return data
    if (self._pool_epoch is not None
        and epoch - self._pool_epoch < self.config.hard_every_epochs):
      return data
    self._pool_epoch = epoch
    pool = _hard_pool(params["embeddings"], data["excluded"], manifold=self.manifold, c=self.c,
                      num_nodes=self.num_nodes, pool_size=self.config.hard_pool)
    data = {**data, "hard_pool": pool, "hard_on": jnp.ones((), bool)}
    if self.rank_weighting:
      outranked = _pool_outranked(params["embeddings"], pool, data["excluded"], self._edge_slots,
                                  manifold=self.manifold, c=self.c)
      weights = (1.0 + outranked.astype(jnp.float32)) ** self.rank_weighting
      cdf = jnp.cumsum(weights)
      data["pair_cdf"] = cdf / cdf[-1]
    return data

  def _batch_negatives_mask(self, anchors, shared, data):
    """``[B, S]``: false where shared node ``s`` is ``u_b`` itself or one of its ancestors.

    ``shared`` must be sorted. Each of the ``B (max_degree + 1)`` excluded ids is binary-searched
    in it and its hit cleared by a scatter: ``O(B deg log S)``, where comparing every pair would
    be ``O(B deg S)``. A node drawn twice keeps only its first copy (later copies are masked for
    every pair), so one search finds every copy that counts.
    """
    excluded = data["excluded"][anchors]                              # [B, max_degree + 1]
    size = shared.shape[0]
    position = jnp.searchsorted(shared, excluded)
    hit = shared[jnp.minimum(position, size - 1)] == excluded
    rows = jnp.arange(anchors.shape[0])[:, None]
    mask = jnp.ones((anchors.shape[0], size), bool)
    mask = mask.at[rows, jnp.where(hit, position, size)].set(False, mode="drop")
    first_copy = jnp.concatenate([jnp.ones((1,), bool), shared[1:] != shared[:-1]])
    return mask & first_copy[None, :]

  def _batch_negatives_loss(self, table, pairs, shared, mask, translation=None):
    """Every pair against the same ``S = batch_negatives`` uniform nodes, each weighted ``K / S``.

    ``S`` negatives shared by the batch cost one ``[B, S]`` distance matmul instead of ``B K``
    gathers, and weighting each by ``K / S`` (``K = num_negatives``) keeps this a sample of the
    same expected loss as ``negatives_from="all"``, with ``S`` samples per pair instead of ``K``:
    far less gradient noise per step (the "chunked" negatives of large-scale embedding
    trainers such as PyTorch-BigGraph).
    """
    m, c = self.manifold, self.c
    u, v = table[pairs[:, 0]], table[pairs[:, 1]]
    if translation is not None:
      u = u + translation
    shift = jnp.log(shared.shape[0] / self.config.num_negatives)
    return hierarchy_loss.nickel_kiela_loss(m.dist(u, v, c=c),
                                            m.pairwise_dist(u, table[shared], c=c) + shift,
                                            negative_mask=mask)

  def _all_negatives_loss(self, params, pairs, data):
    """Exact softmax over every node that is neither ``u`` nor an ancestor of ``u``."""
    m, c = self.manifold, self.c
    table = params["embeddings"]
    u, v = table[pairs[:, 0]], table[pairs[:, 1]]
    if self.translational:
      u = u + params["translation"]
    nodes = jnp.arange(self.table_rows)
    mask = ((nodes[None, :] < self.num_nodes) & (nodes[None, :] != pairs[:, :1])
            & ~jnp.pad(data["adjacency"]["dense"][pairs[:, 0]],
                       ((0, 0), (0, self.table_rows - self.num_nodes))))
    # Weighting every negative by K / N makes this the noise-free expectation of the sampled
    # loss with K negatives (num_negatives); K = N gives the exact softmax.
    shift = jnp.log(self.num_nodes / self.config.num_negatives)
    return hierarchy_loss.nickel_kiela_loss(m.dist(u, v, c=c),
                                            m.pairwise_dist(u, table, c=c) + shift,
                                            negative_mask=mask)

  def _dense_step(self, loss_of_params, params, opt_state):
    loss, grads = jax.value_and_grad(loss_of_params)(params)
    updates, opt_state = self.optimizer.update(grads, opt_state, params)
    return optim.apply_updates(params, updates, manifold=self.manifold, c=self.c), opt_state, loss

  def _sparse_step(self, loss_of_rows, ids, params, opt_state):
    """Updates only the rows ``ids`` (repeats allowed) of the table; see the module docstring.

    ``loss_of_rows`` takes the gathered ``[len(ids), D]`` rows: position ``i`` holds node
    ``ids[i]``, one variable per occurrence. The occurrences of each node are summed through a
    scatter-add; duplicated ids then compute identical updates, so the final scatter is
    deterministic. (No jnp.unique: sorting is the slowest op of such a step on CPU.)
    """
    m, c = self.manifold, self.c
    table = params["embeddings"]
    rows = table[ids]
    loss, row_grads = jax.value_and_grad(loss_of_rows)(rows)
    grads = jnp.zeros_like(table).at[ids].add(row_grads)[ids]
    sub_params = {"embeddings": rows}
    sub_state = _gather_rows(opt_state, ids, self.table_rows)
    updates, sub_state = self.optimizer.update({"embeddings": grads}, sub_state, sub_params)
    sub_params = optim.apply_updates(sub_params, updates, manifold=m, c=c)
    params = {"embeddings": table.at[ids].set(sub_params["embeddings"])}
    return params, _scatter_rows(opt_state, sub_state, ids, self.table_rows), loss

  def _linear_sparse_step(self, loss_of_rows, ids, params, opt_state):
    """:meth:`_sparse_step` for stateless RSGD with ``x' = proj(x - lr egrad2rgrad(x, g))``.

    ``egrad2rgrad`` is linear in ``g`` and every occurrence of a node sees the same pre-step
    row ``x``, so ``sum_i -lr egrad2rgrad(x, g_i)`` is the step of the summed gradient: one
    scatter-add of the per-occurrence steps into the table replaces the old path's full-table
    zero buffer and its scatter-add and gather. The projection then runs on the gathered touched
    rows and they are scattered back. Rows whose summed step is exactly zero stay bit-identical,
    as in :func:`embedlab.optim.riemannian_sgd`. Same result as the old path up to rounding
    (the order of the additions; ``proj(x + (proj(x - v) - x))`` there, ``proj(x - v)`` here).
    """
    m, c = self.manifold, self.c
    table = params["embeddings"]
    rows = table[ids]
    loss, row_grads = jax.value_and_grad(loss_of_rows)(rows)
    lr = jnp.asarray(self._schedule(opt_state.count), table.dtype)
    steps = -lr * m.egrad2rgrad(rows, row_grads.astype(table.dtype), c=c)
    table = table.at[ids].add(steps.astype(table.dtype))
    stepped = table[ids]
    projected = m.proj(stepped, c=c).astype(table.dtype)
    moved = jnp.any(stepped != rows, axis=-1, keepdims=True)
    # Always scattered: skipping it under lax.cond where proj changed nothing measured slower.
    table = table.at[ids].set(jnp.where(moved, projected, rows))
    opt_state = opt_state._replace(count=optax.safe_increment(opt_state.count))
    return {"embeddings": table}, opt_state, loss

  def train_step(self, params, opt_state, pairs, key, data):
    m, c = self.manifold, self.c
    if self.all_negatives:
      return self._dense_step(lambda p: self._all_negatives_loss(p, pairs, data),
                              params, opt_state)
    if self.batch_negatives:
      if self.every_node_negative:
        shared = jnp.arange(self.num_nodes, dtype=jnp.int32)
      else:
        shared = jnp.sort(jax.random.randint(key, (self.config.batch_negatives,), 0,
                                             self.num_nodes, dtype=jnp.int32))
      mask = self._batch_negatives_mask(pairs[:, 0], shared, data)
      if not self.sparse:
        return self._dense_step(
            lambda p: self._batch_negatives_loss(p["embeddings"], pairs, shared, mask,
                                                 p.get("translation")),
            params, opt_state)
      ids = jnp.concatenate([pairs.reshape(-1), shared])
      positions = jnp.arange(ids.shape[0], dtype=jnp.int32)
      row_pairs, row_shared = positions[:pairs.size].reshape(pairs.shape), positions[pairs.size:]
      sparse_step = self._linear_sparse_step if self.linear_rows else self._sparse_step
      return sparse_step(
          lambda rows: self._batch_negatives_loss(rows, row_pairs, row_shared, mask),
          ids, params, opt_state)

    if self.presample:
      pairs, negatives, mask = pairs["pairs"], pairs["negatives"], pairs["mask"]
    else:
      negatives, mask = self._negatives(key, pairs, data)
    if not self.sparse:
      return self._dense_step(
          lambda p: hierarchy_loss.hierarchy_loss(
              p["embeddings"], pairs, negatives, manifold=m, c=c, negative_mask=mask,
              translation=p.get("translation")),
          params, opt_state)
    # The same loss on the gathered rows: position i of the rows holds the node ids[i].
    ids = jnp.concatenate([pairs.reshape(-1), negatives.reshape(-1)])
    positions = jnp.arange(ids.shape[0], dtype=jnp.int32)
    row_pairs = positions[:pairs.size].reshape(pairs.shape)
    row_negatives = positions[pairs.size:].reshape(negatives.shape)
    sparse_step = self._linear_sparse_step if self.linear_rows else self._sparse_step
    return sparse_step(
        lambda rows: hierarchy_loss.hierarchy_loss(rows, row_pairs, row_negatives, manifold=m,
                                                   c=c, negative_mask=mask),
        ids, params, opt_state)

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
        params["embeddings"], self.train_closure.edges, **common)
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
    if self.refinement is not None:
      results["nested_caps_refinement"] = self.refinement
    np.savez(workdir / "embeddings.npz", names=np.asarray(self.closure.names), vectors=vectors,
             geometry=self.manifold.name, curvature=float(self.c), **extra)
    if self.config.plot:
      path = workdir / f"{self.config.dataset}_{self.manifold.name}_dim{self.config.dim}.png"
      plots.plot_hierarchy(vectors, self.closure, manifold=self.manifold, c=float(self.c),
                           path=path, title=_title(self.config, results))
      results["plot"] = path.name


@functools.partial(jax.jit, static_argnames=("manifold", "num_nodes", "pool_size"))
def _hard_pool(table, excluded, *, manifold, c, num_nodes, pool_size):
  return hierarchy_loss.nearest_non_ancestors(table, excluded, manifold=manifold, c=c,
                                              num_nodes=num_nodes, pool_size=pool_size)


@functools.partial(jax.jit, static_argnames=("manifold",))
def _pool_outranked(table, pool, excluded, edge_slots, *, manifold, c):
  """``int32 [E]``: for each edge ``(u, a)``, how many of ``u``'s pool are nearer than ``a``.

  The pool holds ``u``'s ``P`` nearest non-ancestors, so this is ``min(rank(u, a) - 1, P)``:
  the edge's reconstruction rank, exact up to the pool size.
  """
  num_nodes = pool.shape[0]
  x = table[:num_nodes, None, :]
  to_pool = jnp.sort(manifold.dist(x, table[pool], c=c), axis=-1)          # [N, P]
  to_excluded = manifold.dist(x, table[excluded], c=c)                    # [N, W]
  counts = jax.vmap(functools.partial(jnp.searchsorted, side="left"))(to_pool, to_excluded)
  return counts.reshape(-1)[edge_slots].astype(jnp.int32)


def _check_init(config, geometry_name: str) -> None:
  init = _choice(config.get("init", "uniform"), INITS, "init")
  refine = config.nested_caps.refine if "nested_caps" in config else None
  if refine is not None:  # before the construction: bad settings fail at once
    cap_refinement.check_settings(**refine.to_dict())
  if init != "nested_caps":
    if refine is not None and refine.steps > 0:
      raise ValueError(f"nested_caps.refine.steps={refine.steps} bends the nested caps; it needs "
                       f"init='nested_caps' (got init={init!r}).")
    return
  if config.get("init_from"):
    raise ValueError("init='nested_caps' builds the table; init_from loads one: set only one.")
  if geometry_name != "poincare" or config.model != "distance" or config.dtype != "float64":
    raise ValueError(f"init='nested_caps' builds Poincaré points up to ~37 from the origin, so it "
                     f"needs geometry='poincare', model='distance' and dtype='float64'; got "
                     f"{geometry_name!r}, {config.model!r}, {config.dtype!r}.")
  if config.dim < 3:
    raise ValueError(f"init='nested_caps' needs dim >= 3; got dim={config.dim}")
  if config.link_prediction.test_fraction > 0:
    # The held-out rows are implied by the training rows, so closing the training rows again
    # (which the construction needs) would hand it the answers.
    raise ValueError("init='nested_caps' needs the whole transitive closure; it cannot build "
                     "from a link-prediction split (link_prediction.test_fraction > 0).")


def _check_hard_negatives(config, num_nodes: int) -> None:
  if config.negatives_from not in ("uniform", "unigram"):
    raise ValueError(f"hard_negatives add to sampled negatives; negatives_from must be "
                     f"'uniform' or 'unigram', got {config.negatives_from!r}")
  if config.hard_negatives < 0 or not 0 < config.hard_pool < num_nodes:
    raise ValueError(f"need hard_negatives >= 0 and 0 < hard_pool < {num_nodes} nodes; got "
                     f"{config.hard_negatives} and {config.hard_pool}")
  if config.hard_every_epochs < 1 or config.hard_from_epoch < 0:
    raise ValueError(f"need hard_every_epochs >= 1 and hard_from_epoch >= 0; got "
                     f"{config.hard_every_epochs} and {config.hard_from_epoch}")


def _title(config, results) -> str:
  metrics = results.get("metrics", {})
  view = "" if config.dim == 2 or config.geometry not in ("poincare", "lorentz") else \
      " (projected: radius ∝ distance to origin)"
  return (f"{config.dataset} · {config.geometry} · dim {config.dim}{view} · "
          f"mean rank {metrics.get('mean_rank', float('nan')):.3f} · "
          f"MAP {metrics.get('map', float('nan')):.3f}")


def _per_row(leaf, table_rows: int) -> bool:
  return getattr(leaf, "ndim", 0) >= 1 and leaf.shape[0] == table_rows


def _gather_rows(tree, rows, table_rows: int):
  return jax.tree.map(lambda a: a[rows] if _per_row(a, table_rows) else a, tree)


def _scatter_rows(full, sub, rows, table_rows: int):
  return jax.tree.map(lambda a, b: a.at[rows].set(b) if _per_row(a, table_rows) else b, full, sub)
