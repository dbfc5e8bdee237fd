"""Tests for embedlab.losses.proxy: hand-computed values (points of a line, of the unit circle),
a float64 NumPy loop reference in every geometry (incl. soft label weights and c != 1), finite
gradients w.r.t. embeddings and proxies at coincident / antipodal points, jit == no-jit, bad
input (errors, NaN policy), and agreement with pytorch-metric-learning."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab.geometry import GEOMETRIES
from embedlab.losses import proxy

REDUCTIONS = ["mean", "sum", "none"]
EUCLIDEAN, SPHERE = GEOMETRIES["euclidean"], GEOMETRIES["sphere"]
LOSSES = {
    "proxy_nca": functools.partial(proxy.proxy_nca_loss, softmax_scale=2.0),
    "proxy_anchor": functools.partial(proxy.proxy_anchor_loss, margin=0.1, alpha=4.0),
    "cosface": functools.partial(proxy.cosface_loss, margin=0.3, scale=4.0),
    "arcface": functools.partial(proxy.arcface_loss, margin=0.4, scale=4.0),
}


def _lse(*terms):
  """log(sum(exp(terms))) of plain floats."""
  return math.log(sum(math.exp(t) for t in terms))


def _log1p(*terms):
  """log(1 + sum(exp(terms))) of plain floats."""
  return math.log(1.0 + sum(math.exp(t) for t in terms))


# --- hand-computed values ----------------------------------------------------------------------

# Line: embeddings 0, 1, 3 with labels 0, 0, 1; proxies 0, 2, 5 (class 2 has no embedding).
# Distances to the proxies: x=0: (0, 2, 5); x=1: (1, 1, 4); x=3: (3, 1, 2).
LINE = (jnp.array([[0.0], [1.0], [3.0]]), jnp.array([0, 0, 1]), jnp.array([[0.0], [2.0], [5.0]]))
# Unit circle: x = (1, 0), (0, 1), (-1, 0) with labels 0, 1, 0; raw proxies (2, 0) -> (1, 0) and
# (1, 1) -> (1, 1)/sqrt(2). Cosines: x0 (1, r), x1 (0, r), x2 (-1, -r) with r = 1/sqrt(2);
# angles to the true class: 0, pi/4, pi.
CIRCLE = (jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), jnp.array([0, 1, 0]),
          jnp.array([[2.0, 0.0], [1.0, 1.0]]))
R = 1.0 / math.sqrt(2.0)


def _arc(theta, m):
  """ArcFace's target cosine with PML's branch past pi - m."""
  return math.cos(theta + m) if theta <= math.pi - m else math.cos(theta) - m * math.sin(m)


@pytest.mark.parametrize("loss, batch, manifold, kwargs, expected", [
    # ProxyNCA, line, s = 1, logits -d^2: x0 (0, -4, -25) true 0; x1 (-1, -1, -16) true 0;
    # x2 (-9, -1, -4) true 1.
    ("proxy_nca", LINE, EUCLIDEAN, dict(softmax_scale=1.0),
     (_lse(0, -4, -25) + (1 + _lse(-1, -1, -16)) + (1 + _lse(-9, -1, -4))) / 3),
    # s = 0.5 halves the logits.
    ("proxy_nca", LINE, EUCLIDEAN, dict(softmax_scale=0.5),
     (_lse(0, -2, -12.5) + (0.5 + _lse(-.5, -.5, -8)) + (0.5 + _lse(-4.5, -.5, -2))) / 3),
    # ProxyNCA, circle, s = 1, logits -2 (1 - cos): x0 (0, -(2 - 2r)) true 0;
    # x1 (-2, -(2 - 2r)) true 1; x2 (-4, -(2 + 2r)) true 0.
    ("proxy_nca", CIRCLE, SPHERE, dict(softmax_scale=1.0),
     (_lse(0, -(2 - 2 * R)) + (2 - 2 * R + _lse(-2, -(2 - 2 * R)))
      + (4 + _lse(-4, -(2 + 2 * R)))) / 3),
    # Proxy Anchor, line, alpha 1, margin 0.5, s = -d: pos_k = log(1 + sum_{b in k} e^{d + m}),
    # neg_k = log(1 + sum_{b not in k} e^{-d + m}). Proxy 0: positives d 0, 1; negative d 3.
    # Proxy 1: positive d 1; negatives d 2, 1. Proxy 2: no positive; negatives d 5, 4, 2.
    # Mean: (pos_0 + pos_1) / 2 + (neg_0 + neg_1 + neg_2) / 3.
    ("proxy_anchor", LINE, EUCLIDEAN, dict(alpha=1.0, margin=0.5),
     (_log1p(0.5, 1.5) + _log1p(1.5)) / 2
     + (_log1p(-2.5) + _log1p(-1.5, -0.5) + _log1p(-4.5, -3.5, -1.5)) / 3),
    ("proxy_anchor", LINE, EUCLIDEAN, dict(alpha=1.0, margin=0.5, reduction="sum"),
     _log1p(0.5, 1.5) + _log1p(1.5) + _log1p(-2.5) + _log1p(-1.5, -0.5)
     + _log1p(-4.5, -3.5, -1.5)),
    # Soft targets: x2's weights (0.5, 0.5, 0): proxy 0 gains 0.5 e^{3 + .5} as a positive and
    # its negative weight halves; proxy 1's positive and negative x2 terms get 0.5 each.
    ("proxy_anchor", LINE, EUCLIDEAN,
     dict(alpha=1.0, margin=0.5, label_weights=jnp.array([[1, 0, 0], [1, 0, 0], [.5, .5, 0]])),
     (math.log(1 + math.exp(.5) + math.exp(1.5) + .5 * math.exp(3.5))
      + math.log(1 + .5 * math.exp(1.5))) / 2
     + (math.log(1 + .5 * math.exp(-2.5))
        + math.log(1 + math.exp(-1.5) + math.exp(-.5) + .5 * math.exp(-.5))
        + _log1p(-4.5, -3.5, -1.5)) / 3),
    # x2's weights (0, 0.75, 0.25): proxy 2 now has positive total weight, so |P+| = 3.
    ("proxy_anchor", LINE, EUCLIDEAN,
     dict(alpha=1.0, margin=0.5, label_weights=jnp.array([[1, 0, 0], [1, 0, 0], [0, .75, .25]])),
     (_log1p(0.5, 1.5) + math.log(1 + .75 * math.exp(1.5)) + math.log(1 + .25 * math.exp(2.5)))
     / 3 + (_log1p(-2.5) + math.log(1 + math.exp(-1.5) + math.exp(-.5) + .25 * math.exp(-.5))
            + math.log(1 + math.exp(-4.5) + math.exp(-3.5) + .75 * math.exp(-1.5))) / 3),
    # CosFace, line, margin 0.5, scale 1: true logit -(d + m), others -d.
    ("cosface", LINE, EUCLIDEAN, dict(margin=0.5, scale=1.0),
     ((0.5 + _lse(-0.5, -2, -5)) + (1.5 + _lse(-1.5, -1, -4)) + (1.5 + _lse(-3, -1.5, -2))) / 3),
    # ArcFace off the sphere is the same function (margin added to the distance).
    ("arcface", LINE, EUCLIDEAN, dict(margin=0.5, scale=1.0),
     ((0.5 + _lse(-0.5, -2, -5)) + (1.5 + _lse(-1.5, -1, -4)) + (1.5 + _lse(-3, -1.5, -2))) / 3),
    # CosFace, circle, margin 0.35, scale 2: true 2 (cos - 0.35).
    ("cosface", CIRCLE, SPHERE, dict(margin=0.35, scale=2.0),
     ((-1.3 + _lse(1.3, 2 * R)) + (-2 * (R - .35) + _lse(0, 2 * (R - .35)))
      + (2.7 + _lse(-2.7, -2 * R))) / 3),
    # ArcFace, circle, margin 0.5, scale 2: true 2 cos(theta + m) for theta 0, pi/4; theta = pi
    # is past pi - m: 2 (cos(pi) - m sin(m)).
    ("arcface", CIRCLE, SPHERE, dict(margin=0.5, scale=2.0),
     ((-2 * _arc(0, .5) + _lse(2 * _arc(0, .5), 2 * R))
      + (-2 * _arc(math.pi / 4, .5) + _lse(0, 2 * _arc(math.pi / 4, .5)))
      + (-2 * _arc(math.pi, .5) + _lse(2 * _arc(math.pi, .5), -2 * R))) / 3),
])
def test_hand_computed(loss, batch, manifold, kwargs, expected):
  fn = functools.partial(getattr(proxy, f"{loss}_loss"), manifold=manifold, **kwargs)
  value = jax.jit(fn)(*batch)
  assert value.shape == ()
  np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_per_unit_shapes():
  losses = jax.jit(lambda *batch: {
      (loss, r): LOSSES[loss](*batch, manifold=EUCLIDEAN, reduction=r)
      for loss in ["proxy_nca", "cosface", "arcface"] for r in REDUCTIONS})(*LINE)
  for loss in ["proxy_nca", "cosface", "arcface"]:
    assert losses[loss, "none"].shape == (3,)
    np.testing.assert_allclose(jnp.mean(losses[loss, "none"]), losses[loss, "mean"], rtol=1e-6)
    np.testing.assert_allclose(jnp.sum(losses[loss, "none"]), losses[loss, "sum"], rtol=1e-6)
  # Proxy Anchor: one unnormalised term per proxy; proxy 2 (no positive) only has its negative.
  per_proxy = jax.jit(functools.partial(proxy.proxy_anchor_loss, manifold=EUCLIDEAN, alpha=1.0,
                                        margin=0.5, reduction="none"))(*LINE)
  np.testing.assert_allclose(per_proxy, [_log1p(.5, 1.5) + _log1p(-2.5),
                                         _log1p(1.5) + _log1p(-1.5, -.5),
                                         _log1p(-4.5, -3.5, -1.5)], rtol=1e-6)


def test_arcface_is_monotone_past_pi_minus_margin():
  # Angles swept over [0, pi]: the true-class logit must decrease, also past pi - m.
  theta = jnp.linspace(0.0, jnp.pi, 181)
  x = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
  labels = jnp.zeros(181, jnp.int32)
  weights = jnp.array([[1.0, 0.0], [-1.0, 0.0]])  # Class 1 at the antipode: a rising logit.
  per = jax.jit(functools.partial(proxy.arcface_loss, margin=0.5, scale=1.0, reduction="none"))(
      x, labels, weights)
  assert np.all(np.diff(np.asarray(per)) > 0)


# --- NumPy loop reference in every geometry ----------------------------------------------------

REF_LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 0])  # Class 4 of 5 has no embedding.
NUM_CLASSES = 5


@functools.cache
def _random_batch(name, seed, c):
  """float64 embeddings [10, D] and proxies [5, D] (on the sphere: raw, of random norm)."""
  manifold = GEOMETRIES[name]
  dim = manifold.ambient_dim(3)
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(seed), 3)
    x = manifold.random_point(keys[0], (len(REF_LABELS), dim), c=c, dtype=jnp.float64)
    p = manifold.random_point(keys[1], (NUM_CLASSES, dim), c=c, dtype=jnp.float64)
    if name == "sphere":
      p = p * jax.random.uniform(keys[2], (NUM_CLASSES, 1), jnp.float64, 0.5, 3.0)
    return np.asarray(x), np.asarray(p)


@functools.cache
def _reference_similarity(name, seed, c):
  """(x, p, similarity s, squared distance D), s and D by loops over (b, k) on the sphere.

  Elsewhere the distances come from the geometry's elementwise ``dist`` (not the matmul form
  the losses use) and are then treated as plain numbers.
  """
  x, p = _random_batch(name, seed, c)
  if name != "sphere":
    with jax.enable_x64(True):
      d = np.asarray(GEOMETRIES[name].dist(jnp.asarray(x)[:, None], jnp.asarray(p)[None], c=c))
    return x, p, -d, d * d
  s = np.zeros((len(x), len(p)))
  for b in range(len(x)):
    for k in range(len(p)):
      s[b, k] = np.dot(x[b] / np.linalg.norm(x[b]), p[k] / np.linalg.norm(p[k]))
  return x, p, s, 2 * (1 - s)


def _softmax_ce(logits, labels):
  return np.array([-logits[b, y] + _lse(*logits[b]) for b, y in enumerate(labels)])


def _reference(loss, name, s, sq, labels, weights):
  """(per-unit array, mean) of ``loss`` (with the LOSSES hyperparameters) by explicit loops."""
  if loss == "proxy_nca":
    per = _softmax_ce(-2.0 * sq, labels)
    return per, per.mean()
  if loss == "proxy_anchor":
    alpha, margin = 4.0, 0.1
    pos = np.array([math.log(1 + sum(weights[b, k] * math.exp(-alpha * (s[b, k] - margin))
                                     for b in range(len(s)))) for k in range(s.shape[1])])
    neg = np.array([math.log(1 + sum((1 - weights[b, k]) * math.exp(alpha * (s[b, k] + margin))
                                     for b in range(len(s)))) for k in range(s.shape[1])])
    with_positive = np.count_nonzero(weights.sum(axis=0) > 0)
    return pos + neg, pos.sum() / with_positive + neg.sum() / s.shape[1]
  logits = 4.0 * s.copy()
  for b, y in enumerate(labels):
    if loss == "cosface" or name != "sphere":
      margin = 0.3 if loss == "cosface" else 0.4
      logits[b, y] = 4.0 * (s[b, y] - margin)
    else:
      logits[b, y] = 4.0 * _arc(math.acos(np.clip(s[b, y], -1, 1)), 0.4)
  per = _softmax_ce(logits, labels)
  return per, per.mean()


VARIANTS = [(loss, False) for loss in sorted(LOSSES)] + [("proxy_anchor", True)]


@functools.partial(jax.jit, static_argnames=("manifold", "variants"))
def _reductions(x, labels, p, c, weights, *, manifold, variants=tuple(VARIANTS)):
  """{(loss, soft): (mean, sum, none)}, every variant in one program (one compile)."""
  out = {}
  for loss, soft in variants:
    kwargs = dict(label_weights=weights) if soft else {}
    out[loss, soft] = tuple(LOSSES[loss](x, labels, p, manifold=manifold, c=c, reduction=r,
                                         **kwargs) for r in REDUCTIONS)
  return out


@functools.cache
def _embedlab_values(name, c):
  """All variants on the loop-reference batch; c is traced, so one compile per geometry."""
  x, p = _random_batch(name, 0, c)
  with jax.enable_x64(True):
    return _reductions(jnp.asarray(x), jnp.asarray(REF_LABELS), jnp.asarray(p), c,
                       jnp.asarray(_soft_weights(1)), manifold=GEOMETRIES[name])


def _soft_weights(seed):
  """Random soft targets in [0, 1] with an all-zero column (class 4: no positive weight)."""
  w = np.random.default_rng(seed).uniform(size=(len(REF_LABELS), NUM_CLASSES))
  w[:, 4] = 0.0
  w[w < 0.3] = 0.0
  return w


@pytest.mark.parametrize("c", [1.0, 0.7])
@pytest.mark.parametrize("loss, soft", VARIANTS)
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_matches_loop_reference(name, loss, soft, c):
  x, p, s, sq = _reference_similarity(name, 0, c)
  weights = _soft_weights(1) if soft else np.eye(NUM_CLASSES)[REF_LABELS]
  expected_per, expected_mean = _reference(loss, name, s, sq, REF_LABELS, weights)
  mean, total, per = _embedlab_values(name, c)[loss, soft]
  # atol: the loop's unshifted log-sum-exp cancels on per-example losses ~1e-8.
  np.testing.assert_allclose(per, expected_per, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(mean, expected_mean, rtol=1e-9)
  np.testing.assert_allclose(total, expected_per.sum(), rtol=1e-9)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_one_hot_label_weights_equal_default(name):
  x, p = _random_batch(name, 0, 1.0)
  with jax.enable_x64(True):
    labels = jnp.asarray(REF_LABELS)
    one_hot = jax.nn.one_hot(labels, NUM_CLASSES, dtype=jnp.float64)
    args = (jnp.asarray(x), labels, jnp.asarray(p), 1.0)
    values = _reductions(*args, one_hot, manifold=GEOMETRIES[name])  # Compiled already.
  for a, b in zip(values["proxy_anchor", True], values["proxy_anchor", False]):
    np.testing.assert_allclose(a, b, rtol=1e-12)


# --- jit, gradients ----------------------------------------------------------------------------

# Eager dispatch compiles every op (slow): the sphere only (ArcFace's branch lives there); the
# loop-reference tests above run every geometry jitted.
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_jit_matches_eager(loss):
  x = SPHERE.random_point(jax.random.key(3), (len(REF_LABELS), 3), c=1.0)
  p = SPHERE.random_point(jax.random.key(4), (NUM_CLASSES, 3), c=1.0)
  fn = functools.partial(LOSSES[loss], x, jnp.asarray(REF_LABELS), p, manifold=SPHERE,
                         reduction="none")  # One eager pass: the other reductions sum these.
  np.testing.assert_allclose(jax.jit(fn)(), fn(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_gradients_finite_at_coincident_and_antipodal_points(name):
  manifold = GEOMETRIES[name]
  dim = manifold.ambient_dim(3)
  p = manifold.random_point(jax.random.key(5), (NUM_CLASSES, dim), c=1.0)
  labels = jnp.array([0, 1, 2, 3, 0, 0])
  base = manifold.origin((dim,), c=1.0, dtype=p.dtype)
  # Rows 0-3 sit on their own proxy (d = 0, cos = 1), row 4 on another class's proxy, row 5 at
  # the base point; on the sphere row 5 is the antipode of its proxy (cos = -1, theta = pi).
  last = -p[0] if name == "sphere" else base
  x = jnp.stack([p[0], p[1], p[2], p[3], p[1], last])
  values_and_grads = jax.jit(lambda e, q: {
      loss: jax.value_and_grad(lambda e, q: fn(e, labels, q, manifold=manifold, c=1.0),
                               argnums=(0, 1))(e, q) for loss, fn in LOSSES.items()})
  for batch, proxies in [(x, p), (jnp.stack([base] * 6), jnp.stack([base] * NUM_CLASSES))]:
    for loss, (value, (grad_x, grad_p)) in values_and_grads(batch, proxies).items():
      assert np.isfinite(value), loss
      assert np.all(np.isfinite(grad_x)) and np.all(np.isfinite(grad_p)), loss
      assert np.any(grad_p != 0) or np.all(batch == base), loss


def test_sphere_proxy_gradient_is_tangent():
  # Proxies are normalised inside: scaling a raw proxy changes nothing, so its gradient is
  # orthogonal to it.
  x, p = _random_batch("sphere", 0, 1.0)
  labels = jnp.asarray(REF_LABELS)
  grads = jax.jit(lambda e, q: {loss: jax.grad(lambda q: fn(e, labels, q))(q)
                                for loss, fn in LOSSES.items()})(
      jnp.asarray(x, jnp.float32), jnp.asarray(p, jnp.float32))
  for loss, grad in grads.items():
    assert np.any(grad != 0), loss
    np.testing.assert_allclose(jnp.sum(grad * p, axis=1), 0.0, atol=1e-5, err_msg=loss)


# --- bad input ---------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("loss",))
def _nan_probe(embeddings, labels, proxies, weights, *, loss):
  kwargs = dict(manifold=EUCLIDEAN) if weights is None else dict(manifold=EUCLIDEAN,
                                                                 label_weights=weights)
  fn = LOSSES[loss]
  return (fn(embeddings, labels, proxies, reduction="none", **kwargs),
          jax.value_and_grad(lambda e, q: fn(e, labels, q, **kwargs), argnums=(0, 1))(
              embeddings, proxies))


def _nan_check(loss, embeddings, labels, proxies, weights=None):
  per, (value, grads) = _nan_probe(embeddings, labels, proxies, weights, loss=loss)
  assert np.isnan(value)
  assert np.all(np.isnan(per))
  for grad in grads:
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("case", ["nan_embedding", "inf_embedding", "nan_proxy", "label_too_big",
                                  "label_negative"])
def test_bad_data_gives_nan_and_zero_grad(loss, case):
  embeddings, labels, proxies = LINE
  if case == "nan_embedding":
    embeddings = embeddings.at[2, 0].set(jnp.nan)
  elif case == "inf_embedding":
    embeddings = embeddings.at[0, 0].set(jnp.inf)
  elif case == "nan_proxy":
    proxies = proxies.at[2, 0].set(jnp.nan)  # The proxy of the class with no embedding.
  elif case == "label_too_big":
    labels = labels.at[1].set(3)  # C = 3.
  else:
    labels = labels.at[0].set(-1)
  _nan_check(loss, embeddings, labels, proxies)


@pytest.mark.parametrize("weights", [[[1, 0, 0], [1, 0, 0], [0, 1.5, 0]],
                                     [[1, 0, 0], [1, 0, 0], [0, -.5, 0]],
                                     [[1, 0, 0], [1, 0, 0], [0, np.nan, 0]]])
def test_bad_label_weights_give_nan(weights):
  _nan_check("proxy_anchor", *LINE, jnp.array(weights, jnp.float32))


def test_label_weights_ignore_label_values():
  weights = jax.nn.one_hot(LINE[1], 3)
  fn = jax.jit(functools.partial(proxy.proxy_anchor_loss, manifold=EUCLIDEAN,
                                 label_weights=weights))
  np.testing.assert_allclose(fn(LINE[0], jnp.array([7, -1, 2]), LINE[2]), fn(*LINE), rtol=1e-6)


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("embeddings, labels, proxies, kwargs, match", [
    (jnp.zeros((4, 2)), jnp.zeros((3,), jnp.int32), jnp.ones((3, 2)), {}, "different lengths"),
    (jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32), jnp.ones((3, 5)), {}, r"\[C, D\] with"),
    (jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32), jnp.ones((2,)), {}, r"must be \[C, D\]"),
    (jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32), jnp.ones((0, 2)), {}, "at least one class"),
    (jnp.zeros((4,)), jnp.zeros((4,), jnp.int32), jnp.ones((3, 2)), {}, r"embeddings must be"),
    (jnp.zeros((4, 2)), jnp.zeros((4,)), jnp.ones((3, 2)), {}, "labels must be integers"),
    (jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32), jnp.ones((3, 2)), {"reduction": "avg"},
     "unknown reduction"),
])
def test_errors(loss, embeddings, labels, proxies, kwargs, match):
  fn = functools.partial(LOSSES[loss], manifold=EUCLIDEAN, **kwargs)
  with pytest.raises(ValueError, match=match):
    fn(embeddings, labels, proxies)
  with pytest.raises(ValueError, match=match):  # Shapes are static: the same error under jit.
    jax.jit(fn)(embeddings, labels, proxies)


def test_label_weights_shape_error():
  with pytest.raises(ValueError, match=r"label_weights must be \[B, C\]"):
    proxy.proxy_anchor_loss(*LINE, label_weights=jnp.ones((3, 2)))


# --- agreement with pytorch-metric-learning ----------------------------------------------------

def _pml_inputs(seed):
  """The inputs of benchmarks/pml_reference_proxy.py (``proxy_inputs``), rebuilt with NumPy."""
  rng = np.random.default_rng(seed)
  proxies = rng.standard_normal((6, 5))
  labels = rng.integers(0, 5, size=12)
  x = rng.standard_normal((12, 5))
  unit = proxies / np.linalg.norm(proxies, axis=1, keepdims=True)
  x[:2] = -unit[labels[:2]] + 0.05 * x[:2]
  return x / np.linalg.norm(x, axis=1, keepdims=True), labels, proxies


# Printed by `/work/benchvenv/bin/python benchmarks/pml_reference_proxy.py` with torch
# 2.13.0+cpu and pytorch-metric-learning 2.9.0 (float64; PML's default distances and reducers:
# ProxyNCALoss LpDistance(power=2) on normalised inputs + MeanReducer, ProxyAnchorLoss
# CosineSimilarity + DivisorReducer, CosFaceLoss/ArcFaceLoss CosineSimilarity + MeanReducer;
# W = proxies.T; ArcFace margins in degrees: degrees(0.5) and 28.6).
PML = {
    0: {("proxy_nca", 1.0): 2.4983311173556078, ("proxy_nca", 3.0): 4.970458928379155,
        ("proxy_anchor", 0.1, 32.0): 47.92272755229756,
        ("proxy_anchor", 0.2, 8.0): 13.896991099565277,
        ("cosface", 0.35, 64.0): 70.22201303814023, ("cosface", 0.2, 10.0): 9.708766820568176,
        ("arcface", 0.5, 64.0): 74.11778429548751, ("arcface", 28.6, 10.0): 11.740535964966455},
    1: {("proxy_nca", 1.0): 2.911678512452053, ("proxy_nca", 3.0): 6.356203274921808,
        ("proxy_anchor", 0.1, 32.0): 50.71710510380824,
        ("proxy_anchor", 0.2, 8.0): 14.827904234320757,
        ("cosface", 0.35, 64.0): 86.29525183070443, ("cosface", 0.2, 10.0): 12.142029506991705,
        ("arcface", 0.5, 64.0): 86.23816621934235, ("arcface", 28.6, 10.0): 13.61834201495561},
}


def _embedlab_kwargs(key):
  """embedlab keyword arguments for a PML setting (the ArcFace margins: 0.5 rad, 28.6 deg)."""
  loss = key[0]
  if loss == "proxy_nca":
    return dict(softmax_scale=key[1])
  if loss == "proxy_anchor":
    return dict(margin=key[1], alpha=key[2])
  margin = math.radians(key[1]) if key == ("arcface", 28.6, 10.0) else key[1]
  return dict(margin=margin, scale=key[2])


@pytest.mark.parametrize("seed", sorted(PML))
def test_agrees_with_pml(seed):
  x, labels, proxies = _pml_inputs(seed)
  # Rows 0, 1 exercise ArcFace's theta > pi - m branch.
  cos = np.sum(x * proxies[labels] / np.linalg.norm(proxies[labels], axis=1, keepdims=True), 1)
  assert np.all(np.arccos(cos[:2]) > np.pi - 0.5)
  with jax.enable_x64(True):
    values = jax.jit(lambda *args: {
        key: getattr(proxy, f"{key[0]}_loss")(*args, **_embedlab_kwargs(key)) for key in PML[seed]
    })(jnp.asarray(x), jnp.asarray(labels), jnp.asarray(proxies))
  for key, expected in PML[seed].items():
    np.testing.assert_allclose(values[key], expected, rtol=1e-9, err_msg=str(key))
