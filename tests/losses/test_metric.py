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
      for loss, fn in LOSSES.items()})
  # Then all six points identical: every distance is 0.
  for batch in [jnp.stack([x[0], x[0], x[2], x[2], base, base]), jnp.stack([base] * 6)]:
    for loss, (value, grad) in values_and_grads(batch).items():
      assert np.isfinite(value), loss
      assert np.all(np.isfinite(grad)), loss


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_non_finite_embedding_gives_nan_not_masked(loss, bad):
  # Row 4 is a singleton class (masked out of every triplet), yet its NaN still surfaces.
  embeddings = jnp.concatenate([A[0], _line(10)]).at[4, 0].set(bad)
  labels = jnp.array([0, 0, 1, 1, 7])
  fn = LOSSES[loss]
  per_unit, (value, grad) = jax.jit(lambda e: (
      fn(e, labels, reduction="none"), jax.value_and_grad(lambda e: fn(e, labels))(e)))(embeddings)
  assert np.isnan(value)
  assert np.all(np.isnan(per_unit))
  np.testing.assert_array_equal(grad, 0.0)


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("embeddings, labels, kwargs, match", [
    (jnp.zeros((4, 2)), jnp.zeros((3,), jnp.int32), {}, "different lengths"),
    (jnp.zeros((4,)), jnp.zeros((4,), jnp.int32), {}, r"embeddings must be \[B, D\]"),
    (jnp.zeros((4, 2)), jnp.zeros((4, 1), jnp.int32), {}, r"labels must be \[B\]"),
    (jnp.zeros((4, 2)), jnp.zeros((4,)), {}, "labels must be integers"),
    (jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32), {"reduction": "avg"}, "unknown reduction"),
])
def test_errors(loss, embeddings, labels, kwargs, match):
  with pytest.raises(ValueError, match=match):
    LOSSES[loss](embeddings, labels, **kwargs)
  with pytest.raises(ValueError, match=match):  # Shapes are static: the same error under jit.
    jax.jit(lambda e, l: LOSSES[loss](e, l, **kwargs))(embeddings, labels)


def test_unknown_mining_raises():
  with pytest.raises(ValueError, match="unknown mining"):
    metric.triplet_loss(*A, mining="hardest")
