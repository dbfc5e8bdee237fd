"""Deep metric learning in any geometry for the shared loop: zero-shot retrieval.

Protocol (Song et al., "Deep Metric Learning via Lifted Structured Feature Embedding", CVPR
2016; Musgrave et al., "A Metric Learning Reality Check", ECCV 2020): an encoder is trained on
the *seen* classes of a :class:`embedlab.data.features.LabelledFeatures` dataset and evaluated
by retrieval and clustering on the *unseen* classes, which it never saw; a share of the seen
classes' items is held out for the same metrics on seen classes.

The task composes named parts:

* data: :mod:`embedlab.data.features` (the dataset and its zero-shot split);
* encoder: :class:`embedlab.models.MLP` (``config.model.hidden`` widths, ``config.dim``
  outputs) followed by :func:`embedlab.models.to_manifold`, so plain optax Adam(W) trains every
  geometry;
* loss: the :class:`embedlab.losses.LossSpec` that ``config.loss`` names in
  :data:`embedlab.losses.LOSSES`, with ``config.losses.<name>`` as its options; learned class
  vectors (proxies / weights) are tangent vectors at the origin mapped onto the manifold like
  the embeddings. A loss that rejects a geometry or an option fails when the task is built (the
  loss is traced once with :func:`jax.eval_shape`), not in the middle of a run;
* optimizer: Adam(W) with a decay schedule, the class vectors at ``class_lr_multiplier``;
* evaluation: :mod:`embedlab.evals.retrieval` and :mod:`embedlab.evals.clustering`.

Batches: each step draws ``P = classes_per_batch`` distinct seen classes and ``K =
samples_per_class`` distinct items of each (with repeats only if a class has fewer than ``K``
training items), inside ``jit`` with ``jax.random`` and fixed shapes; so every anchor has a
positive for the miners. The batch is class-major: rows ``p K .. (p + 1) K - 1`` are class ``p``.

Evaluation (:meth:`MetricLearningTask.evaluate`): Precision@1 (= Recall@1), Recall@2/4/8,
R-precision and MAP@R with the manifold's distance (:func:`embedlab.evals.retrieval_metrics`,
every item a query against all the others of its set), and k-means NMI/AMI with ``k`` = the
number of classes of the set (:func:`embedlab.evals.clustering_metrics`; on the ambient
coordinates for Euclidean / sphere, on ``log_0`` for the hyperbolic models). Keys ``unseen_*``
and ``seen_*``; the final evaluation adds the same metrics for the raw input features as
Euclidean embeddings (``baseline_raw_*``) and for the untrained encoder (``baseline_init_*``).
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from embedlab import geometry
from embedlab import losses
from embedlab import models
from embedlab import optim
from embedlab.data import features as features_lib
from embedlab.evals import clustering
from embedlab.evals import retrieval
from embedlab.geometry.base import Manifold

# Rows embedded per jitted call at evaluation.
_EVAL_CHUNK = 1024


def cluster_coordinates(x, *, manifold: Manifold, c):
  """Coordinates k-means runs on: ambient for curvature >= 0 (the sphere's chords order pairs
  as its arcs), the tangent coordinates ``logmap0`` at the origin for hyperbolic models."""
  if manifold.curvature_sign >= 0:
    return x
  return manifold.logmap0(x, c=c)


# ----------------------------------------------------------------------------------------------
# The task.


def _check_positive(config, *names):
  bad = {n: config[n] for n in names if config[n] < 1}
  if bad:
    raise ValueError(f"{', '.join(bad)} must be positive; got {bad}")


def _loss_spec(config: ml_collections.ConfigDict, manifold) -> losses.LossSpec:
  """The registered loss ``config.loss``, checked against the geometry."""
  spec = losses.loss_spec(config.loss)
  if not spec.supports(manifold):
    needs = (f"the geometries {list(spec.geometries)}" if spec.geometries is not None
             else "a geometry with " + " and ".join(spec.requires))
    raise ValueError(f"loss {config.loss!r} does not support geometry {config.geometry!r}; "
                     f"it needs {needs}")
  return spec


def _load_data(config: ml_collections.ConfigDict):
  """``(dataset, split)``: the labelled features and their zero-shot split."""
  options = {}
  if config.dataset == "wordnet_gloss":
    g = config.wordnet
    options = dict(depth=g.depth, min_items=g.min_items, max_items=g.max_items,
                   seed=config.split_seed)
  dataset = features_lib.FEATURES[config.dataset](config.data_dir, **options)
  split = features_lib.zero_shot_split(dataset, seen_test_fraction=config.seen_test_fraction,
                                       seed=config.split_seed)
  return dataset, split


def _train_tables(dataset, split) -> dict:
  """What the step reads: training ``features [T, F]`` and ``labels [T]`` (seen-class ids
  ``0..C-1`` in the order of ``dataset.seen_classes``), and per class its training rows
  ``members [C, max count]`` (zero-padded) and ``counts [C]``."""
  num_classes = int(dataset.seen_classes.size)
  seen_index = np.full(dataset.num_classes, -1, np.int32)
  seen_index[dataset.seen_classes] = np.arange(num_classes)
  train_labels = seen_index[dataset.labels[split.train]]
  counts = np.bincount(train_labels, minlength=num_classes)
  members = np.zeros((num_classes, counts.max()), np.int32)
  for cls in range(num_classes):
    rows = np.flatnonzero(train_labels == cls)
    members[cls, :rows.size] = rows
  return {"features": jnp.asarray(dataset.features[split.train]),
          "labels": jnp.asarray(train_labels), "members": jnp.asarray(members),
          "counts": jnp.asarray(counts, jnp.int32)}


def _optimizer(optim_config: ml_collections.ConfigDict, *, total_steps: int):
  """``(schedule, optimizer)``: Adam(W) under the decay schedule for the encoder, and the same
  at ``class_lr_multiplier`` times the rate for the learned class vectors."""
  schedule = optim.decay_schedule(
      optim_config.learning_rate, kind=optim_config.decay, begin_step=0,
      end_step=max(total_steps, 1), final_multiplier=optim_config.final_multiplier)
  adam = lambda scale: optax.adamw(lambda s: scale * schedule(s),
                                   weight_decay=optim_config.weight_decay)
  optimizer = optax.multi_transform(
      {"encoder": adam(1.0), "class_vectors": adam(optim_config.class_lr_multiplier)},
      lambda params: {k: k for k in params})
  return schedule, optimizer


class MetricLearningTask:
  """Builds data, encoder, loss, optimizer and the pure step from a metric-learning config."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.manifold = geometry.get(config.geometry)
    self.spec = _loss_spec(config, self.manifold)
    if config.dataset not in features_lib.FEATURES:
      raise ValueError(f"unknown dataset {config.dataset!r}; expected one of "
                       f"{sorted(features_lib.FEATURES)}")
    _check_positive(config, "dim", "classes_per_batch", "samples_per_class", "steps_per_epoch")
    hidden = models.check_widths(config.model.hidden, name="model.hidden")
    self.c = jnp.asarray(config.curvature, jnp.float32)

    # --- data: the class-balanced batches of the step (module docstring) -----------------------
    self.dataset, self.split = _load_data(config)
    self.num_classes = int(self.dataset.seen_classes.size)
    P, K = config.classes_per_batch, config.samples_per_class
    if P > self.num_classes:
      raise ValueError(f"classes_per_batch={P} exceeds the {self.num_classes} seen classes of "
                       f"{config.dataset!r}")
    if K < 2:
      raise ValueError(f"samples_per_class must be at least 2 (positives), got {K}")
    self.data = _train_tables(self.dataset, self.split)
    self.steps_per_epoch = config.steps_per_epoch
    self.table_rows = 0  # No embedding table: every parameter is replicated.
    self.batch_size = P * K

    # --- encoder, class points, optimizer --------------------------------------------------
    self.model = models.MLP(hidden=hidden, out=config.dim)
    self.ambient = self.manifold.ambient_dim(config.dim)
    self.fixed_class_points = None
    if self.spec.class_params == "fixed":
      # Directions; each prototype loss places them on the manifold itself.
      self.fixed_class_points = jnp.asarray(
          self.spec.fixed_basis(self.num_classes, config.dim, config.seed), jnp.float32)
    self._schedule, self.optimizer = _optimizer(
        config.optim, total_steps=config.epochs * self.steps_per_epoch)
    self._check_loss_traces()
    self._baselines: dict[str, float] | None = None

  # --- parameters ---------------------------------------------------------------------------
  def init_params(self, key):
    model_key, class_key = jax.random.split(key)
    params = {"encoder": self.model.init(model_key, jnp.zeros((1, self.dataset.features.shape[1]),
                                                              jnp.float32))["params"]}
    if self.spec.class_params == "learned":
      # Tangent vectors at the origin with norm ~1 (mapped onto the manifold in the loss).
      params["class_vectors"] = jax.random.normal(
          class_key, (self.num_classes, self.config.dim)) / np.sqrt(self.config.dim)
    return params

  def learning_rate(self, step: int) -> float:
    return float(self._schedule(step))

  def _to_manifold(self, v):
    return models.to_manifold(v, manifold=self.manifold, c=self.c,
                              clip_radius=self.config.clip_radius)

  def _embed_impl(self, encoder_params, x):
    return models.embed_points(self.model, encoder_params, x, manifold=self.manifold, c=self.c,
                               clip_radius=float(self.config.clip_radius))

  # --- step ---------------------------------------------------------------------------------
  def _sample_batch(self, key, data):
    """``(rows [P K], labels [P K])`` of one class-balanced batch (module docstring)."""
    P, K = self.config.classes_per_batch, self.config.samples_per_class
    class_key, item_key = jax.random.split(key)
    classes = jax.random.choice(class_key, self.num_classes, (P,), replace=False)
    members, counts = data["members"][classes], data["counts"][classes]
    slots = jnp.arange(members.shape[1])[None, :]
    # K smallest uniform keys among the valid slots: K distinct items when the class has K.
    keys = jnp.where(slots < counts[:, None], jax.random.uniform(item_key, members.shape), 2.0)
    _, picked = jax.lax.top_k(-keys, min(K, members.shape[1]))
    if picked.shape[1] < K:
      picked = jnp.tile(picked, (1, -(-K // picked.shape[1])))[:, :K]
    picked = picked % counts[:, None]
    rows = jnp.take_along_axis(members, picked, axis=1).reshape(-1)
    return rows, jnp.repeat(classes, K).astype(jnp.int32)

  def epoch_batches(self, key, data):
    keys = jax.random.split(key, self.steps_per_epoch)
    rows, labels = jax.vmap(lambda k: self._sample_batch(k, data))(keys)
    return {"rows": rows, "labels": labels}

  def _class_points(self, params):
    if self.spec.class_params == "learned":
      return self._to_manifold(params["class_vectors"])
    return self.fixed_class_points

  def _loss(self, params, x, labels, key):
    embeddings = self._embed_impl(params["encoder"], x)
    options = dict(self.config.losses[self.config.loss])
    return self.spec.fn(embeddings, labels, self._class_points(params), manifold=self.manifold,
                        c=self.c, num_classes=self.num_classes,
                        per_class=self.config.samples_per_class, key=key, **options)

  def _check_loss_traces(self):
    """Traces the loss once on abstract inputs so bad options fail now, with the loss named."""
    params = jax.eval_shape(self.init_params, jax.random.PRNGKey(0))
    x = jax.ShapeDtypeStruct((self.batch_size, self.dataset.features.shape[1]), jnp.float32)
    labels = jax.ShapeDtypeStruct((self.batch_size,), jnp.int32)
    try:
      jax.eval_shape(self._loss, params, x, labels, jax.random.PRNGKey(0))
    except (ValueError, TypeError) as e:
      raise ValueError(f"loss {self.config.loss!r} cannot run in geometry "
                       f"{self.config.geometry!r} with options "
                       f"{dict(self.config.losses[self.config.loss])}: {e}") from None

  def train_step(self, params, opt_state, batch, key, data):
    x, labels = data["features"][batch["rows"]], batch["labels"]
    loss, grads = jax.value_and_grad(self._loss)(params, x, labels, key)
    updates, opt_state = self.optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  # --- evaluation and outputs ----------------------------------------------------------------
  def embed(self, params, features) -> np.ndarray:
    """``[N, ambient]`` embeddings of ``features [N, F]``, in zero-padded chunks of one size
    (a single compilation for every evaluation set)."""
    features = np.asarray(features, np.float32)
    out = []
    for start in range(0, features.shape[0], _EVAL_CHUNK):
      chunk = features[start:start + _EVAL_CHUNK]
      padded = np.zeros((_EVAL_CHUNK, features.shape[1]), np.float32)
      padded[:chunk.shape[0]] = chunk
      out.append(np.asarray(self._embed_impl(params["encoder"], padded))[:chunk.shape[0]])
    return np.concatenate(out)

  def _eval_sets(self):
    ds = self.dataset
    sets = {"unseen": self.split.unseen}
    if self.split.seen_test.size:
      sets["seen"] = self.split.seen_test
    return {name: (ds.features[rows], ds.labels[rows]) for name, rows in sets.items()}

  def _score(self, points, labels, manifold: Manifold, c) -> dict[str, Any]:
    ev = self.config.eval
    metrics = retrieval.retrieval_metrics(points, labels, manifold=manifold, c=c,
                                          recall_ks=tuple(ev.recall_ks))
    metrics.pop("num_skipped", None)
    clusters = clustering.clustering_metrics(
        np.asarray(cluster_coordinates(jnp.asarray(points), manifold=manifold, c=c)), labels,
        seed=self.config.seed)
    metrics.update(nmi=clusters["nmi"], ami=clusters["ami"])
    return metrics

  def _evaluate_points(self, embed_fn, manifold, c, keys=None) -> dict[str, Any]:
    metrics = {}
    for name, (features, labels) in self._eval_sets().items():
      scored = self._score(embed_fn(features), labels, manifold, c)
      metrics.update({f"{name}_{k}": v for k, v in scored.items() if keys is None or k in keys})
    return metrics

  def baselines(self) -> dict[str, float]:
    """The raw features (Euclidean) and the untrained encoder, scored like the trained one."""
    if self._baselines is None:
      keys = ("precision_at_1", "r_precision", "map_at_r", "nmi")
      raw = self._evaluate_points(lambda f: f, geometry.get("euclidean"), 1.0, keys)
      init = self.init_params(jax.random.PRNGKey(self.config.seed))
      untrained = self._evaluate_points(lambda f: self.embed(init, f), self.manifold, self.c,
                                        keys)
      self._baselines = {**{f"baseline_raw_{k}": v for k, v in raw.items()},
                         **{f"baseline_init_{k}": v for k, v in untrained.items()}}
    return self._baselines

  def evaluate(self, params, *, final: bool = False) -> dict[str, float]:
    metrics = self._evaluate_points(lambda f: self.embed(params, f), self.manifold, self.c)
    if final and self.config.eval.baselines:
      metrics.update(self.baselines())
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v)
            for k, v in metrics.items()}

  def finalize(self, params, workdir: pathlib.Path, results: dict) -> None:
    ds = self.dataset
    arrays = {}
    for name, (features, labels) in self._eval_sets().items():
      arrays[f"{name}_embeddings"] = self.embed(params, features)
      arrays[f"{name}_labels"] = labels
    np.savez(workdir / "embeddings.npz", class_names=np.asarray(ds.class_names),
             geometry=self.manifold.name, curvature=float(self.c), **arrays)
    results["dataset"] = {"name": self.config.dataset, "num_classes": ds.num_classes,
                          "seen_classes": int(ds.seen_classes.size),
                          "train_items": int(self.split.train.size),
                          "seen_test_items": int(self.split.seen_test.size),
                          "unseen_items": int(self.split.unseen.size)}
