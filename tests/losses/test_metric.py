"""Tests for embedlab.losses.metric: hand-computed values on points of a line, a brute-force
loop reference over all pairs / triplets in every geometry, masking of anchors without positives
or negatives, jit == no-jit, finite gradients at identical points, NaN input, errors."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab.geometry import GEOMETRIES
from embedlab.losses import metric
from tests.geometry.bare import BARE

MININGS = ["batch_all", "batch_hard", "semi_hard"]
REDUCTIONS = ["mean", "sum", "none"]


def _line(*xs):
  """Points on the real line as a [B, 1] Euclidean batch (integers: the matmul form is exact)."""
  return jnp.array([[x] for x in xs], jnp.float32)


# --- pair_masks --------------------------------------------------------------------------------

def test_pair_masks_hand_example():
  positive, negative = metric.pair_masks(jnp.array([0, 0, 1, 2]))
  np.testing.assert_array_equal(positive, [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(negative, [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]])


# --- hand-computed values ----------------------------------------------------------------------

# Batch A: points 0, 1 (label 0) and 3, 4 (label 1). Distances: d01 = 1, d34 = 1 (positives);
# d03 = 3, d04 = 4, d13 = 2, d14 = 3 (negatives).
# Batch B: points 0, 1, 3, 4 with labels 0, 1, 1, 0: positives d(0,4) = 4, d(1,3) = 2;
# negatives d(0,1) = 1, d(0,3) = 3, d(4,1) = 3, d(4,3) = 1, (as anchor 1) d(1,0) = 1, d(1,4) = 3,
# (as anchor 3) d(3,0) = 3, d(3,4) = 1.
A = (_line(0, 1, 3, 4), jnp.array([0, 0, 1, 1]))
B = (_line(0, 1, 3, 4), jnp.array([0, 1, 1, 0]))


@pytest.mark.parametrize("batch, kwargs, expected", [
    # A, margin 2.5. Triplets (a, p, n) -> relu(d_ap - d_an + 2.5):
    #   (0,1,3): 1-3+2.5 = 0.5   (0,1,4): 1-4+2.5 < 0   (1,0,3): 1-2+2.5 = 1.5  (1,0,4): 0.5
    #   (3,4,0): 1-3+2.5 = 0.5   (3,4,1): 1-2+2.5 = 1.5 (4,3,0): 1-4+2.5 < 0    (4,3,1): 0.5
    # batch_all mean over the 6 active triplets: (0.5+1.5+0.5+0.5+1.5+0.5) / 6 = 5 / 6.
    (A, dict(mining="batch_all", margin=2.5), 5.0 / 6.0),
    (A, dict(mining="batch_all", margin=2.5, reduction="sum"), 5.0),
    # batch_hard: anchor 0: hp 1, hn 3 -> 0.5; anchor 1: 1 vs 2 -> 1.5; anchor 3: 1 vs 2 -> 1.5;
    # anchor 4: 1 vs 3 -> 0.5. Mean (0.5+1.5+1.5+0.5) / 4 = 1.
    (A, dict(mining="batch_hard", margin=2.5), 1.0),
    # semi_hard: (0,1) d=1, negatives 3, 4 both farther -> closest 3 -> 0.5; (1,0): negatives at
    # 2, 3 -> 2 -> 1.5; (3,4): 1.5; (4,3): 0.5 (symmetric). Mean 1.
    (A, dict(mining="semi_hard", margin=2.5), 1.0),
    # Margin 0.5: every negative is farther than the positive by >= 1, so every loss is 0.
    (A, dict(mining="batch_all", margin=0.5), 0.0),
    (A, dict(mining="batch_hard", margin=0.5), 0.0),
    # B, margin 0.5. batch_all: (0,4,1): 4-1+.5 = 3.5  (0,4,3): 4-3+.5 = 1.5  (4,0,1): 1.5
    #   (4,0,3): 3.5  (1,3,0): 2-1+.5 = 1.5  (1,3,4): 2-3+.5 < 0  (3,1,0): < 0  (3,1,4): 1.5.
    # Mean over the 6 active: 13 / 6.
    (B, dict(mining="batch_all", margin=0.5), 13.0 / 6.0),
    # batch_hard: anchors 0, 4: 4 - 1 + .5 = 3.5; anchors 1, 3: 2 - 1 + .5 = 1.5. Mean 2.5.
    (B, dict(mining="batch_hard", margin=0.5), 2.5),
    # semi_hard: (0,4) d=4: no negative farther (1, 3) -> fallback to the farthest, 3 ->
    # 4-3+.5 = 1.5; (4,0) likewise 1.5; (1,3) d=2: farther negatives {3} -> 2-3+.5 < 0 -> 0;
    # (3,1) likewise 0. Mean (1.5+1.5+0+0) / 4 = 0.75.
    (B, dict(mining="semi_hard", margin=0.5), 0.75),
])
def test_triplet_loss_hand_computed(batch, kwargs, expected):
  loss = metric.triplet_loss(*batch, **kwargs)
  assert loss.shape == ()
  np.testing.assert_allclose(loss, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch, kwargs, expected", [
    # A, neg_margin 3.5: positives d01 = d34 = 1 -> 1 each; negatives relu(3.5 - d)^2:
    # d03 = 3 -> 0.25, d04 = 4 -> 0, d13 = 2 -> 2.25, d14 = 3 -> 0.25. 6 unordered pairs:
    # (1 + 1 + 0.25 + 0 + 2.25 + 0.25) / 6 = 4.75 / 6.
    (A, dict(neg_margin=3.5), 4.75 / 6.0),
    # "sum" counts each unordered pair twice (sum of the [B, B] matrix): 9.5.
    (A, dict(neg_margin=3.5, reduction="sum"), 9.5),
    # pos_margin 0.5: positives (1 - 0.5)^2 = 0.25 each -> (0.5 + 2.75) / 6 = 3.25 / 6.
    (A, dict(neg_margin=3.5, pos_margin=0.5), 3.25 / 6.0),
    # Defaults (neg_margin 1): negatives all at d >= 2 cost 0; positives 1 each -> 2 / 6.
    (A, dict(), 2.0 / 6.0),
    # B, neg_margin 2: positives d04 = 4 -> 16, d13 = 2 -> 4; negatives d01 = 1 -> 1, d03 = 3 -> 0,
    # d14 = 3 -> 0, d34 = 1 -> 1. (16 + 4 + 1 + 1) / 6 = 22 / 6.
    (B, dict(neg_margin=2.0), 22.0 / 6.0),
])
def test_contrastive_loss_hand_computed(batch, kwargs, expected):
  loss = metric.contrastive_loss(*batch, **kwargs)
  assert loss.shape == ()
  np.testing.assert_allclose(loss, expected, rtol=1e-6, atol=1e-6)


def test_per_unit_shapes_and_sums():
  embeddings, labels = A
  shapes = {"batch_all": (4, 4, 4), "batch_hard": (4,), "semi_hard": (4, 4)}
  for mining, shape in shapes.items():
    per_unit = metric.triplet_loss(embeddings, labels, mining=mining, margin=2.5, reduction="none")
    total = metric.triplet_loss(embeddings, labels, mining=mining, margin=2.5, reduction="sum")
    assert per_unit.shape == shape
    np.testing.assert_allclose(jnp.sum(per_unit), total, rtol=1e-6)
  per_pair = metric.contrastive_loss(embeddings, labels, neg_margin=3.5, reduction="none")
  assert per_pair.shape == (4, 4)
  np.testing.assert_allclose(per_pair, per_pair.T)
  np.testing.assert_array_equal(jnp.diag(per_pair), 0.0)
  np.testing.assert_allclose(per_pair[1, 2], 2.25, rtol=1e-6)  # d13 = 2 -> (3.5 - 2)^2.


# --- anchors without positives or negatives ----------------------------------------------------

def test_singleton_class_anchor_is_masked_out():
  # Batch A plus a singleton at 10 (label 7): it has no positive, so it anchors nothing; as a
  # negative it is farther than every positive + margin 2.5 from anchors 0, 1, 3, 4 (d >= 6), so
  # no triplet changes and the means of batch A are kept (their counts exclude the singleton).
  embeddings = jnp.concatenate([A[0], _line(10)])
  labels = jnp.array([0, 0, 1, 1, 7])
  for mining, expected in [("batch_all", 5.0 / 6.0), ("batch_hard", 1.0), ("semi_hard", 1.0)]:
    loss = metric.triplet_loss(embeddings, labels, mining=mining, margin=2.5)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
  per_anchor = metric.triplet_loss(embeddings, labels, mining="batch_hard", margin=2.5,
                                   reduction="none")
  np.testing.assert_allclose(per_anchor, [0.5, 1.5, 1.5, 0.5, 0.0], rtol=1e-6)


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("labels", [
    [3, 3, 3, 3],  # one class: no negatives.
    [0, 1, 2, 3],  # all singletons: no positives.
    [5],           # B = 1.
])
def test_no_valid_triplet_gives_zero_loss_and_zero_grad(mining, labels):
  labels = jnp.array(labels)
  embeddings = _line(0, 1, 3, 4)[:labels.shape[0]]
  fn = lambda e: metric.triplet_loss(e, labels, mining=mining, margin=1.0)
  loss, grad = jax.jit(jax.value_and_grad(fn))(embeddings)
  assert loss == 0.0
  np.testing.assert_array_equal(grad, 0.0)


def test_contrastive_degenerate_batches():
  # One class: only positives: (1 + 9 + 16 + 4 + 9 + 1) / 6 unordered pairs of 0, 1, 3, 4.
  np.testing.assert_allclose(metric.contrastive_loss(_line(0, 1, 3, 4), jnp.array([1, 1, 1, 1])),
                             40.0 / 6.0, rtol=1e-6)
  # B = 1: no pair at all -> 0.
  assert metric.contrastive_loss(_line(2), jnp.array([0])) == 0.0


# --- brute-force reference in every geometry ---------------------------------------------------

REF_LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3])  # label 2 is a singleton.


@functools.cache
def _random_batch(name, seed):
  """float64 points from the geometry's own random_point (as numpy) and their distance matrix.

  The reference distances use the geometry's elementwise ``dist`` (not the matmul form the loss
  uses) and are then treated as plain numbers by the loops below.
  """
  manifold = GEOMETRIES[name]
  with jax.enable_x64(True):
    x = manifold.random_point(jax.random.key(seed), (len(REF_LABELS), manifold.ambient_dim(3)),
                              c=1.0, dtype=jnp.float64)
    d = manifold.dist(x[:, None, :], x[None, :, :], c=1.0)
    return np.asarray(x), np.asarray(d)


def _reference_triplet(d, labels, mining, margin):
  """(per-unit array, mean) by explicit loops over anchors, positives and negatives."""
  n = len(labels)
  positives = {a: [p for p in range(n) if p != a and labels[p] == labels[a]] for a in range(n)}
  negatives = {a: [q for q in range(n) if labels[q] != labels[a]] for a in range(n)}
  hinge = lambda x: max(x, 0.0)
  if mining == "batch_all":
    out = np.zeros((n, n, n))
    for a, p, q in itertools.product(range(n), repeat=3):
      if p in positives[a] and q in negatives[a]:
        out[a, p, q] = hinge(d[a, p] - d[a, q] + margin)
    active = np.count_nonzero(out)
    return out, out.sum() / active if active else 0.0
  if mining == "batch_hard":
    out, valid = np.zeros(n), 0
    for a in range(n):
      if positives[a] and negatives[a]:
        valid += 1
        out[a] = hinge(max(d[a, p] for p in positives[a])
                       - min(d[a, q] for q in negatives[a]) + margin)
    return out, out.sum() / valid if valid else 0.0
  out, valid = np.zeros((n, n)), 0
  for a in range(n):
    for p in positives[a]:
      if not negatives[a]:
        continue
      valid += 1
      farther = [d[a, q] for q in negatives[a] if d[a, q] > d[a, p]]
      chosen = min(farther) if farther else max(d[a, q] for q in negatives[a])
      out[a, p] = hinge(d[a, p] - chosen + margin)
  return out, out.sum() / valid if valid else 0.0


def _reference_contrastive(d, labels, pos_margin, neg_margin):
  n = len(labels)
  out = np.zeros((n, n))
  for i, j in itertools.product(range(n), repeat=2):
    if i == j:
      continue
    if labels[i] == labels[j]:
      out[i, j] = max(d[i, j] - pos_margin, 0.0) ** 2
    else:
      out[i, j] = max(neg_margin - d[i, j], 0.0) ** 2
  return out, out.sum() / (n * (n - 1))


# Jitted once per geometry and mining (the seeds share shapes), all three reductions at a time.
@functools.partial(jax.jit, static_argnames=("manifold", "mining"))
def _triplet_reductions(x, labels, margin, *, manifold, mining):
  return tuple(metric.triplet_loss(x, labels, manifold=manifold, c=1.0, margin=margin,
                                   mining=mining, reduction=r) for r in REDUCTIONS)


@functools.partial(jax.jit, static_argnames=("manifold",))
def _contrastive_reductions(x, labels, pos_margin, neg_margin, *, manifold):
  return tuple(metric.contrastive_loss(x, labels, manifold=manifold, c=1.0, pos_margin=pos_margin,
                                       neg_margin=neg_margin, reduction=r) for r in REDUCTIONS)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_triplet_loss_matches_loop_reference(name, mining, seed):
  x, d = _random_batch(name, seed)
  # A margin near the median distance gap so that some triplets are active and some are not.
  margin = 0.3 * float(np.median(d))
  expected_units, expected_mean = _reference_triplet(d, REF_LABELS, mining, margin)
  assert 0 < np.count_nonzero(expected_units) < expected_units.size
  with jax.enable_x64(True):
    mean, total, units = _triplet_reductions(jnp.asarray(x), jnp.asarray(REF_LABELS), margin,
                                             manifold=GEOMETRIES[name], mining=mining)
  np.testing.assert_allclose(units, expected_units, rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(mean, expected_mean, rtol=1e-9)
  np.testing.assert_allclose(total, expected_units.sum(), rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_contrastive_loss_matches_loop_reference(name, seed):
  x, d = _random_batch(name, seed)
  pos_margin, neg_margin = 0.2 * float(np.median(d)), float(np.median(d))
  expected_pairs, expected_mean = _reference_contrastive(d, REF_LABELS, pos_margin, neg_margin)
  with jax.enable_x64(True):
    mean, total, pairs = _contrastive_reductions(jnp.asarray(x), jnp.asarray(REF_LABELS),
                                                 pos_margin, neg_margin, manifold=GEOMETRIES[name])
  np.testing.assert_allclose(pairs, expected_pairs, rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(mean, expected_mean, rtol=1e-9)
  np.testing.assert_allclose(total, expected_pairs.sum(), rtol=1e-9)


# --- jit, gradients, non-finite input ----------------------------------------------------------

LOSSES = {
    **{m: functools.partial(metric.triplet_loss, mining=m, margin=0.5) for m in MININGS},
    "contrastive": functools.partial(metric.contrastive_loss, neg_margin=1.0),
}
# The losses added later (multi-similarity, centroid triplet) share the NaN, gradient and error
# tests below.
NEW_LOSSES = {
    "multi_similarity": metric.multi_similarity_loss,
    "multi_similarity_mined": functools.partial(metric.multi_similarity_loss, mining_epsilon=0.1),
    "centroid_triplet": functools.partial(metric.centroid_triplet_loss, num_classes=8),
}
ALL_LOSSES = {**LOSSES, **NEW_LOSSES}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_jit_matches_eager(loss):
  # One geometry (eager dispatch compiles every op: slow); the loop-reference tests above run
  # every geometry jitted.
  manifold = GEOMETRIES["poincare"]
  x = manifold.random_point(jax.random.key(3), (len(REF_LABELS), 3), c=1.0)
  labels = jnp.asarray(REF_LABELS)
  fn = functools.partial(LOSSES[loss], manifold=manifold, c=1.0)
  jitted = jax.jit(lambda e, l: tuple(fn(e, l, reduction=r) for r in REDUCTIONS))(x, labels)
  for reduction, value in zip(REDUCTIONS, jitted):
    np.testing.assert_allclose(value, fn(x, labels, reduction=reduction), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_gradients_finite_with_identical_points(name):
  manifold = GEOMETRIES[name]
  x = manifold.random_point(jax.random.key(4), (6, manifold.ambient_dim(3)), c=1.0)
  # Rows 0 and 1 coincide (same label: a zero positive distance), rows 2 and 3 coincide (different
  # labels: a zero negative distance); rows 4, 5 are the base point, twice (labels 1, 2).
  base = manifold.origin((manifold.ambient_dim(3),), c=1.0, dtype=x.dtype)
  labels = jnp.array([0, 0, 1, 2, 1, 2])
  # Every loss in one jitted program (one compile per geometry).
  values_and_grads = jax.jit(lambda e: {
      loss: jax.value_and_grad(lambda e: fn(e, labels, manifold=manifold, c=1.0))(e)
      for loss, fn in ALL_LOSSES.items()})
  # Then all six points identical: every distance is 0.
  for batch in [jnp.stack([x[0], x[0], x[2], x[2], base, base]), jnp.stack([base] * 6)]:
    for loss, (value, grad) in values_and_grads(batch).items():
      assert np.isfinite(value), loss
      assert np.all(np.isfinite(grad)), loss


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("loss", sorted(ALL_LOSSES))
def test_non_finite_embedding_gives_nan_not_masked(loss, bad):
  # Row 4 is a singleton class (masked out of every triplet), yet its NaN still surfaces.
  embeddings = jnp.concatenate([A[0], _line(10)]).at[4, 0].set(bad)
  labels = jnp.array([0, 0, 1, 1, 7])
  fn = ALL_LOSSES[loss]
  per_unit, (value, grad) = jax.jit(lambda e: (
      fn(e, labels, reduction="none"), jax.value_and_grad(lambda e: fn(e, labels))(e)))(embeddings)
  assert np.isnan(value)
  assert np.all(np.isnan(per_unit))
  np.testing.assert_array_equal(grad, 0.0)


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", sorted(ALL_LOSSES))
@pytest.mark.parametrize("embeddings, labels, kwargs, match", [
    (jnp.zeros((4, 2)), jnp.zeros((3,), jnp.int32), {}, "different lengths"),
    (jnp.zeros((4,)), jnp.zeros((4,), jnp.int32), {}, r"embeddings must be \[B, D\]"),
    (jnp.zeros((4, 2)), jnp.zeros((4, 1), jnp.int32), {}, r"labels must be \[B\]"),
    (jnp.zeros((4, 2)), jnp.zeros((4,)), {}, "labels must be integers"),
    (jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32), {"reduction": "avg"}, "unknown reduction"),
])
def test_errors(loss, embeddings, labels, kwargs, match):
  with pytest.raises(ValueError, match=match):
    ALL_LOSSES[loss](embeddings, labels, **kwargs)
  with pytest.raises(ValueError, match=match):  # Shapes are static: the same error under jit.
    jax.jit(lambda e, l: ALL_LOSSES[loss](e, l, **kwargs))(embeddings, labels)


def test_unknown_mining_raises():
  with pytest.raises(ValueError, match="unknown mining"):
    metric.triplet_loss(*A, mining="hardest")


# === multi-similarity, centroid triplet, SNR ====================================================

def _reference_multi_similarity(sim, pos_w, neg_w, alpha, beta, base, epsilon=None):
  """[B] per-anchor losses of Wang et al. eq. 7 (and mining eq. 3-4) by explicit loops."""
  n = sim.shape[0]
  out = np.zeros(n)
  for i in range(n):
    pos = [j for j in range(n) if j != i and pos_w[i, j] > 0]
    neg = [k for k in range(n) if k != i and neg_w[i, k] > 0]
    if epsilon is not None:
      min_pos = min((sim[i, j] for j in pos), default=np.inf)
      max_neg = max((sim[i, k] for k in neg), default=-np.inf)
      pos, neg = ([j for j in pos if sim[i, j] - epsilon < max_neg],
                  [k for k in neg if sim[i, k] + epsilon > min_pos])
    out[i] = (np.log1p(sum(pos_w[i, j] * np.exp(-alpha * (sim[i, j] - base)) for j in pos)) / alpha
              + np.log1p(sum(neg_w[i, k] * np.exp(beta * (sim[i, k] - base)) for k in neg)) / beta)
  return out


# Unit vectors (1, 0), (0, 1), (-1, 0), labels 0, 0, 1: S01 = 0, S02 = -1, S12 = 0.
MS_BATCH = (jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), jnp.array([0, 0, 1]))
_L = np.log1p
_E = np.exp


@pytest.mark.parametrize("kwargs, expected", [
    # alpha = beta = 1, base 0.5. Anchor 0: P {1} at S 0 -> log(1 + e^0.5); N {2} at S -1 ->
    # log(1 + e^-1.5). Anchor 1: P {0}: log(1 + e^0.5); N {2} at S 0: log(1 + e^-0.5).
    # Anchor 2: no positive (0); N {0, 1} at S -1, 0: log(1 + e^-1.5 + e^-0.5). Mean over 3.
    (dict(), (2 * _L(_E(0.5)) + _L(_E(-1.5)) + _L(_E(-0.5)) + _L(_E(-1.5) + _E(-0.5))) / 3),
    # Mining, epsilon 0.1. Anchor 0: min P = 0, max N = -1: N kept iff -1 + .1 > 0 (no), P kept
    # iff 0 - .1 < -1 (no) -> 0. Anchor 1: min P = 0, max N = 0: both kept. Anchor 2: no P -> no
    # N kept -> 0.
    (dict(mining_epsilon=0.1), (_L(_E(0.5)) + _L(_E(-0.5))) / 3),
    # Soft weights: w(0, 2) = w(2, 0) = 0.5 (pair 0-2 half positive), the rest hard. Anchor 0:
    # P {1: 1, 2: .5}: log(1 + e^.5 + .5 e^1.5); N {2: .5}: log(1 + .5 e^-1.5). Anchor 1 as
    # before. Anchor 2: P {0: .5}: log(1 + .5 e^1.5); N {0: .5, 1: 1}: log(1 + .5 e^-1.5 + e^-.5).
    (dict(label_weights=jnp.array([[1, 1, .5], [1, 1, 0], [.5, 0, 1]])),
     (_L(_E(0.5) + 0.5 * _E(1.5)) + _L(0.5 * _E(-1.5)) + _L(_E(0.5)) + _L(_E(-0.5))
      + _L(0.5 * _E(1.5)) + _L(0.5 * _E(-1.5) + _E(-0.5))) / 3),
])
def test_multi_similarity_hand_computed(kwargs, expected):
  fn = functools.partial(metric.multi_similarity_loss, alpha=1.0, beta=1.0, base=0.5)
  loss = jax.jit(lambda e, l: fn(e, l, **kwargs))(*MS_BATCH)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_multi_similarity_hard_label_weights_equal_labels():
  x, labels = MS_BATCH
  hard = (labels[:, None] == labels[None, :]).astype(jnp.float32)
  fn = jax.jit(lambda w: [(metric.multi_similarity_loss(x, labels, label_weights=w,
                                                         mining_epsilon=eps),
                           metric.multi_similarity_loss(x, labels, mining_epsilon=eps))
                          for eps in [None, 0.1]])
  for soft, plain in fn(hard):
    np.testing.assert_allclose(soft, plain, rtol=1e-6)


@functools.partial(jax.jit, static_argnames=("manifold",))
def _ms_all(x, labels, weights, *, manifold):
  # A radial geometry's similarity is a cosine (up to 1), the others' -d (up to 0).
  kw = dict(manifold=manifold, c=1.0, alpha=2.0, beta=5.0, base=0.2 if manifold.radial else -0.3,
            reduction="none")
  return (metric.multi_similarity_loss(x, labels, **kw),
          metric.multi_similarity_loss(x, labels, mining_epsilon=0.1, **kw),
          metric.multi_similarity_loss(x, labels, label_weights=weights, **kw),
          metric.multi_similarity_loss(x, labels, label_weights=weights, mining_epsilon=0.1, **kw))


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_multi_similarity_matches_loop_reference(name):
  x, d = _random_batch(name, 0)
  sim = np.asarray(x @ x.T) if name == "sphere" else -d
  base = 0.2 if name == "sphere" else -0.3
  same = (REF_LABELS[:, None] == REF_LABELS[None, :]).astype(float)
  soft = np.clip(same + np.random.default_rng(0).uniform(-0.4, 0.4, same.shape), 0.0, 1.0)
  with jax.enable_x64(True):
    got = _ms_all(jnp.asarray(x), jnp.asarray(REF_LABELS), jnp.asarray(soft),
                  manifold=GEOMETRIES[name])
  expected = [_reference_multi_similarity(sim, w, 1 - w, 2.0, 5.0, base, eps)
              for w in (same, soft) for eps in (None, 0.1)]
  for value, reference in zip(got, expected):
    np.testing.assert_allclose(value, reference, rtol=1e-9, atol=1e-12)
  assert not np.allclose(expected[0], expected[1])  # mining changed something.


# --- centroid triplet --------------------------------------------------------------------------

# Points 0, 2, 4 (class 0), 10, 12 (class 1), 20 (class 2, a singleton); centroids 2, 11, 20.
# Margin 10. Anchor 0: leave-one-out centroid of {2, 4} = 3 -> d_pos 3; closest other centroid
# 11 -> 3 - 11 + 10 = 2. Anchor 2: {0, 4} -> 2, d_pos 0, closest 11 (9) -> 1. Anchor 4: {0, 2}
# -> 1, d_pos 3, closest 11 (7) -> 6. Anchor 10: {12}, d_pos 2; centroids 2 (8), 20 (10) ->
# 2 - 8 + 10 = 4. Anchor 12: {10}, d_pos 2; 2 (10), 20 (8) -> 4. Anchor 20: singleton, masked.
CTL_BATCH = (_line(0, 2, 4, 10, 12, 20), jnp.array([0, 0, 0, 1, 1, 2]))


@pytest.mark.parametrize("num_classes", [3, 7])  # Absent classes change nothing.
def test_centroid_triplet_hand_computed(num_classes):
  fn = functools.partial(metric.centroid_triplet_loss, num_classes=num_classes, margin=10.0)
  mean, total, per_anchor = jax.jit(
      lambda e, l: [fn(e, l, reduction=r) for r in REDUCTIONS])(*CTL_BATCH)
  np.testing.assert_allclose(mean, 17.0 / 5.0, rtol=1e-6)
  np.testing.assert_allclose(total, 17.0, rtol=1e-6)
  np.testing.assert_allclose(per_anchor, [2, 1, 6, 4, 4, 0], rtol=1e-6)


@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [1, 1, 1, 1]])
def test_centroid_triplet_no_valid_anchor(labels):
  # All singletons (no positive centroid) or one class (no negative centroid): 0, zero gradient.
  fn = lambda e: metric.centroid_triplet_loss(e, jnp.array(labels), num_classes=4, margin=1.0)
  loss, grad = jax.jit(jax.value_and_grad(fn))(_line(0, 1, 3, 4))
  assert loss == 0.0
  np.testing.assert_array_equal(grad, 0.0)


def test_centroid_triplet_label_out_of_range_is_masked():
  # Label 5 >= num_classes 3: that anchor is masked; it is never a negative centroid.
  labels = jnp.array([0, 0, 0, 1, 1, 5])
  loss = jax.jit(functools.partial(metric.centroid_triplet_loss, num_classes=3, margin=10.0,
                                   reduction="none"))(CTL_BATCH[0], labels)
  np.testing.assert_allclose(loss, [2, 1, 6, 4 + 0, 4 - 2, 0], rtol=1e-6)  # 12: only c0 (10).


def _np_midpoint(points, weights, name):
  """Independent float64 midpoints: mean / renormalised mean / Einstein / Lorentz sum."""
  weights = np.asarray(weights, float)
  if name == "euclidean":
    return weights @ points / weights.sum()
  if name == "sphere":
    s = weights @ points
    return s / np.linalg.norm(s)
  if name == "lorentz":
    s = weights @ points
    return s / np.sqrt(s[0] ** 2 - np.sum(s[1:] ** 2))
  klein = 2 * points / (1 + np.sum(points ** 2, axis=1, keepdims=True))
  gamma = 1 / np.sqrt(1 - np.sum(klein ** 2, axis=1))
  k = (weights * gamma) @ klein / np.sum(weights * gamma)
  return k / (1 + np.sqrt(1 - k @ k))


def _reference_centroid_triplet(x, labels, dist, name, margin):
  n, out, valid = len(labels), np.zeros(len(labels)), 0
  classes = sorted(set(labels))
  centroid = {k: _np_midpoint(x, labels == k, name) for k in classes}
  for a in range(n):
    others = [k for k in classes if k != labels[a]]
    loo = (labels == labels[a]) & (np.arange(n) != a)
    if not loo.any() or not others:
      continue
    valid += 1
    d_pos = dist(x[a], _np_midpoint(x, loo, name))
    d_neg = min(dist(x[a], centroid[k]) for k in others)
    out[a] = max(d_pos - d_neg + margin, 0.0)
  return out, out.sum() / valid


@functools.partial(jax.jit, static_argnames=("manifold",))
def _ctl_all(x, labels, margin, *, manifold):
  return tuple(metric.centroid_triplet_loss(x, labels, num_classes=5, manifold=manifold,
                                            c=1.0, margin=margin, reduction=r)
               for r in ("mean", "none"))


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_centroid_triplet_matches_loop_reference(name):
  x, d = _random_batch(name, 1)
  manifold = GEOMETRIES[name]
  dist = lambda u, v: float(manifold.dist(jnp.asarray(u), jnp.asarray(v), c=1.0))
  margin = 0.1 * float(np.median(d))
  with jax.enable_x64(True):
    expected, expected_mean = _reference_centroid_triplet(x, REF_LABELS, dist, name, margin)
    mean, per_anchor = _ctl_all(jnp.asarray(x), jnp.asarray(REF_LABELS), margin,
                                manifold=manifold)
  assert 0 < np.count_nonzero(expected) < len(expected) - 1  # Some active, the singleton masked.
  assert expected[REF_LABELS == 2] == 0.0
  np.testing.assert_allclose(per_anchor, expected, rtol=1e-8, atol=1e-10)
  np.testing.assert_allclose(mean, expected_mean, rtol=1e-8)


# --- SNR ---------------------------------------------------------------------------------------

def _np_snr(x):
  """d[i, j] = Var(x_j - x_i) / Var(x_i), population variances over the features."""
  return np.array([[np.var(y - a) / np.var(a) for y in x] for a in x])


@functools.cache
def _snr_batch(seed):
  return np.random.default_rng(seed).normal(size=(len(REF_LABELS), 6))


@pytest.mark.parametrize("seed", [0, 1])
def test_snr_distance_matches_numpy(seed):
  x = _snr_batch(seed)
  with jax.enable_x64(True):
    d = metric.snr_distance(jnp.asarray(x), jnp.asarray(x[::-1]))
  np.testing.assert_allclose(d, _np_snr(np.concatenate([x, x[::-1]]))[:len(x), len(x):],
                             rtol=1e-10, atol=1e-12)
  assert not np.allclose(d, d.T)  # Asymmetric.


@functools.partial(jax.jit, static_argnames=("mining",))
def _snr_losses(x, labels, *, mining):
  return (metric.triplet_loss(x, labels, margin=0.3, mining=mining, distance="snr",
                              reduction="none"),
          metric.triplet_loss(x, labels, margin=0.3, mining=mining, distance="snr"),
          metric.contrastive_loss(x, labels, pos_margin=1.5, neg_margin=2.2, distance="snr",
                                  reduction="none"))


@pytest.mark.parametrize("mining", MININGS)
def test_snr_losses_match_loop_reference(mining):
  x = _snr_batch(0)
  d = _np_snr(x)
  with jax.enable_x64(True):
    units, mean, pairs = _snr_losses(jnp.asarray(x), jnp.asarray(REF_LABELS), mining=mining)
  expected_units, expected_mean = _reference_triplet(d, REF_LABELS, mining, 0.3)
  np.testing.assert_allclose(units, expected_units, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(mean, expected_mean, rtol=1e-9)
  np.testing.assert_allclose(pairs, _reference_contrastive(d, REF_LABELS, 1.5, 2.2)[0],
                             rtol=1e-9, atol=1e-12)


def test_snr_regularizer_hand_computed():
  # Row sums -1 and 2 -> |.| 1 and 2.
  x = jnp.array([[1.0, 2.0, -4.0], [0.0, 1.0, 1.0]])
  fn = metric.snr_regularizer
  mean, total, rows, (bad, bad_grad) = jax.jit(lambda e: (
      fn(e), fn(e, weight=0.1, reduction="sum"), fn(e, reduction="none"),
      jax.value_and_grad(fn)(e.at[0, 0].set(np.nan))))(x)
  np.testing.assert_allclose(mean, 1.5, rtol=1e-6)
  np.testing.assert_allclose(total, 0.3, rtol=1e-6)
  np.testing.assert_allclose(rows, [1, 2], rtol=1e-6)
  assert np.isnan(bad)
  np.testing.assert_array_equal(bad_grad, 0.0)


@pytest.mark.parametrize("loss", [metric.contrastive_loss, metric.triplet_loss])
@pytest.mark.parametrize("name", [n for n, m in sorted(GEOMETRIES.items()) if not m.vector_space]
                         + sorted(BARE))  # Euclidean space without the flag included.
def test_snr_distance_rejects_non_euclidean_manifolds(loss, name):
  manifold = BARE[name] if name in BARE else GEOMETRIES[name]
  with pytest.raises(ValueError, match="snr"):
    loss(jnp.zeros((4, 3)), jnp.zeros((4,), jnp.int32), manifold=manifold, distance="snr")


# --- agreement with pytorch-metric-learning ----------------------------------------------------

# Printed by `/work/benchvenv/bin/python benchmarks/pml_reference_metric.py` (torch 2.13.0+cpu,
# pytorch-metric-learning 2.9.0, float64); the inputs are rebuilt by _pml_inputs below.
PML_LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3, 4, 4])
PML = {
    0: dict(ms_cosine=0.8456290587647718, ms_cosine_mined=0.78718575551546,
            ms_lp=1.2688454551007882, ms_lp_mined=1.174266067968562,
            snr_contrastive=2.6337215095353645, snr_triplet=1.5891503895654282,
            zero_mean=0.9292416573117875, triplet_all=0.5787525740678188,
            triplet_hard=1.0315000113870498, lp_contrastive=1.552314514691065),
    1: dict(ms_cosine=1.1787972155520106, ms_cosine_mined=1.1771982408160664,
            ms_lp=1.0748650853569053, ms_lp_mined=1.0465545892421961,
            snr_contrastive=2.4948833493329854, snr_triplet=1.28730154945021,
            zero_mean=0.6389969280716525, triplet_all=0.39875386286213926,
            triplet_hard=0.8538729481696492, lp_contrastive=1.1150009669645728),
}


def _pml_inputs(seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(len(PML_LABELS), 5))
  return x / np.linalg.norm(x, axis=1, keepdims=True), 0.5 * rng.normal(size=(len(PML_LABELS), 5))


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_pml(seed):
  unit, euclid = _pml_inputs(seed)
  expected = PML[seed]
  labels = jnp.asarray(PML_LABELS)
  euclidean = GEOMETRIES["euclidean"]
  with jax.enable_x64(True):
    got, per_pair = jax.jit(_embedlab_pml_values)(jnp.asarray(unit), jnp.asarray(euclid), labels)
  same = PML_LABELS[:, None] == PML_LABELS[None, :]
  for name, squared_hinges in per_pair.items():
    hinge = np.sqrt(np.asarray(squared_hinges))
    pos, neg = hinge[same & ~np.eye(len(PML_LABELS), dtype=bool)], hinge[~same]
    got[name] = pos[pos > 0].mean() + neg[neg > 0].mean()
  assert set(got) == set(expected)
  for name, value in got.items():
    np.testing.assert_allclose(value, expected[name], rtol=1e-9, err_msg=name)


def _embedlab_pml_values(unit, euclid, labels):
  euclidean = GEOMETRIES["euclidean"]
  # PML MultiSimilarityLoss(2, 50, 0.5) with CosineSimilarity (+ MultiSimilarityMiner(0.1)).
  got = dict(ms_cosine=metric.multi_similarity_loss(unit, labels),
             ms_cosine_mined=metric.multi_similarity_loss(unit, labels, mining_epsilon=0.1))
  # PML with LpDistance(normalize_embeddings=False), base 1.0 == embedlab base -1.0 (S = -d).
  lp = dict(manifold=euclidean, c=0.0, alpha=2.0, beta=5.0, base=-1.0)
  got["ms_lp"] = metric.multi_similarity_loss(euclid, labels, **lp)
  got["ms_lp_mined"] = metric.multi_similarity_loss(euclid, labels, mining_epsilon=0.1, **lp)
  # PML TripletMarginLoss(0.3, SNRDistance(normalize_embeddings=False)): all triplets, the
  # mean over non-zero ones == embedlab batch_all.
  got["snr_triplet"] = metric.triplet_loss(euclid, labels, margin=0.3, distance="snr")
  got["zero_mean"] = metric.snr_regularizer(euclid)
  # PML ContrastiveLoss uses unsquared hinges and AvgNonZeroReducer on the positive and the
  # negative pairs separately; embedlab squares the hinges and averages all pairs. Same pairs
  # and distances: PML's value is rebuilt from embedlab's per-pair matrix.
  per_pair = dict(
      snr_contrastive=metric.contrastive_loss(euclid, labels, pos_margin=1.5, neg_margin=2.2,
                                              distance="snr", reduction="none"),
      lp_contrastive=metric.contrastive_loss(euclid, labels, manifold=euclidean,
                                             pos_margin=0.2, neg_margin=1.0, reduction="none"))
  # PML TripletMarginLoss(0.2, LpDistance): all triplets, mean over the non-zero ones ==
  # batch_all; with BatchHardMiner and MeanReducer == batch_hard (the singleton anchor of
  # label 2 is skipped by both).
  got["triplet_all"] = metric.triplet_loss(euclid, labels, manifold=euclidean, margin=0.2)
  got["triplet_hard"] = metric.triplet_loss(euclid, labels, manifold=euclidean, margin=0.2,
                                            mining="batch_hard")
  return got, per_pair


# --- jit of the new losses -----------------------------------------------------------------------



@pytest.mark.parametrize("loss", sorted(NEW_LOSSES))
def test_new_losses_jit_matches_eager(loss):
  fn = NEW_LOSSES[loss]
  # Eager in the cheapest geometry (eager dispatch compiles every op); jitted tests above cover
  # every geometry.
  manifold = GEOMETRIES["euclidean"]
  x = manifold.random_point(jax.random.key(3), (len(REF_LABELS), 3), c=1.0)
  labels = jnp.asarray(REF_LABELS)
  g = functools.partial(fn, manifold=manifold)
  np.testing.assert_allclose(jax.jit(g)(x, labels), g(x, labels), rtol=1e-5)


def test_label_weights_and_num_classes_errors():
  with pytest.raises(ValueError, match=r"label_weights must be \[B, B\]"):
    metric.multi_similarity_loss(*MS_BATCH, label_weights=jnp.ones((3, 2)))
  with pytest.raises(ValueError, match="num_classes"):
    metric.centroid_triplet_loss(*CTL_BATCH, num_classes=0)
  with pytest.raises(ValueError, match=r"embeddings must be \[B, D\]"):
    metric.snr_regularizer(jnp.zeros(3))
