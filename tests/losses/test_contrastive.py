"""Tests for embedlab.losses.contrastive: hand-computed values, a float64 NumPy loop reference in
every geometry, agreement with pytorch-metric-learning, masking (singletons, absent classes),
jit == no-jit, finite gradients at identical points and tiny temperatures, NaN input, errors."""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab.geometry import GEOMETRIES, euclidean, sphere
from embedlab.losses import contrastive

REDUCTIONS = ["mean", "sum", "none"]
EUCLIDEAN, SPHERE = euclidean.MANIFOLD, sphere.MANIFOLD


def _line(*xs):
  """Points on the real line as a [B, 1] Euclidean batch (integers: the matmul form is exact)."""
  return jnp.array([[x] for x in xs], jnp.float32)


def _softplus(x):
  return math.log1p(math.exp(x))


# --- hand-computed values ----------------------------------------------------------------------

E = math.e
# Line 0, 1, 2, 3 with labels 0, 0, 0, 1, similarity -d, temperature 1.
#   NT-Xent, pair (a, p) -> log(1 + sum_n e^(s_an - s_ap)) with the single negative 3:
#   (0,1): log(1 + e^(-3+1))  (0,2): log(1 + e^(-3+2))  (1,0), (1,2): log(1 + e^(-2+1)) each
#   (2,0): log(1 + e^(-1+2))  (2,1): log(1 + e^0). Mean over the 6 pairs.
#   SupCon, anchor i -> log Z_i - mean_{p in P(i)} s_ip with Z_i = sum_{a != i} e^s_ia:
#   0: Z = e^-1 + e^-2 + e^-3, mean s = -1.5;  1: Z = 2 e^-1 + e^-2, mean s = -1;
#   2: Z = e^-2 + 2 e^-1, mean s = -1.5;  3: no positive. Mean over 3 anchors.
LINE = (_line(0, 1, 2, 3), jnp.array([0, 0, 0, 1]))
LINE_NTXENT = [_softplus(-2), _softplus(-1), _softplus(-1), _softplus(-1), _softplus(1),
               math.log(2)]
LINE_SUPCON = [math.log(E**-1 + E**-2 + E**-3) + 1.5, math.log(2 / E + E**-2) + 1.0,
               math.log(E**-2 + 2 / E) + 1.5]
# Unit square corners e0, e1, -e0, -e1 on the sphere, labels 0, 0, 1, 1: every positive pair
# has cosine 0 and its anchor's negatives have cosines -1 and 0 -> log(1 + e^-1 + e^0) each.
SQUARE = (jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), jnp.array([0, 0, 1, 1]))


@pytest.mark.parametrize("loss, batch, kwargs, expected", [
    ("ntxent", LINE, dict(manifold=EUCLIDEAN, temperature=1.0), sum(LINE_NTXENT) / 6),
    ("ntxent", LINE, dict(manifold=EUCLIDEAN, temperature=1.0, reduction="sum"),
     sum(LINE_NTXENT)),
    # temperature 0.5 doubles every similarity: (0,1): log(1 + e^(-6+2)) ... as above, times 2.
    ("ntxent", LINE, dict(manifold=EUCLIDEAN, temperature=0.5),
     (_softplus(-4) + 3 * _softplus(-2) + _softplus(2) + math.log(2)) / 6),
    ("ntxent", SQUARE, dict(manifold=SPHERE, temperature=1.0), math.log(2 + 1 / E)),
    ("supcon", LINE, dict(manifold=EUCLIDEAN, temperature=1.0), sum(LINE_SUPCON) / 3),
    ("supcon", LINE, dict(manifold=EUCLIDEAN, temperature=1.0, reduction="sum"),
     sum(LINE_SUPCON)),
    # Square: anchor 0, A = {1, 2, 3} with cosines 0, -1, 0, its positive 1 at cosine 0.
    ("supcon", SQUARE, dict(manifold=SPHERE, temperature=1.0), math.log(2 + 1 / E)),
])
def test_labelled_losses_hand_computed(loss, batch, kwargs, expected):
  fn = {"ntxent": contrastive.ntxent_loss, "supcon": contrastive.supcon_loss}[loss]
  value = fn(*batch, **kwargs)
  assert value.shape == ()
  np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_labelled_losses_per_unit_hand_computed():
  per_pair = contrastive.ntxent_loss(*LINE, manifold=EUCLIDEAN, temperature=1.0,
                                     reduction="none")
  expected = np.zeros((4, 4))
  for (a, p), value in zip([(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)], LINE_NTXENT):
    expected[a, p] = value
  np.testing.assert_allclose(per_pair, expected, rtol=1e-6, atol=1e-7)
  per_anchor = contrastive.supcon_loss(*LINE, manifold=EUCLIDEAN, temperature=1.0,
                                       reduction="none")
  np.testing.assert_allclose(per_anchor, LINE_SUPCON + [0.0], rtol=1e-6)


E0, E1 = [1.0, 0.0], [0.0, 1.0]


@pytest.mark.parametrize("kwargs, expected", [
    # Identical views: logits [[1, 0], [0, 1]] -> log(1 + e^-1) per row, either direction.
    (dict(queries=[E0, E1], keys=[E0, E1]), math.log(1 + 1 / E)),
    (dict(queries=[E0, E1], keys=[E0, E1], symmetric=True), math.log(1 + 1 / E)),
    # keys e0, -e0: logits [[1, -1], [0, 0]] -> rows log(1 + e^-2), log 2.
    (dict(queries=[E0, E1], keys=[E0, [-1.0, 0.0]]), (_softplus(-2) + math.log(2)) / 2),
    # Columns [1, 0] (target 0) and [-1, 0] (target 1) -> log(1 + e^-1) each; averaged per row.
    (dict(queries=[E0, E1], keys=[E0, [-1.0, 0.0]], symmetric=True),
     (_softplus(-2) + math.log(2) + 2 * _softplus(-1)) / 4),
    # Temperature 0.5 on the first example: logits [[2, 0], [0, 2]].
    (dict(queries=[E0, E1], keys=[E0, E1], temperature=0.5), _softplus(-2)),
])
def test_infonce_hand_computed(kwargs, expected):
  kwargs = dict(kwargs, temperature=kwargs.get("temperature", 1.0))
  queries, keys = jnp.array(kwargs.pop("queries")), jnp.array(kwargs.pop("keys"))
  np.testing.assert_allclose(contrastive.infonce_loss(queries, keys, **kwargs), expected,
                             rtol=1e-6)


@pytest.mark.parametrize("l2_weight, reduction, expected", [
    # Inner products a @ p.T = [[2, 0], [0, 1]] -> rows log(1 + e^-2), log(1 + e^-1).
    (0.0, "none", [_softplus(-2), _softplus(-1)]),
    (0.0, "mean", (_softplus(-2) + _softplus(-1)) / 2),
    # l2_weight 0.4 adds 0.1 (|a_i|^2 + |p_i|^2): 0.1 * (1 + 4) = 0.5 and 0.1 * (1 + 1) = 0.2.
    (0.4, "none", [_softplus(-2) + 0.5, _softplus(-1) + 0.2]),
    (0.4, "sum", _softplus(-2) + _softplus(-1) + 0.7),
])
def test_npair_hand_computed(l2_weight, reduction, expected):
  anchors, positives = jnp.array([E0, E1]), jnp.array([[2.0, 0.0], E1])
  value = contrastive.npair_loss(anchors, positives, l2_weight=l2_weight, reduction=reduction)
  np.testing.assert_allclose(value, expected, rtol=1e-6)


# Support 0, 2 (class 0) and 4 (class 1); class 2 has no support; prototypes 1 and 4.
# Queries: 2 (class 0), 5 (class 1), 0 (class 2: no prototype, masked out).
PROTO = dict(support=_line(0, 2, 4), support_labels=jnp.array([0, 0, 1]),
             queries=_line(2, 5, 0), query_labels=jnp.array([0, 1, 2]), num_classes=3)


@pytest.mark.parametrize("kwargs, expected", [
    # Squared: query 2: d^2 = 1 (own), 4 -> log(1 + e^-3);
    # query 5: 16, 1 (own) -> log(1 + e^-15).
    (dict(reduction="none"), [_softplus(-3), _softplus(-15), 0.0]),
    (dict(), (_softplus(-3) + _softplus(-15)) / 2),
    # Plain distances: query 2: 1 (own), 2 -> log(1 + e^-1); query 5: 4, 1 (own) ->
    # log(1 + e^-3).
    (dict(squared=False, reduction="none"), [_softplus(-1), _softplus(-3), 0.0]),
    (dict(squared=False, reduction="sum"), _softplus(-1) + _softplus(-3)),
    # num_classes 2: query label 2 is out of range: masked the same way.
    (dict(num_classes=2), (_softplus(-3) + _softplus(-15)) / 2),
])
def test_prototypical_hand_computed(kwargs, expected):
  value = contrastive.prototypical_loss(**dict(PROTO, **kwargs))
  np.testing.assert_allclose(value, expected, rtol=1e-6)


# --- degenerate batches ------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["ntxent", "supcon"])
def test_all_singletons_give_zero_loss_and_zero_grad(loss):
  fn = {"ntxent": contrastive.ntxent_loss, "supcon": contrastive.supcon_loss}[loss]
  labels = jnp.array([0, 1, 2, 3])
  value, grad = jax.jit(jax.value_and_grad(
      lambda e: fn(e, labels, manifold=EUCLIDEAN)))(_line(0, 1, 3, 4))
  assert value == 0.0
  np.testing.assert_array_equal(grad, 0.0)


def test_single_class_batch():
  # Three identical points, one label. NT-Xent: no negative anywhere -> every pair costs 0 (as
  # PML). SupCon follows eq. (2): two positives at equal similarity -> log 2 (PML returns 0).
  x, labels = jnp.ones((3, 1)), jnp.array([5, 5, 5])
  assert contrastive.ntxent_loss(x, labels, manifold=EUCLIDEAN) == 0.0
  np.testing.assert_allclose(contrastive.supcon_loss(x, labels, manifold=EUCLIDEAN), math.log(2),
                             rtol=1e-6)


def test_singleton_does_not_change_other_anchors_except_as_negative():
  # Adding a singleton far away (d = 100, temperature 1) to LINE leaves the other terms
  # numerically unchanged and adds no unit of its own.
  x = jnp.concatenate([LINE[0], _line(100)])
  labels = jnp.array([0, 0, 0, 1, 9])
  np.testing.assert_allclose(contrastive.ntxent_loss(x, labels, manifold=EUCLIDEAN,
                                                     temperature=1.0),
                             sum(LINE_NTXENT) / 6, rtol=1e-6)
  per_anchor = contrastive.supcon_loss(x, labels, manifold=EUCLIDEAN, temperature=1.0,
                                       reduction="none")
  np.testing.assert_allclose(per_anchor, LINE_SUPCON + [0.0, 0.0], rtol=1e-6)


def test_prototypical_no_scorable_query_gives_zero_and_zero_grad():
  fn = lambda s, q: contrastive.prototypical_loss(s, jnp.array([0, 0]), q, jnp.array([1, 2]),
                                                  num_classes=3)
  value, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(_line(0, 1), _line(2, 3))
  assert value == 0.0
  for grad in grads:
    np.testing.assert_array_equal(grad, 0.0)


# --- PML agreement -----------------------------------------------------------------------------

# Printed by `/work/benchvenv/bin/python benchmarks/pml_reference_contrastive.py` with torch
# 2.13.0+cpu and pytorch-metric-learning 2.9.0 (float64): NTXentLoss(temperature=t) and
# SupConLoss(temperature=t), their default CosineSimilarity and reducers.
PML_LABELLED = {  # (seed, num_classes, temperature): (ntxent, supcon)
    (0, 4, 0.07): (11.599435178731852, 10.747373002700932),
    (0, 4, 0.1): (8.209815482333891, 7.636658763816968),
    (0, 4, 0.5): (2.7425937186725045, 2.743419973845904),
    (1, 4, 0.07): (9.577564558011067, 11.778439184811354),
    (1, 4, 0.1): (6.91757458647438, 8.49409936342732),
    (1, 4, 0.5): (2.6169874852721717, 3.056089852144813),
    # Labels [6, 1, 3, 1, 5, 4, 1, 0, 0, 0, 5, 5]: classes 6, 3, 4 are singletons.
    (2, 7, 0.07): (8.428435604169712, 8.851323298415801),
    (2, 7, 0.1): (6.098600529257347, 6.388429166972009),
    (2, 7, 0.5): (2.50514791083921, 2.6153447989727883),
}
# Same command: NPairsLoss() (its DotProductSimilarity L2-normalises: cosine) and
# NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False)) (the inner product) on
# concat([anchors, positives]) with labels concat([arange(6), arange(6)]).
PML_NPAIR = {  # seed: (default / cosine, inner product)
    0: (1.2609468541018287, 0.9627712929916029),
    1: (1.1498074173434742, 0.8118219707584795),
}


def _pml_labelled_inputs(seed, num_classes):
  """The NumPy calls of benchmarks/pml_reference_contrastive.py: unit vectors [12, 5], labels."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((12, 5))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  return x, rng.integers(0, num_classes, size=12)


def _pml_npair_inputs(seed):
  rng = np.random.default_rng(seed)
  anchors = rng.standard_normal((6, 4))
  return anchors, anchors + 0.5 * rng.standard_normal((6, 4))


@pytest.mark.parametrize("seed, num_classes, temperature", sorted(PML_LABELLED))
def test_ntxent_and_supcon_match_pml(seed, num_classes, temperature):
  x, labels = _pml_labelled_inputs(seed, num_classes)
  expected_ntxent, expected_supcon = PML_LABELLED[seed, num_classes, temperature]
  with jax.enable_x64(True):
    x, labels = jnp.asarray(x), jnp.asarray(labels)
    ntxent = contrastive.ntxent_loss(x, labels, temperature=temperature)
    supcon = contrastive.supcon_loss(x, labels, temperature=temperature)
  np.testing.assert_allclose(ntxent, expected_ntxent, rtol=1e-5)
  np.testing.assert_allclose(supcon, expected_supcon, rtol=1e-5)


@pytest.mark.parametrize("seed", sorted(PML_NPAIR))
def test_npair_matches_pml(seed):
  anchors, positives = _pml_npair_inputs(seed)
  expected_cosine, expected_inner = PML_NPAIR[seed]
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  with jax.enable_x64(True):
    inner = contrastive.npair_loss(jnp.asarray(anchors), jnp.asarray(positives))
    cosine = contrastive.npair_loss(jnp.asarray(unit(anchors)), jnp.asarray(unit(positives)),
                                    manifold=SPHERE)
  np.testing.assert_allclose(inner, expected_inner, rtol=1e-5)
  np.testing.assert_allclose(cosine, expected_cosine, rtol=1e-5)


# --- brute-force reference in every geometry ---------------------------------------------------

REF_LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3])  # label 2 is a singleton.
TEMPERATURE = 0.5


def _random_points(name, seed, n, dim=3):
  """float64 points of the geometry (c = 1), drawn with NumPy: the reference touches no JAX."""
  rng = np.random.default_rng(seed)
  v = rng.standard_normal((n, dim))
  if name == "euclidean":
    return v
  if name == "sphere":
    return v / np.linalg.norm(v, axis=1, keepdims=True)
  norm = np.linalg.norm(v, axis=1, keepdims=True)
  ball = np.tanh(0.7 * norm) * v / norm  # Radii up to ~0.99: distances of a few units.
  if name == "poincare":
    return ball
  sq = np.sum(ball**2, axis=1, keepdims=True)  # The ball -> hyperboloid isometry.
  return np.concatenate([(1 + sq) / (1 - sq), 2 * ball / (1 - sq)], axis=1)


def _dist(name, x, y):
  """Closed-form geodesic distance matrix (c = 1) in NumPy, float64."""
  diff_sq = np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
  if name == "euclidean":
    return np.sqrt(diff_sq)
  if name == "sphere":
    return 2 * np.arcsin(np.minimum(np.sqrt(diff_sq) / 2, 1.0))
  if name == "poincare":
    denom = np.outer(1 - np.sum(x**2, axis=1), 1 - np.sum(y**2, axis=1))
    return np.arccosh(1 + 2 * diff_sq / denom)
  minkowski = -np.outer(x[:, 0], y[:, 0]) + x[:, 1:] @ y[:, 1:].T
  return np.arccosh(np.maximum(-minkowski, 1.0))


def _similarity(name, x, y):
  return x @ y.T if name == "sphere" else -_dist(name, x, y)


def _log_softmax_at(row, target):
  return row[target] - np.log(np.sum(np.exp(row - row.max()))) - row.max()


def _reference_ntxent(s, labels):
  n = len(labels)
  out = np.zeros((n, n))
  for a, p in itertools.product(range(n), repeat=2):
    if a != p and labels[a] == labels[p]:
      negatives = [s[a, q] for q in range(n) if labels[q] != labels[a]]
      out[a, p] = -_log_softmax_at(np.array([s[a, p]] + negatives), 0)
  num_pairs = sum(labels[a] == labels[p] and a != p
                  for a, p in itertools.product(range(n), repeat=2))
  return out, out.sum() / num_pairs


def _reference_supcon(s, labels):
  n = len(labels)
  out, valid = np.zeros(n), 0
  for i in range(n):
    others = [j for j in range(n) if j != i]
    positives = [k for k, j in enumerate(others) if labels[j] == labels[i]]
    if positives:
      valid += 1
      row = s[i, others]
      out[i] = -np.mean([_log_softmax_at(row, k) for k in positives])
  return out, out.sum() / valid


def _reference_infonce(s, symmetric):
  n = s.shape[0]
  out = np.array([-_log_softmax_at(s[i], i) for i in range(n)])
  if symmetric:
    out = 0.5 * (out + np.array([-_log_softmax_at(s[:, i], i) for i in range(n)]))
  return out, out.mean()


def _reference_midpoint(name, points):
  """Class midpoint by the formulas of the papers, written independently in numpy."""
  if name == "euclidean":
    return points.mean(axis=0)
  if name == "sphere":
    mean = points.mean(axis=0)
    return mean / np.linalg.norm(mean)
  if name == "lorentz":
    s = points.sum(axis=0)
    return s / np.sqrt(s[0] ** 2 - np.sum(s[1:] ** 2))
  # Einstein midpoint in the Klein model (Khrulkov et al. 2020), back to the ball.
  klein = np.array([2 * p / (1 + p @ p) for p in points])
  gamma = np.array([1 / np.sqrt(1 - k @ k) for k in klein])
  mean = (gamma[:, None] * klein).sum(axis=0) / gamma.sum()
  return mean / (1 + np.sqrt(1 - mean @ mean))


def _reference_prototypical(name, support, support_labels, queries, query_labels, squared):
  classes = sorted(set(support_labels.tolist()))
  prototypes = np.array([_reference_midpoint(name, support[support_labels == k])
                         for k in classes])
  d = _dist(name, queries, prototypes)
  logits = -d**2 if squared else -d
  out = np.zeros(len(query_labels))
  for i, label in enumerate(query_labels):
    if label in classes:
      out[i] = -_log_softmax_at(logits[i], classes.index(label))
  return out, out.sum() / np.isin(query_labels, classes).sum()


PROTO_QUERY_LABELS = np.array([0, 1, 2, 3, 4, 1])  # Class 4 has no support: masked.


# Every loss and reduction of one geometry in one jitted program (one compile per geometry).
@functools.partial(jax.jit, static_argnames=("manifold",))
def _all_reductions(x, labels, queries, keys, support, query_labels, *, manifold):
  kw = dict(manifold=manifold, c=1.0, temperature=TEMPERATURE)
  proto = lambda squared, r: contrastive.prototypical_loss(
      support, labels, queries, query_labels, num_classes=6, manifold=manifold, c=1.0,
      squared=squared, reduction=r)
  losses = {
      "ntxent": lambda r: contrastive.ntxent_loss(x, labels, **kw, reduction=r),
      "supcon": lambda r: contrastive.supcon_loss(x, labels, **kw, reduction=r),
      "infonce": lambda r: contrastive.infonce_loss(queries, keys, **kw, reduction=r),
      "infonce_symmetric": lambda r: contrastive.infonce_loss(queries, keys, **kw,
                                                              symmetric=True, reduction=r),
      "npair": lambda r: contrastive.npair_loss(queries, keys, manifold=manifold, reduction=r),
      "prototypical": functools.partial(proto, True),
      "prototypical_plain": functools.partial(proto, False),
  }
  return {name: tuple(fn(r) for r in REDUCTIONS) for name, fn in losses.items()}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_losses_match_loop_reference(name):
  x = _random_points(name, 0, len(REF_LABELS))
  queries, keys = _random_points(name, 1, 6), _random_points(name, 2, 6)
  # Classes 0..3 have support, class 4 none, class 5 is never used.
  support = _random_points(name, 3, len(REF_LABELS))
  s = _similarity(name, x, x) / TEMPERATURE
  s_qk = _similarity(name, queries, keys)
  expected = {
      "ntxent": _reference_ntxent(s, REF_LABELS),
      "supcon": _reference_supcon(s, REF_LABELS),
      "infonce": _reference_infonce(s_qk / TEMPERATURE, False),
      "infonce_symmetric": _reference_infonce(s_qk / TEMPERATURE, True),
      # N-pair: Sohn's inner product in Euclidean space, the shared similarity elsewhere.
      "npair": _reference_infonce(queries @ keys.T if name == "euclidean" else s_qk, False),
      "prototypical": _reference_prototypical(name, support, REF_LABELS, queries,
                                              PROTO_QUERY_LABELS, True),
      "prototypical_plain": _reference_prototypical(name, support, REF_LABELS, queries,
                                                    PROTO_QUERY_LABELS, False),
  }
  assert expected["prototypical"][0][4] == 0.0
  with jax.enable_x64(True):
    got = _all_reductions(*map(jnp.asarray, (x, REF_LABELS, queries, keys, support,
                                             PROTO_QUERY_LABELS)), manifold=GEOMETRIES[name])
  for loss, (expected_units, expected_mean) in expected.items():
    mean, total, units = got[loss]
    np.testing.assert_allclose(units, expected_units, rtol=1e-9, atol=1e-12, err_msg=loss)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-9, err_msg=loss)
    np.testing.assert_allclose(total, expected_units.sum(), rtol=1e-9, err_msg=loss)


# --- jit, gradients, non-finite input ----------------------------------------------------------

def _labelled(fn):
  return lambda x, *, manifold, **kw: fn(x[:6], jnp.array([0, 0, 1, 1, 2, 3]), manifold=manifold,
                                         **kw)


def _paired(fn, **fixed):
  return lambda x, *, manifold, **kw: fn(x[:4], x[4:8], manifold=manifold, **fixed, **kw)


def _proto(x, *, manifold, **kw):
  return contrastive.prototypical_loss(x[:5], jnp.array([0, 0, 1, 2, 2]), x[5:8],
                                       jnp.array([0, 1, 3]), num_classes=4, manifold=manifold,
                                       **kw)


# Each takes an [8, D] batch of points.
LOSSES = {
    "ntxent": _labelled(contrastive.ntxent_loss),
    "supcon": _labelled(contrastive.supcon_loss),
    "infonce": _paired(contrastive.infonce_loss),
    "infonce_symmetric": _paired(contrastive.infonce_loss, symmetric=True),
    "npair": _paired(contrastive.npair_loss),
    "prototypical": _proto,
    "prototypical_plain": functools.partial(_proto, squared=False),
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_jit_matches_eager(loss):
  # One geometry (eager dispatch compiles every op: slow); the loop-reference tests above run
  # every geometry jitted.
  manifold = GEOMETRIES["poincare"]
  x = manifold.random_point(jax.random.key(3), (8, 3), c=1.0)
  fn = functools.partial(LOSSES[loss], manifold=manifold)
  # "sum" is the sum of "none"; leaving it out saves eager compiles.
  reductions = ["mean", "none"]
  jitted = jax.jit(lambda e: tuple(fn(e, reduction=r) for r in reductions))(x)
  for reduction, value in zip(reductions, jitted):
    np.testing.assert_allclose(value, fn(x, reduction=reduction), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_gradients_finite_at_identical_points_and_tiny_temperature(name):
  manifold = GEOMETRIES[name]
  dim = manifold.ambient_dim(3)
  x = manifold.random_point(jax.random.key(4), (8, dim), c=1.0)
  base = manifold.origin((dim,), c=1.0, dtype=x.dtype)
  temperatures = {"ntxent", "supcon", "infonce", "infonce_symmetric"}
  # The symmetric / plain variants add nothing numerically new here: left out to save compiles.
  losses = {k: v for k, v in LOSSES.items() if k not in ("infonce_symmetric", "prototypical_plain")}
  values_and_grads = jax.jit(lambda e, t: {
      loss: jax.value_and_grad(lambda e: fn(e, manifold=manifold, c=1.0, **(
          {"temperature": t} if loss in temperatures else {})))(e)
      for loss, fn in losses.items()})
  # Rows 0 = 1, 2 = 3 (both label pairs), query 0 = key 0 (rows 0, 4); then all at the origin.
  paired = jnp.stack([x[0], x[0], x[2], x[2], x[0], x[5], x[6], x[7]])
  for batch in [paired, jnp.stack([base] * 8), x]:
    for temperature in [0.1, 1e-3]:
      for loss, (value, grad) in values_and_grads(batch, temperature).items():
        assert np.isfinite(value), (loss, temperature)
        assert np.all(np.isfinite(grad)), (loss, temperature)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_non_finite_embedding_gives_nan_and_zero_grad(loss, bad):
  # Row 5 is a masked unit wherever it can be: a singleton label (ntxent / supcon see rows
  # [:6]), key 1 (infonce / npair), query 0 (prototypical). Its NaN still surfaces.
  x = EUCLIDEAN.random_point(jax.random.key(5), (8, 2)).at[5, 0].set(bad)
  fn = functools.partial(LOSSES[loss], manifold=EUCLIDEAN)
  per_unit, (value, grad) = jax.jit(lambda e: (
      fn(e, reduction="none"), jax.value_and_grad(fn)(e)))(x)
  assert np.isnan(value)
  assert np.all(np.isnan(per_unit))
  np.testing.assert_array_equal(grad, 0.0)


# --- errors ------------------------------------------------------------------------------------

X4, L4, L3 = jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32), jnp.zeros((3,), jnp.int32)


@pytest.mark.parametrize("fn, args, kwargs, match", [
    (contrastive.ntxent_loss, (X4, L3), {}, "different lengths"),
    (contrastive.supcon_loss, (X4, L3), {}, "different lengths"),
    (contrastive.ntxent_loss, (X4, jnp.zeros((4,))), {}, "labels must be integers"),
    (contrastive.supcon_loss, (jnp.zeros((4,)), L4), {}, r"embeddings must be \[B, D\]"),
    (contrastive.ntxent_loss, (X4, L4), {"reduction": "avg"}, "unknown reduction"),
    (contrastive.ntxent_loss, (X4, L4), {"temperature": 0.0}, "temperature must be positive"),
    (contrastive.supcon_loss, (X4, L4), {"temperature": -1.0}, "temperature must be positive"),
    (contrastive.infonce_loss, (X4, jnp.zeros((3, 2))), {}, "same shape"),
    (contrastive.infonce_loss, (X4, jnp.zeros((4, 3))), {}, "same shape"),
    (contrastive.infonce_loss, (jnp.zeros((4,)), jnp.zeros((4,))), {}, r"queries must be \[B, D"),
    (contrastive.infonce_loss, (X4, X4), {"reduction": "avg"}, "unknown reduction"),
    (contrastive.infonce_loss, (X4, X4), {"temperature": 0}, "temperature must be positive"),
    (contrastive.npair_loss, (X4, jnp.zeros((3, 2))), {}, "same shape"),
    (contrastive.npair_loss, (X4, X4), {"manifold": SPHERE, "l2_weight": 0.1},
     "Euclidean embeddings only"),
    (contrastive.prototypical_loss, (X4, L4, jnp.zeros((2, 3)), L3[:2]), {"num_classes": 2},
     "same width"),
    (contrastive.prototypical_loss, (X4, L3, X4, L4), {"num_classes": 2}, "different lengths"),
    (contrastive.prototypical_loss, (X4, L4, X4, L3), {"num_classes": 2}, "different lengths"),
    (contrastive.prototypical_loss, (X4, L4, X4, L4), {"num_classes": 0}, "num_classes"),
    (contrastive.prototypical_loss, (X4, L4, X4, L4), {"num_classes": 2.0}, "num_classes"),
])
def test_errors(fn, args, kwargs, match):
  with pytest.raises(ValueError, match=match):
    fn(*args, **kwargs)
  with pytest.raises(ValueError, match=match):  # Shapes are static: the same error under jit.
    jax.jit(lambda *a: fn(*a, **kwargs))(*args)
