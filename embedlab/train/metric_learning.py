"""Deep metric learning in any geometry (issue #4) for the shared loop: zero-shot retrieval.

Protocol (Song et al., "Deep Metric Learning via Lifted Structured Feature Embedding", CVPR
2016; Musgrave et al., "A Metric Learning Reality Check", ECCV 2020): an encoder is trained on
the *seen* classes of a :class:`embedlab.data.features.LabelledFeatures` dataset and evaluated
by retrieval and clustering on the *unseen* classes, which it never saw; a share of the seen
classes' items is held out for the same metrics on seen classes.

Model: a flax linen MLP ``features -> dim`` whose output ``v`` is put on the manifold by
:func:`to_manifold`, so plain optax Adam trains every geometry (no Riemannian optimizer):

* ``euclidean``: ``v`` itself;
* ``sphere``: ``v / (sqrt(c) |v|)`` (L2 normalisation, as FaceNet / cosine embeddings);
* ``poincare``: ``exp_0(clip(v))``, the exponential map at the origin (Khrulkov et al.,
  "Hyperbolic Image Embeddings", CVPR 2020) of the feature clipped to norm at most
  ``clip_radius`` (Guo et al., "Clipped Hyperbolic Classifiers Are Super-Hyperbolic
  Classifiers", CVPR 2022): the points stay at hyperbolic distance ``<= 2 clip_radius`` from
  the origin, away from the float32 boundary where gradients vanish. ``clip_radius = 0``
  disables clipping;
* ``lorentz``: ``exp_o((0, clip(v)))`` on the hyperboloid (ambient ``dim + 1``).

Batches: each step draws ``P = classes_per_batch`` distinct seen classes and ``K =
samples_per_class`` distinct items of each (with repeats only if a class has fewer than ``K``
training items), inside ``jit`` with ``jax.random`` and fixed shapes; so every anchor has a
positive for the miners. The batch is class-major: rows ``p K .. (p + 1) K - 1`` are class ``p``.

Losses: :data:`LOSSES` maps ``config.loss`` to a :class:`LossSpec`, a small adapter that says
whether the loss needs one vector per seen class (learned proxies / weights, kept as tangent
vectors at the origin and mapped by :func:`to_manifold` like the embeddings; or a fixed basis),
which geometries it supports, its default hyperparameters (``config.losses.<name>``), and how
to call it. A loss that rejects a geometry or an option fails when the task is built (the loss
is traced once with :func:`jax.eval_shape`), not in the middle of a run.

Evaluation (:meth:`MetricLearningTask.evaluate`): Precision@1 (= Recall@1), Recall@2/4/8,
R-precision and MAP@R with the manifold's distance (:func:`embedlab.evals.retrieval
.retrieval_metrics`, every item a query against all the others of its set), and k-means NMI/AMI
with ``k`` = the number of classes of the set (:func:`embedlab.evals.retrieval
.clustering_metrics`; on the ambient coordinates for Euclidean / sphere, on ``log_0`` for the
hyperbolic models). Keys ``unseen_*`` and ``seen_*``; the final evaluation adds the same
metrics for the raw input features as Euclidean embeddings (``baseline_raw_*``) and for the
untrained encoder (``baseline_init_*``).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from embedlab import geometry
from embedlab import optim
from embedlab.data import features as features_lib
from embedlab.evals import retrieval
from embedlab.geometry.base import Manifold
from embedlab.losses import contrastive
from embedlab.losses import metric
from embedlab.losses import mixup
from embedlab.losses import prototypes
from embedlab.losses import proxy

# Rows embedded per jitted call at evaluation.
_EVAL_CHUNK = 1024
_ALL_GEOMETRIES = ("euclidean", "sphere", "poincare", "lorentz")


# ----------------------------------------------------------------------------------------------
# Model and the map onto the manifold.


class MLP(nn.Module):
  """``Dense -> relu`` per hidden width, then a linear ``Dense(out)``."""

  hidden: Sequence[int]
  out: int

  @nn.compact
  def __call__(self, x):
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.out)(x)


def parse_widths(text: str) -> tuple[int, ...]:
  """Hidden widths written ``"256x256"`` (``""``: a linear encoder)."""
  try:
    widths = tuple(int(w) for w in text.split("x") if w.strip())
  except ValueError:
    raise ValueError(f"model.hidden={text!r}: expected widths like '256x256' or '' "
                     "(linear)") from None
  if any(w < 1 for w in widths):
    raise ValueError(f"model.hidden={text!r}: widths must be positive")
  return widths


def clip_norm(v, radius):
  """``v * min(1, radius / |v|)`` row-wise; ``radius <= 0`` returns ``v``."""
  if radius <= 0:
    return v
  norm = jnp.sqrt(jnp.maximum(jnp.sum(v * v, axis=-1, keepdims=True), 1e-30))
  return v * jnp.minimum(1.0, radius / norm)


def to_manifold(v, *, manifold: Manifold, c, clip_radius: float = 0.0):
  """Maps Euclidean features ``v [..., dim]`` onto ``manifold`` (see the module docstring).

  Returns ``[..., manifold.ambient_dim(dim)]`` points.
  """
  if manifold.name == "euclidean":
    return v
  if manifold.name == "sphere":
    return manifold.proj(v, c=c)
  v = clip_norm(v, clip_radius)
  if manifold.ambient_dim(v.shape[-1]) == v.shape[-1] + 1:
    # Tangent vectors at the hyperboloid's origin have a zero time coordinate.
    v = jnp.concatenate([jnp.zeros_like(v[..., :1]), v], axis=-1)
  origin = manifold.origin(v.shape, c=c, dtype=v.dtype)
  return manifold.expmap(origin, manifold.proj_tangent(origin, v, c=c), c=c)


@functools.partial(jax.jit, static_argnames=("model", "clip_radius"))
def embed_points(model: nn.Module, encoder_params, x, *, manifold: Manifold, c,
                 clip_radius: float):
  """``to_manifold(model(x))``, jitted at module level so every task with the same model
  shares one compilation per input shape."""
  v = model.apply({"params": encoder_params}, x)
  return to_manifold(v, manifold=manifold, c=c, clip_radius=clip_radius)


def cluster_coordinates(x, *, manifold: Manifold, c):
  """Coordinates k-means runs on: ambient for curvature >= 0, ``log_0`` for hyperbolic ones."""
  if manifold.curvature_sign >= 0:
    return x
  origin = manifold.origin(x.shape, c=c, dtype=x.dtype)
  return manifold.logmap(origin, x, c=c)


# ----------------------------------------------------------------------------------------------
# Loss registry.


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """How the task calls one loss.

  Attributes:
    fn: ``fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
      **options) -> scalar``; ``labels`` are seen-class ids in ``[0, num_classes)``;
      ``key`` is the step's PRNG key (Metrix draws its mixes with it);
      ``class_points`` the ``[num_classes, D]`` learned class vectors on the manifold, or the
      fixed directions, or ``None`` (``class_params == "none"``); ``per_class`` the ``K`` of
      the class-major batch.
    defaults: the hyperparameters (``config.losses.<name>``), passed as ``**options``.
    class_params: ``"none"``, ``"learned"`` (proxies / weights, trained) or ``"fixed"``.
    geometries: the geometries it supports.
    fixed_basis: for ``class_params="fixed"``: ``(num_classes, dim, seed) -> [C, dim]``
      class directions, passed to the loss as they are (the prototype losses of
      :mod:`embedlab.losses.prototypes` place them on the manifold).
  """

  fn: Callable
  defaults: dict
  class_params: str = "none"
  geometries: tuple[str, ...] = _ALL_GEOMETRIES
  fixed_basis: Callable | None = None


def _plain(loss):
  """Adapter of a loss ``loss(embeddings, labels, *, manifold, c, **options)``."""
  def fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
         **options):
    del class_points, num_classes, per_class, key
    return loss(embeddings, labels, manifold=manifold, c=c, **options)
  return fn


def _with_class_points(loss):
  """Adapter of ``loss(embeddings, labels, class_points, *, manifold, c, **options)``."""
  def fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
         **options):
    del num_classes, per_class, key
    return loss(embeddings, labels, class_points, manifold=manifold, c=c, **options)
  return fn


def _busemann(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
              **options):
  del manifold, num_classes, per_class, key  # Poincaré ball only (LossSpec.geometries).
  return prototypes.busemann_prototype_loss(embeddings, labels, class_points, c=c, **options)


def _class_pairs(embeddings, per_class):
  """The first two items of each class of a class-major batch: ``([P, D], [P, D])``."""
  grouped = embeddings.reshape(-1, per_class, embeddings.shape[-1])
  return grouped[:, 0], grouped[:, 1]


def _npair(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
           **options):
  del labels, class_points, num_classes, key
  anchors, positives = _class_pairs(embeddings, per_class)
  return contrastive.npair_loss(anchors, positives, manifold=manifold, c=c, **options)


def _infonce(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
             **options):
  del labels, class_points, num_classes, key
  queries, keys = _class_pairs(embeddings, per_class)
  return contrastive.infonce_loss(queries, keys, manifold=manifold, c=c, **options)


def _prototypical(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
                  **options):
  """Support: the first ``K // 2`` items of each class of the batch; queries: the rest."""
  del class_points, key
  d = embeddings.shape[-1]
  half = per_class // 2
  grouped, grouped_labels = embeddings.reshape(-1, per_class, d), labels.reshape(-1, per_class)
  return contrastive.prototypical_loss(
      grouped[:, :half].reshape(-1, d), grouped_labels[:, :half].reshape(-1),
      grouped[:, half:].reshape(-1, d), grouped_labels[:, half:].reshape(-1),
      num_classes=num_classes, manifold=manifold, c=c, **options)


def _centroid_triplet(embeddings, labels, class_points, *, manifold, c, num_classes, per_class,
                      key, **options):
  del class_points, per_class, key
  return metric.centroid_triplet_loss(embeddings, labels, num_classes=num_classes,
                                      manifold=manifold, c=c, **options)


def _snr(loss):
  """A pair loss on the SNR distance plus the paper's zero-mean regulariser (``snr_weight``)."""
  def fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
         snr_weight, **options):
    del class_points, num_classes, per_class, key
    return (loss(embeddings, labels, manifold=manifold, c=c, distance="snr", **options)
            + metric.snr_regularizer(embeddings, weight=snr_weight))
  return fn


def _metrix(loss, *, with_class_points: bool = False):
  """Metrix (embedding mixup): ``num_mixes`` mixed pairs drawn with the step's key,
  ``lam ~ Beta(mix_alpha, mix_alpha)``."""
  def fn(embeddings, labels, class_points, *, manifold, c, num_classes, per_class, key,
         num_mixes, mix_alpha, **options):
    del num_classes, per_class
    mixes = mixup.sample_mixes(key, labels, num_mixes=num_mixes, alpha=mix_alpha)
    extra = (class_points,) if with_class_points else ()
    return loss(embeddings, labels, *extra, mixes, manifold=manifold, c=c, **options)
  return fn


def _ebv_basis(num_classes, dim, seed):
  return prototypes.equiangular_basis_vectors(num_classes, dim, seed=seed)


def _hyperspherical_basis(num_classes, dim, seed):
  return prototypes.hyperspherical_prototypes(num_classes, dim, seed=seed)


LOSSES: dict[str, LossSpec] = {
    # embedlab.losses.metric: pairs and triplets mined in the batch.
    "contrastive": LossSpec(_plain(metric.contrastive_loss),
                            {"pos_margin": 0.0, "neg_margin": 1.0, "distance": "geodesic"}),
    "triplet": LossSpec(_plain(metric.triplet_loss),
                        {"margin": 0.2, "mining": "batch_hard", "distance": "geodesic"}),
    "multi_similarity": LossSpec(_plain(metric.multi_similarity_loss),
                                 {"alpha": 2.0, "beta": 50.0, "base": 0.5,
                                  "mining_epsilon": 0.1}),
    "centroid_triplet": LossSpec(_centroid_triplet, {"margin": 0.1}),
    # The SNR distance of Yuan et al. 2019 is defined on Euclidean features only.
    "contrastive_snr": LossSpec(_snr(metric.contrastive_loss),
                                {"pos_margin": 0.0, "neg_margin": 1.0, "snr_weight": 0.0},
                                geometries=("euclidean",)),
    "triplet_snr": LossSpec(_snr(metric.triplet_loss),
                            {"margin": 0.2, "mining": "batch_hard", "snr_weight": 0.0},
                            geometries=("euclidean",)),
    # embedlab.losses.mixup: Metrix, the clean loss plus mix_weight x the loss of mixed pairs.
    "metrix_contrastive": LossSpec(_metrix(mixup.metrix_contrastive_loss),
                                   {"pos_margin": 0.0, "neg_margin": 1.0, "mix_weight": 1.0,
                                    "num_mixes": 64, "mix_alpha": 2.0}),
    "metrix_multi_similarity": LossSpec(_metrix(mixup.metrix_multi_similarity_loss),
                                        {"alpha": 2.0, "beta": 50.0, "base": 0.5,
                                         "mix_weight": 1.0, "num_mixes": 64, "mix_alpha": 2.0}),
    "metrix_proxy_anchor": LossSpec(_metrix(mixup.metrix_proxy_anchor_loss,
                                            with_class_points=True),
                                    {"margin": 0.1, "alpha": 32.0, "mix_weight": 1.0,
                                     "num_mixes": 64, "mix_alpha": 2.0},
                                    class_params="learned"),
    # embedlab.losses.contrastive: softmax over the batch.
    "ntxent": LossSpec(_plain(contrastive.ntxent_loss), {"temperature": 0.1}),
    "supcon": LossSpec(_plain(contrastive.supcon_loss), {"temperature": 0.1}),
    "infonce": LossSpec(_infonce, {"temperature": 0.1, "symmetric": False}),
    "npair": LossSpec(_npair, {"l2_weight": 0.0}),
    "prototypical": LossSpec(_prototypical, {"squared": True}),
    # embedlab.losses.proxy: one learned vector per seen class.
    "proxy_nca": LossSpec(_with_class_points(proxy.proxy_nca_loss), {"softmax_scale": 1.0},
                          class_params="learned"),
    "proxy_anchor": LossSpec(_with_class_points(proxy.proxy_anchor_loss),
                             {"margin": 0.1, "alpha": 32.0}, class_params="learned"),
    "cosface": LossSpec(_with_class_points(proxy.cosface_loss), {"margin": 0.35, "scale": 64.0},
                        class_params="learned"),
    "arcface": LossSpec(_with_class_points(proxy.arcface_loss), {"margin": 0.5, "scale": 64.0},
                        class_params="learned"),
    # embedlab.losses.prototypes: fixed class directions chosen before training.
    "ebv": LossSpec(_with_class_points(prototypes.ebv_loss),
                    {"temperature": 0.07, "radius": 1.0}, class_params="fixed",
                    fixed_basis=_ebv_basis),
    "hyperspherical_prototype": LossSpec(
        _with_class_points(prototypes.hyperspherical_prototype_loss), {},
        class_params="fixed", fixed_basis=_hyperspherical_basis),
    "busemann_prototype": LossSpec(_busemann, {"phi": None}, class_params="fixed",
                                   geometries=("poincare",), fixed_basis=_hyperspherical_basis),
}


def loss_spec(name: str) -> LossSpec:
  if name not in LOSSES:
    raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
  return LOSSES[name]


def loss_defaults() -> ml_collections.ConfigDict:
  """``config.losses``: every registered loss's hyperparameters, overridable from the CLI."""
  return ml_collections.ConfigDict({name: dict(spec.defaults) for name, spec in LOSSES.items()})


# ----------------------------------------------------------------------------------------------
# The task.


def _check_positive(config, *names):
  bad = {n: config[n] for n in names if config[n] < 1}
  if bad:
    raise ValueError(f"{', '.join(bad)} must be positive; got {bad}")


class MetricLearningTask:
  """Builds data, encoder, optimizer and the pure step from a metric-learning config."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.manifold = geometry.get(config.geometry)
    self.spec = loss_spec(config.loss)
    if config.geometry not in self.spec.geometries:
      raise ValueError(f"loss {config.loss!r} does not support geometry {config.geometry!r}; "
                       f"it supports {list(self.spec.geometries)}")
    if config.dataset not in features_lib.FEATURES:
      raise ValueError(f"unknown dataset {config.dataset!r}; expected one of "
                       f"{sorted(features_lib.FEATURES)}")
    _check_positive(config, "dim", "classes_per_batch", "samples_per_class", "steps_per_epoch")
    self.c = jnp.asarray(config.curvature, jnp.float32)
    options = {}
    if config.dataset == "wordnet_gloss":
      g = config.wordnet
      options = dict(depth=g.depth, min_items=g.min_items, max_items=g.max_items,
                     seed=config.split_seed)
    self.dataset = features_lib.FEATURES[config.dataset](config.data_dir, **options)
    self.split = features_lib.zero_shot_split(self.dataset,
                                              seen_test_fraction=config.seen_test_fraction,
                                              seed=config.split_seed)
    ds = self.dataset
    self.num_classes = int(ds.seen_classes.size)
    P, K = config.classes_per_batch, config.samples_per_class
    if P > self.num_classes:
      raise ValueError(f"classes_per_batch={P} exceeds the {self.num_classes} seen classes of "
                       f"{config.dataset!r}")
    if K < 2:
      raise ValueError(f"samples_per_class must be at least 2 (positives), got {K}")
    # Seen-class ids 0..C-1 in the order of ds.seen_classes.
    seen_index = np.full(ds.num_classes, -1, np.int32)
    seen_index[ds.seen_classes] = np.arange(self.num_classes)
    train_labels = seen_index[ds.labels[self.split.train]]
    counts = np.bincount(train_labels, minlength=self.num_classes)
    members = np.zeros((self.num_classes, counts.max()), np.int32)
    for cls in range(self.num_classes):
      rows = np.flatnonzero(train_labels == cls)
      members[cls, :rows.size] = rows
    self.data = {"features": jnp.asarray(ds.features[self.split.train]),
                 "labels": jnp.asarray(train_labels), "members": jnp.asarray(members),
                 "counts": jnp.asarray(counts, jnp.int32)}
    self.steps_per_epoch = config.steps_per_epoch
    self.table_rows = 0  # No embedding table: every parameter is replicated.
    self.batch_size = P * K

    self.model = MLP(hidden=parse_widths(config.model.hidden), out=config.dim)
    self.ambient = self.manifold.ambient_dim(config.dim)
    self.fixed_class_points = None
    if self.spec.class_params == "fixed":
      # Directions; each prototype loss places them on the manifold itself.
      self.fixed_class_points = jnp.asarray(
          self.spec.fixed_basis(self.num_classes, config.dim, config.seed), jnp.float32)

    total_steps = config.epochs * self.steps_per_epoch
    self._schedule = optim.decay_schedule(
        config.optim.learning_rate, kind=config.optim.decay, begin_step=0,
        end_step=max(total_steps, 1), final_multiplier=config.optim.final_multiplier)
    adam = lambda scale: optax.adamw(lambda s: scale * self._schedule(s),
                                     weight_decay=config.optim.weight_decay)
    self.optimizer = optax.multi_transform(
        {"encoder": adam(1.0), "class_vectors": adam(config.optim.class_lr_multiplier)},
        lambda params: {k: k for k in params})
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
    return to_manifold(v, manifold=self.manifold, c=self.c, clip_radius=self.config.clip_radius)

  def _embed_impl(self, encoder_params, x):
    return embed_points(self.model, encoder_params, x, manifold=self.manifold, c=self.c,
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
    clusters = retrieval.clustering_metrics(
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
