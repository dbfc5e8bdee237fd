"""Tests for embedlab.losses.prototypes: the prototype generators against the known optima (the
orthonormal frame for N <= d, the regular simplex / Welch bound for N = d + 1, a random baseline
for N >> d), extend_prototypes against a simplex with a missing vertex, hand-computed loss
values, float64 NumPy references per geometry (the Busemann function also as the limit of
geodesic distances), jit == no-jit, finite gradients, NaN input and errors."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab.geometry import GEOMETRIES
from embedlab.losses import prototypes as P

REDUCTIONS = ["mean", "sum", "none"]


def _np_cosines(vectors):
  v = np.asarray(vectors, np.float64)
  v = v / np.linalg.norm(v, axis=1, keepdims=True)
  return v @ v.T


def _np_max_cosine(vectors, absolute=False, against=None):
  """Largest off-diagonal (|)cosine(|) in float64; with ``against``, of ``vectors`` to it."""
  if against is None:
    g = _np_cosines(vectors)
    np.fill_diagonal(g, np.nan)
  else:
    v = np.asarray(vectors, np.float64)
    w = np.asarray(against, np.float64)
    g = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (
        w / np.linalg.norm(w, axis=1, keepdims=True)).T
  return np.nanmax(np.abs(g) if absolute else g)


def _welch(n, d):
  """Welch bound: every set of n unit vectors in R^d has max |cos| >= this."""
  return math.sqrt(max(n - d, 0) / (d * (n - 1)))


def _regular_simplex(d):
  """The d + 1 vertices of a regular simplex as unit vectors of R^d (pairwise cos -1/d)."""
  centred = np.eye(d + 1) - 1.0 / (d + 1)
  # Orthonormal basis of the sum-zero hyperplane of R^{d+1}: coordinates of the vertices in R^d.
  basis = np.linalg.svd(centred)[2][:d]
  vertices = centred @ basis.T
  return vertices / np.linalg.norm(vertices, axis=1, keepdims=True)


# --- max_pairwise_cosine ------------------------------------------------------------------------

def test_max_pairwise_cosine_hand_example():
  # Rows (1,0), (1,1), (-3,0): cosines 1/sqrt2, -1, -1/sqrt2.
  v = jnp.array([[1.0, 0.0], [1.0, 1.0], [-3.0, 0.0]])
  np.testing.assert_allclose(P.max_pairwise_cosine(v), 1 / math.sqrt(2), rtol=1e-6)
  np.testing.assert_allclose(P.max_pairwise_cosine(v, absolute=True), 1.0, rtol=1e-6)


# --- equiangular basis vectors ------------------------------------------------------------------

@pytest.mark.parametrize("n, d", [(8, 16), (16, 16)])
def test_ebv_orthogonal_when_n_at_most_d(n, d):
  w = P.equiangular_basis_vectors(n, d, steps=300)
  assert w.shape == (n, d) and w.dtype == jnp.float32
  np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, rtol=1e-6)
  assert _np_max_cosine(w, absolute=True) < 1e-3


@pytest.mark.parametrize("d", [2, 10])
def test_ebv_d_plus_one_reaches_simplex_bound(d):
  # N = d + 1: the Welch bound 1/d is a hard floor and the regular simplex attains it. The
  # smooth maximum (temperature 0.01) sits slightly above the true maximum: allow 0.01.
  w = P.equiangular_basis_vectors(d + 1, d, steps=500)
  achieved = _np_max_cosine(w, absolute=True)
  assert 1.0 / d - 1e-5 <= achieved <= 1.0 / d + 0.01


def test_ebv_many_vectors_beat_random_baseline():
  n, d = 1000, 100
  w = P.equiangular_basis_vectors(n, d, steps=50)
  np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, rtol=1e-5)
  random = np.random.default_rng(0).standard_normal((n, d))
  baseline = _np_max_cosine(random, absolute=True)  # ~0.5 for these sizes.
  achieved = _np_max_cosine(w, absolute=True)
  assert _welch(n, d) <= achieved < 0.5 * baseline
  np.testing.assert_allclose(P.max_pairwise_cosine(w, absolute=True), achieved, rtol=1e-4)


def test_generators_deterministic_in_seed():
  for fn in [P.equiangular_basis_vectors, P.hyperspherical_prototypes]:
    a = fn(6, 3, seed=1, steps=50)
    np.testing.assert_array_equal(a, fn(6, 3, seed=1, steps=50))
    assert not np.array_equal(a, fn(6, 3, seed=2, steps=50))


def test_generators_float64_and_single_vector():
  with jax.enable_x64(True):
    w = P.hyperspherical_prototypes(5, 4, steps=300, dtype=jnp.float64)
    assert w.dtype == jnp.float64
    np.testing.assert_allclose(_np_cosines(w)[~np.eye(5, dtype=bool)], -0.25, atol=2e-3)
  one = P.equiangular_basis_vectors(1, 3)
  assert one.shape == (1, 3)
  np.testing.assert_allclose(np.linalg.norm(one), 1.0, rtol=1e-6)


# --- hyperspherical prototypes ------------------------------------------------------------------

@pytest.mark.parametrize("k, d", [(4, 16), (11, 10)])
def test_hyperspherical_prototypes_form_regular_simplex(k, d):
  # For K <= d + 1 the minimiser of the largest cosine is the regular simplex: all cos = -1/(K-1)
  # (the sum of the K unit vectors has squared norm K + sum_{i != j} cos_ij >= 0).
  w = P.hyperspherical_prototypes(k, d, steps=300)
  np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, rtol=1e-6)
  cos = _np_cosines(w)[~np.eye(k, dtype=bool)]
  np.testing.assert_allclose(cos, -1.0 / (k - 1), atol=2e-3)
  assert P.max_pairwise_cosine(w) >= -1.0 / (k - 1) - 1e-5


# --- extend_prototypes --------------------------------------------------------------------------

def test_extend_recovers_missing_simplex_vertex():
  # Existing: d of the d + 1 simplex vertices. For a unit v, sum_i <v, p_i> over them is
  # -<v, p_missing> >= -1, so max_i <v, p_i> >= -1/d, with equality only at v = p_missing.
  d = 5
  vertices = _regular_simplex(d).astype(np.float32)
  existing = jnp.asarray(vertices[:d]) * 3.0  # Not unit: returned untouched all the same.
  out = P.extend_prototypes(existing, 1)  # One vector from afar: the default 1000 steps.
  assert out.shape == (d + 1, d)
  np.testing.assert_array_equal(out[:d], existing)
  new = np.asarray(out[d:], np.float64)
  assert _np_max_cosine(new, against=vertices[:d]) == pytest.approx(-1.0 / d, abs=2e-3)
  assert np.dot(new[0], vertices[d]) / np.linalg.norm(new[0]) > 0.999


def test_extend_orthogonal_room():
  # K + M <= d: M mutually orthogonal vectors orthogonal to span(existing) exist, so the optimum
  # of every new prototype's largest cosine is <= 0 (the existing triangle sums to zero, so
  # exactly 0 against it).
  existing = P.hyperspherical_prototypes(3, 8, steps=300)
  out = P.extend_prototypes(existing, 4, seed=3)
  np.testing.assert_array_equal(out[:3], existing)
  new = out[3:]
  np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, rtol=1e-6)
  assert _np_max_cosine(new, against=out[:3]) < 1e-3
  assert _np_max_cosine(new) < 1e-3


def test_extend_crowded_beats_random_extension():
  # K + M > d: no closed form; the new prototypes must beat random new ones by a wide margin.
  existing = P.hyperspherical_prototypes(10, 3, steps=300)
  out = P.extend_prototypes(existing, 10, steps=500)
  np.testing.assert_array_equal(out[:10], existing)
  random = np.random.default_rng(0).standard_normal((10, 3))
  def worst(new):
    return max(_np_max_cosine(new, against=existing), _np_max_cosine(new))
  achieved, baseline = worst(out[10:]), worst(random)
  assert achieved < baseline - 0.1
  # 20 points on S^2 cannot do better than the Tammes optimum for 20 points (47.43 deg).
  assert achieved >= math.cos(math.radians(47.44))


@pytest.mark.parametrize("existing, num_new, match", [
    (jnp.ones((3,)), 1, r"must be \[K, d\]"),
    (jnp.ones((3, 2)).at[1, 0].set(jnp.nan), 1, "NaN"),
    (jnp.ones((3, 2)), 0, "must be >= 1"),
])
def test_extend_errors(existing, num_new, match):
  with pytest.raises(ValueError, match=match):
    P.extend_prototypes(existing, num_new)


@pytest.mark.parametrize("call, match", [
    (lambda: P.equiangular_basis_vectors(0, 3), "must be >= 1"),
    (lambda: P.hyperspherical_prototypes(3, 0), "must be >= 1"),
    (lambda: P.hyperspherical_prototypes(3, 2, steps=-1), "steps must be >= 0"),
    (lambda: P.max_pairwise_cosine(jnp.ones((1, 3))), "N >= 2"),
])
def test_generator_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# --- hand-computed loss values ------------------------------------------------------------------

SQRT2 = math.sqrt(2.0)


@pytest.mark.parametrize("name, x, labels, protos, expected", [
    # cos = 1 -> 0; cos 0 -> 1; cos((-1,0), (0,1)) = 0 -> 1. Mean 2/3.
    ("sphere", [[1, 0], [0, 1], [-1, 0]], [0, 0, 1], [[1, 0], [0, 1]], [0.0, 1.0, 1.0]),
    # Unnormalised Euclidean outputs and prototypes: cos((-2,-2), (0,1)) = -1/sqrt2.
    ("euclidean", [[3, 0], [0, 2], [-2, -2]], [0, 0, 1], [[2, 0], [0, 1]],
     [0.0, 1.0, (1 + 1 / SQRT2) ** 2]),
    # Ball: the angle at the origin; the origin itself has no direction: loss 1.
    ("poincare", [[0.5, 0], [0, -0.3], [0, 0]], [0, 0, 1], [[1, 0], [0, 1]], [0.0, 1.0, 1.0]),
    # Hyperboloid: the spatial part (x0 = sqrt(1 + |xs|^2)); the origin (1, 0, 0): loss 1.
    ("lorentz", [[SQRT2, 1, 0], [math.sqrt(5), 0, -2], [1, 0, 0]], [0, 1, 1], [[1, 0], [0, 1]],
     [0.0, 4.0, 1.0]),
])
def test_hyperspherical_loss_hand_computed(name, x, labels, protos, expected):
  args = (jnp.array(x, jnp.float32), jnp.array(labels), jnp.array(protos, jnp.float32))
  # Jitted (one compile for the three reductions); test_jit_matches_eager covers eager calls.
  per, mean, total = jax.jit(lambda *a: tuple(
      P.hyperspherical_prototype_loss(*a, manifold=GEOMETRIES[name], reduction=r)
      for r in ["none", "mean", "sum"]))(*args)
  np.testing.assert_allclose(per, expected, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(mean, np.mean(expected), rtol=1e-6)
  np.testing.assert_allclose(total, np.sum(expected), rtol=1e-6)


def _ball_dist(x, y):
  x, y = np.asarray(x, float), np.asarray(y, float)
  return math.acosh(1 + 2 * np.sum((x - y) ** 2) / ((1 - x @ x) * (1 - y @ y)))


T1 = math.tanh(1.0)  # Euclidean norm of exp_0(v) for |v| = 1, c = 1.


@pytest.mark.parametrize("name, x, labels, kwargs, expected", [
    # Sphere, basis e0, e1: x = (2, 0) -> cos (1, 0); tau = 1: log(e + 1) - 1 = log(1 + 1/e).
    ("sphere", [[2, 0]], [0], dict(temperature=1.0), [math.log1p(math.exp(-1))]),
    # tau = 0.5, label 1: logits (2, 0) -> log(e^2 + 1).
    ("sphere", [[2, 0]], [1], dict(temperature=0.5), [math.log1p(math.exp(2))]),
    # Euclidean, basis points e0, e1 (radius 1). Origin: both distances 1 -> log 2. x = e0:
    # distances (0, sqrt2), tau = 1, label 1: logsumexp(0, -sqrt2) + sqrt2 = log(e^sqrt2 + 1).
    ("euclidean", [[0, 0], [1, 0]], [0, 1], dict(temperature=1.0),
     [math.log(2), math.log1p(math.exp(SQRT2))]),
    # Radius 2: the origin is still equidistant (log 2); x = e0: distances 1 and sqrt5.
    ("euclidean", [[0, 0], [1, 0]], [1, 0], dict(temperature=1.0, radius=2.0),
     [math.log(2), math.log1p(math.exp(1 - math.sqrt(5)))]),
    # Ball: basis points tanh(1) e_k. From the origin both at distance 1 -> log 2; from the
    # first basis point, distances 0 and D = d(t e0, t e1), label 0: log(1 + e^-D).
    ("poincare", [[0, 0], [T1, 0]], [1, 0], dict(temperature=1.0),
     [math.log(2), math.log1p(math.exp(-_ball_dist([T1, 0], [0, T1])))]),
])
def test_ebv_loss_hand_computed(name, x, labels, kwargs, expected):
  basis = jnp.array([[1.0, 0.0], [0.0, 3.0]])  # Directions: normalised by the loss.
  fn = functools.partial(P.ebv_loss, manifold=GEOMETRIES[name], reduction="none", **kwargs)
  per = jax.jit(fn)(jnp.array(x, jnp.float32), jnp.array(labels), basis)
  np.testing.assert_allclose(per, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("z, label, c, phi, expected", [
    ([0.0, 0.0], 0, 1.0, 1.0, 0.0),                        # log|p|^2 - 2 log 1.
    ([0.5, 0.0], 0, 1.0, 1.0, math.log(0.25 / 0.75**2)),   # = log(4/9).
    ([-0.5, 0.0], 0, 1.0, 1.0, math.log(2.25 / 0.75**2)),  # = log 4.
    ([0.0, 0.5], 0, 1.0, 0.0, math.log(1.25 / 0.75)),      # the bare Busemann function.
    ([0.5, 0.0], 1, 1.0, 2.0, math.log(1.25) - 3 * math.log(0.75)),
    # c = 4 (radius 1/2): sqrt(c) z = (0.5, 0), divided by sqrt(c) = 2.
    ([0.25, 0.0], 0, 4.0, 1.0, math.log(4 / 9) / 2),
    # Default phi = d = 2: log 0.25 - 3 log 0.75.
    ([0.5, 0.0], 0, 1.0, None, math.log(0.25) - 3 * math.log(0.75)),
])
def test_busemann_loss_hand_computed(z, label, c, phi, expected):
  ideal = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # Directions: normalised by the loss.
  fn = functools.partial(P.busemann_prototype_loss, phi=phi)
  loss = jax.jit(fn)(jnp.array([z], jnp.float32), jnp.array([label]), ideal, c=c)
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("c", [1.0, 0.5, 2.0])
def test_busemann_is_limit_of_distance_differences(c):
  # b_p(z) = lim_{t -> inf} d(z, g(t)) - t, g the geodesic ray from the origin to p / sqrt(c):
  # evaluate it at a point of the ray at Euclidean radius (1 - 1e-7) / sqrt(c) in float64 with the
  # geometry's own dist (phi = 0 leaves the bare Busemann function).
  rng = np.random.default_rng(5)
  z = 0.4 * rng.standard_normal((6, 3)) / math.sqrt(3 * c)
  p = rng.standard_normal((2, 3))
  labels = np.array([0, 1, 0, 1, 1, 0])
  ball = GEOMETRIES["poincare"]
  with jax.enable_x64(True):
    far = jnp.asarray((1 - 1e-7) / math.sqrt(c) * p / np.linalg.norm(p, axis=1, keepdims=True))
    far = far[jnp.asarray(labels)]
    limit = (ball.dist(jnp.asarray(z), far, c=c)
             - ball.dist(jnp.zeros_like(far), far, c=c))
    loss = jax.jit(functools.partial(P.busemann_prototype_loss, phi=0.0, reduction="none"))(
        jnp.asarray(z), jnp.asarray(labels), jnp.asarray(p), c=c)
  np.testing.assert_allclose(loss, limit, atol=1e-5)


# --- float64 NumPy references per geometry ------------------------------------------------------

REF_LABELS = np.array([0, 2, 1, 1, 0, 3, 2, 0])
K, DIM = 4, 3


def _np_unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_dist(name, x, y, c):
  """Geodesic distance of two points, written out per geometry (float64)."""
  if name == "euclidean":
    return np.linalg.norm(x - y)
  if name == "sphere":
    return math.acos(np.clip(c * x @ y, -1, 1)) / math.sqrt(c)
  if name == "poincare":
    delta = 2 * c * np.sum((x - y) ** 2) / ((1 - c * x @ x) * (1 - c * y @ y))
    return math.acosh(1 + delta) / math.sqrt(c)
  minkowski = -x[0] * y[0] + x[1:] @ y[1:]
  return math.acosh(max(-c * minkowski, 1.0)) / math.sqrt(c)


def _np_basis_point(name, b, c, radius):
  b = _np_unit(b)
  s = math.sqrt(c)
  if name == "euclidean":
    return radius * b
  if name == "sphere":
    return b / s
  if name == "poincare":
    return math.tanh(s * radius) / s * b
  return np.concatenate([[math.cosh(s * radius) / s], math.sinh(s * radius) / s * b])


def _np_ebv(name, x, labels, basis, c, temperature, radius):
  out = []
  for xi, yi in zip(x, labels):
    if name == "sphere":
      sims = np.array([_np_unit(xi) @ _np_unit(b) for b in basis])
    else:
      sims = np.array([-_np_dist(name, xi, _np_basis_point(name, b, c, radius), c) for b in basis])
    logits = sims / temperature
    out.append(np.log(np.sum(np.exp(logits - logits.max()))) + logits.max() - logits[yi])
  return np.array(out)


def _np_hpn(name, x, labels, protos):
  spatial = x[:, 1:] if name == "lorentz" else x
  cos = np.sum(_np_unit(spatial) * _np_unit(protos)[labels], axis=1)
  return (1 - cos) ** 2


@functools.cache
def _inputs(name, c, seed=0):
  manifold = GEOMETRIES[name]
  with jax.enable_x64(True):
    x = manifold.random_point(jax.random.key(seed), (len(REF_LABELS), manifold.ambient_dim(DIM)),
                              c=c, dtype=jnp.float64)
  protos = np.random.default_rng(seed).standard_normal((K, DIM))
  return np.asarray(x), protos


@functools.partial(jax.jit, static_argnames=("manifold",))
def _ebv_reductions(x, labels, basis, c, *, manifold):
  return tuple(P.ebv_loss(x, labels, basis, manifold=manifold, c=c, temperature=0.3, radius=0.8,
                          reduction=r) for r in REDUCTIONS)


@functools.partial(jax.jit, static_argnames=("manifold",))
def _hpn_reductions(x, labels, protos, c, *, manifold):
  return tuple(P.hyperspherical_prototype_loss(x, labels, protos, manifold=manifold, c=c,
                                               reduction=r) for r in REDUCTIONS)


@pytest.mark.parametrize("c", [1.0, 0.6])
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_losses_match_numpy_reference(name, c):
  x, protos = _inputs(name, c)
  ebv = _np_ebv(name, x, REF_LABELS, protos, c, 0.3, 0.8)
  hpn = _np_hpn(name, x, REF_LABELS, protos)
  with jax.enable_x64(True):
    args = (jnp.asarray(x), jnp.asarray(REF_LABELS), jnp.asarray(protos), c)
    for got, expected in [(_ebv_reductions(*args, manifold=GEOMETRIES[name]), ebv),
                          (_hpn_reductions(*args, manifold=GEOMETRIES[name]), hpn)]:
      mean, total, per = got
      np.testing.assert_allclose(per, expected, rtol=1e-9, atol=1e-12)
      np.testing.assert_allclose(mean, expected.mean(), rtol=1e-9)
      np.testing.assert_allclose(total, expected.sum(), rtol=1e-9)


@pytest.mark.parametrize("c", [1.0, 0.6])
def test_busemann_matches_numpy_reference(c):
  x, protos = _inputs("poincare", c)
  z = math.sqrt(c) * x
  p = _np_unit(protos)[REF_LABELS]
  expected = (np.log(np.sum((p - z) ** 2, axis=1))
              - 4.0 * np.log(1 - np.sum(z * z, axis=1))) / math.sqrt(c)  # phi = d = 3.
  with jax.enable_x64(True):
    per = P.busemann_prototype_loss(jnp.asarray(x), jnp.asarray(REF_LABELS), jnp.asarray(protos),
                                    c=c, reduction="none")
  np.testing.assert_allclose(per, expected, rtol=1e-9)


# --- jit, gradients, non-finite input -----------------------------------------------------------

def _loss_fns(name):
  """Every loss usable in geometry ``name`` (Busemann only in the ball)."""
  fns = {"ebv": functools.partial(P.ebv_loss, manifold=GEOMETRIES[name], temperature=0.3),
         "hpn": functools.partial(P.hyperspherical_prototype_loss, manifold=GEOMETRIES[name])}
  if name == "poincare":
    fns["busemann"] = P.busemann_prototype_loss
  return fns


def _edge_batch(name):
  manifold = GEOMETRIES[name]
  x = manifold.random_point(jax.random.key(2), (len(REF_LABELS), manifold.ambient_dim(DIM)))
  # Row 1 at the origin / base point, row 3 on top of another: edge cases for the gradients.
  x = x.at[1].set(manifold.origin((x.shape[1],), c=1.0, dtype=x.dtype)).at[3].set(x[2])
  protos = jnp.asarray(np.random.default_rng(1).standard_normal((K, DIM)), jnp.float32)
  return x, jnp.asarray(REF_LABELS), protos


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_gradients_finite(name):
  x, labels, protos = _edge_batch(name)
  # Every loss in one jitted program (one compile per geometry).
  values_and_grads = jax.jit(lambda e, p: {
      loss: jax.value_and_grad(lambda e, p: fn(e, labels, p), argnums=(0, 1))(e, p)
      for loss, fn in _loss_fns(name).items()})(x, protos)
  for loss, (value, grads) in values_and_grads.items():
    assert np.isfinite(value), loss
    assert all(np.all(np.isfinite(g)) for g in grads), loss


def test_jit_matches_eager():
  # One geometry (eager dispatch compiles every op: slow); the NumPy reference tests above run
  # every geometry jitted.
  x, labels, protos = _edge_batch("poincare")
  for loss, fn in _loss_fns("poincare").items():
    per = functools.partial(fn, reduction="none")
    np.testing.assert_allclose(jax.jit(per)(x, labels, protos), per(x, labels, protos),
                               rtol=1e-5, atol=1e-6, err_msg=loss)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_non_finite_input_gives_nan_and_zero_grad(name):
  manifold = GEOMETRIES[name]
  x = manifold.random_point(jax.random.key(2), (4, manifold.ambient_dim(DIM)))
  labels = jnp.array([0, 1, 1, 0])
  protos = jnp.eye(2, DIM)
  run = jax.jit(lambda e, p: {loss: (
      fn(e, labels, p, reduction="none"),
      jax.value_and_grad(lambda e, p: fn(e, labels, p), argnums=(0, 1))(e, p))
                              for loss, fn in _loss_fns(name).items()})
  for bad_x, bad_protos in [(x.at[2, 0].set(jnp.nan), protos),
                            (x, protos.at[1, 1].set(jnp.inf))]:
    for loss, (per, (value, grads)) in run(bad_x, bad_protos).items():
      assert np.isnan(value) and np.all(np.isnan(per)), loss
      for g in grads:
        np.testing.assert_array_equal(g, 0.0, err_msg=loss)


@pytest.mark.parametrize("bad_label", [2, -1])
def test_out_of_range_labels(bad_label):
  x = jnp.array([[0.1, 0.2], [0.3, -0.1]])
  protos = jnp.eye(2)
  labels = jnp.array([0, bad_label])
  for loss, fn in _loss_fns("poincare").items():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
      fn(x, labels, protos)
    # Under jit the labels are data: the loss is NaN instead.
    assert np.isnan(jax.jit(fn)(x, labels, protos)), loss


@pytest.mark.parametrize("x, labels, protos, kwargs, match", [
    (jnp.zeros((3, 2)), jnp.zeros((2,), jnp.int32), jnp.eye(2), {}, "different lengths"),
    (jnp.zeros((3, 2)), jnp.zeros((3,), jnp.int32), jnp.eye(3), {}, "dimension 3 but"),
    (jnp.zeros((3, 2)), jnp.zeros((3,), jnp.int32), jnp.ones((2,)), {}, r"must be \[K, d\]"),
    (jnp.zeros((3, 2)), jnp.zeros((3,)), jnp.eye(2), {}, "labels must be integers"),
    (jnp.zeros((3, 2)), jnp.zeros((3,), jnp.int32), jnp.eye(2), {"reduction": "avg"},
     "unknown reduction"),
])
def test_errors(x, labels, protos, kwargs, match):
  for loss, fn in _loss_fns("poincare").items():
    with pytest.raises(ValueError, match=match):
      fn(x, labels, protos, **kwargs)
    with pytest.raises(ValueError, match=match):  # Shapes are static: the same error under jit.
      jax.jit(lambda e, l, p, fn=fn: fn(e, l, p, **kwargs))(x, labels, protos)


def test_lorentz_prototypes_are_spatial():
  # On the hyperboloid the prototypes live in the d-dim tangent space at the origin.
  x = GEOMETRIES["lorentz"].random_point(jax.random.key(0), (2, 4))
  with pytest.raises(ValueError, match="dimension 4 but the embeddings need 3"):
    P.ebv_loss(x, jnp.array([0, 1]), jnp.eye(2, 4), manifold=GEOMETRIES["lorentz"])
