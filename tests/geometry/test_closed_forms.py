"""Closed forms, cross-model identities and numerical edge cases of the geometries.

Expected values come from formulas evaluated independently here (numpy, ``math``), never from
the code under test. Float64 checks run under ``jax.enable_x64(True)``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab.geometry import GEOMETRIES, lorentz, poincare, sphere

CURVATURES = [0.3, 1.0, 2.5]
# Point tables are [N, D] = [7, 5] throughout (the conformance table's shape: shared caches).
N, D = 7, 5


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


# Inputs come from numpy's generator: independent of the code under test, and no per-shape
# compilation of jax.random kernels.
def _normal(seed, shape):
  return np.random.default_rng(seed).standard_normal(shape)


def _ball_points(seed, shape, c, max_radius=0.95):
  """Points of the ball of curvature ``c`` spread over radii up to ``max_radius / sqrt(c)``."""
  direction = _normal(seed, shape)
  direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
  radius = np.random.default_rng(seed + 1000).uniform(0.0, max_radius, shape[:-1] + (1,))
  return jnp.asarray(direction * radius / math.sqrt(c))


def _points(m, seed, shape, c, dtype=jnp.float64):
  """Points of ``m``: ``proj`` of small Gaussian ambient vectors."""
  return m.proj(jnp.asarray(0.3 * _normal(seed, shape), dtype), c=c)


# Poincaré ball <-> hyperboloid.


@pytest.mark.parametrize("c", CURVATURES)
def test_poincare_distance_equals_lorentz_distance_after_isometry(x64, c):
  x = _ball_points(0, (N, D), c)
  y = _ball_points(1, (N, D), c)
  hx, hy = lorentz.from_poincare(x, c=c), lorentz.from_poincare(y, c=c)
  assert np.all(lorentz.is_on_manifold(hx, c=c, atol=1e-12))
  np.testing.assert_allclose(lorentz.dist(hx, hy, c=c), poincare.dist(x, y, c=c),
                             rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(lorentz.pairwise_dist(hx, hy, c=c),
                             poincare.pairwise_dist(x, y, c=c), rtol=1e-8, atol=1e-7)


@pytest.mark.parametrize("c", CURVATURES)
def test_poincare_lorentz_isometry_round_trips(x64, c):
  p = _ball_points(2, (N, D), c)
  np.testing.assert_allclose(lorentz.to_poincare(lorentz.from_poincare(p, c=c), c=c), p,
                             rtol=1e-12, atol=1e-12)
  space = _normal(3, (N, D))
  h = jnp.asarray(np.concatenate(  # Built by hand: x_0 = sqrt(1/c + |x_{1:}|^2).
      [np.sqrt(1.0 / c + np.sum(space**2, axis=-1, keepdims=True)), space], axis=-1))
  back = lorentz.to_poincare(h, c=c)
  assert np.all(poincare.is_on_manifold(back, c=c))
  np.testing.assert_allclose(lorentz.from_poincare(back, c=c), h, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("c", CURVATURES)
def test_isometry_maps_the_origins_onto_each_other(x64, c):
  o = lorentz.origin((3,), c=c, dtype=jnp.float64)
  np.testing.assert_allclose(lorentz.to_poincare(o, c=c), np.zeros(2), atol=1e-15)
  np.testing.assert_allclose(lorentz.from_poincare(jnp.zeros(2), c=c), o, atol=1e-15)


# Curvature limits.


@pytest.mark.parametrize("c", [1e-4, 1e-6, 1e-8])
def test_poincare_distance_tends_to_twice_euclidean_as_c_vanishes(x64, c):
  # delta = 2c|x-y|^2 / ((1-c|x|^2)(1-c|y|^2)) -> 0 and arcosh(1 + delta) ~ sqrt(2 delta), so
  # dist -> sqrt(4c|x-y|^2)/sqrt(c) = 2|x-y| (the conformal factor 2 / (1 - c|x|^2) -> 2),
  # with a relative error O(c |x|^2) for points of norm <= ~1.
  x = jnp.asarray(np.random.default_rng(4).uniform(-0.6, 0.6, (N, D)))
  y = jnp.asarray(np.random.default_rng(5).uniform(-0.6, 0.6, (N, D)))
  want = 2.0 * np.linalg.norm(np.asarray(x) - np.asarray(y), axis=-1)
  np.testing.assert_allclose(poincare.dist(x, y, c=c), want, rtol=10 * c)
  np.testing.assert_allclose(poincare.conformal_factor(x, c=c, keepdims=False), 2.0,
                             rtol=10 * c)


# Hand-computed values.


@pytest.mark.parametrize("c", CURVATURES)
@pytest.mark.parametrize("scaled_radius", [1e-6, 0.1, 0.5, 0.9, 0.999])
def test_poincare_distance_from_origin(x64, c, scaled_radius):
  # d(0, x) = (2 / sqrt(c)) artanh(sqrt(c) |x|).
  direction = np.array([2.0, -1.0, 0.5, 3.0, 1.0])
  x = direction / np.linalg.norm(direction) * scaled_radius / math.sqrt(c)
  want = 2.0 / math.sqrt(c) * math.atanh(scaled_radius)
  got = poincare.dist(jnp.zeros(D), jnp.asarray(x), c=c)
  np.testing.assert_allclose(got, want, rtol=1e-9)
  np.testing.assert_allclose(poincare.dist(jnp.asarray(x), jnp.zeros(D), c=c), want, rtol=1e-9)


@pytest.mark.parametrize("a, b, want", [
    (0.0, 0.5, math.log(3.0)),             # 2 artanh(1/2) = log 3
    (-0.5, 0.5, 2.0 * math.log(3.0)),      # a geodesic through 0: distances add
    (0.5, 0.8, math.log(9.0) - math.log(3.0)),  # 2 artanh(0.8) = log 9
    (-0.8, 0.0, math.log(9.0)),
])
def test_poincare_distance_on_the_unit_interval(x64, a, b, want):
  # In 1-D the ball is (-1, 1) and d(a, b) = 2 |artanh(b) - artanh(a)|.
  got = poincare.dist(jnp.array([a]), jnp.array([b]), c=1.0)
  np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("c", CURVATURES)
def test_sphere_quarter_circle(x64, c):
  e = np.eye(3) / math.sqrt(c)
  x, y = jnp.asarray(e[[0, 1, 2]]), jnp.asarray(e[[1, 2, 0]])
  want = np.full(3, math.pi / (2.0 * math.sqrt(c)))
  np.testing.assert_allclose(sphere.dist(x, y, c=c), want, rtol=1e-12)
  same = np.array([0, 1, 2])[:, None] == np.array([1, 2, 0])[None, :]
  np.testing.assert_allclose(sphere.pairwise_dist(x, y, c=c), np.where(same, 0.0, want[0]),
                             rtol=1e-12, atol=1e-7)
  # A quarter of the great circle: exp of a tangent of length pi / (2 sqrt(c)).
  np.testing.assert_allclose(sphere.expmap(x[0], want[0] * math.sqrt(c) * y[0], c=c), y[0],
                             atol=1e-12)


@pytest.mark.parametrize("c", CURVATURES)
@pytest.mark.parametrize("length", [1e-3, 0.5, 3.0, 10.0])
def test_lorentz_distance_from_origin_is_the_tangent_length(x64, c, length):
  direction = np.array([0.0, 1.0, -2.0, 0.5, 1.0, -1.0])  # Tangent at the origin: x_0 = 0.
  v = jnp.asarray(direction / np.linalg.norm(direction) * length)
  o = lorentz.origin((D + 1,), c=c, dtype=jnp.float64)
  y = lorentz.expmap(o, v, c=c)
  np.testing.assert_allclose(lorentz.dist(o, y, c=c), length, rtol=1e-9)
  np.testing.assert_allclose(lorentz.norm(o, lorentz.logmap(o, y, c=c), c=c), length,
                             rtol=1e-8)


# Möbius addition.


@pytest.mark.parametrize("c", CURVATURES)
def test_mobius_add_group_identities(x64, c):
  a = _ball_points(6, (N, D), c)
  b = _ball_points(7, (N, D), c)
  zero = jnp.zeros_like(a)
  np.testing.assert_allclose(poincare.mobius_add(a, zero, c=c), a, atol=1e-14)
  np.testing.assert_allclose(poincare.mobius_add(zero, a, c=c), a, atol=1e-14)
  np.testing.assert_allclose(poincare.mobius_add(-a, a, c=c), zero, atol=1e-12)
  # Left cancellation: (-a) (+) (a (+) b) = b.
  np.testing.assert_allclose(poincare.mobius_add(-a, poincare.mobius_add(a, b, c=c), c=c), b,
                             atol=1e-9)
  # |(-a) (+) b| = tanh(sqrt(c) d(a, b) / 2) / sqrt(c) (the distance is gyro-invariant).
  want = np.tanh(math.sqrt(c) * np.asarray(poincare.dist(a, b, c=c)) / 2.0) / math.sqrt(c)
  np.testing.assert_allclose(np.linalg.norm(poincare.mobius_add(-a, b, c=c), axis=-1), want,
                             rtol=1e-9)


def test_mobius_add_is_vector_addition_for_collinear_points_as_velocities(x64):
  # On a line through 0 with c = 1, (+) is the relativistic velocity addition (a+b)/(1+ab).
  a, b = 0.3, 0.6
  got = poincare.mobius_add(jnp.array([a, 0.0]), jnp.array([b, 0.0]), c=1.0)
  np.testing.assert_allclose(got, [(a + b) / (1 + a * b), 0.0], rtol=1e-14)


# Maps at the origin.


@pytest.mark.parametrize("c", CURVATURES)
def test_expmap0_logmap0_inverse_and_equal_to_maps_at_origin(x64, c):
  v = jnp.asarray(_normal(8, (N, D)) * 2.0 / math.sqrt(c))
  zero = jnp.zeros_like(v)
  y = poincare.expmap0(v, c=c)
  assert np.all(poincare.is_on_manifold(y, c=c))
  np.testing.assert_allclose(poincare.logmap0(y, c=c), v, rtol=1e-8, atol=1e-10)
  np.testing.assert_allclose(poincare.expmap(zero, v, c=c), y, rtol=1e-12, atol=1e-14)
  p = _ball_points(9, (N, D), c)
  np.testing.assert_allclose(poincare.expmap0(poincare.logmap0(p, c=c), c=c), p, atol=1e-12)
  np.testing.assert_allclose(poincare.logmap(zero, p, c=c), poincare.logmap0(p, c=c),
                             rtol=1e-12, atol=1e-14)
  # |log_0 p| at the origin's metric (factor 2) is the distance from 0.
  np.testing.assert_allclose(
      2.0 * np.linalg.norm(poincare.logmap0(p, c=c), axis=-1),
      poincare.dist(zero, p, c=c), rtol=1e-10)


def test_maps_at_origin_are_identity_at_zero(x64):
  zero = jnp.zeros((2, 3))
  np.testing.assert_array_equal(poincare.expmap0(zero), zero)
  np.testing.assert_array_equal(poincare.logmap0(zero), zero)


# Shapes.


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_pairwise_dist_with_leading_batch_axes(x64, name):
  m = GEOMETRIES[name]
  ambient = m.ambient_dim(D)
  x = _points(m, 10, (2, 3, 4, ambient), c=0.8)
  y = _points(m, 11, (2, 3, N, ambient), c=0.8)
  got = m.pairwise_dist(x, y, c=0.8)
  assert got.shape == (2, 3, 4, N)
  want = m.dist(x[..., :, None, :], y[..., None, :, :], c=0.8)
  np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-7)
  np.testing.assert_allclose(got[1, 2], m.pairwise_dist(x[1, 2], y[1, 2], c=0.8), rtol=1e-12)


# Numerical edge cases.


@pytest.mark.parametrize("c", [0.7, 1.0, 2.0])
def test_float32_distance_near_the_boundary(c):
  # Two points 1e-5 (relative) from the boundary: exactly where proj keeps float32 points.
  r = (1.0 - 1e-5) / math.sqrt(c)
  x = jnp.array([r, 0.0, 0.0], jnp.float32)
  y = jnp.array([0.0, 0.6 * r, 0.8 * r], jnp.float32)
  assert np.all(poincare.is_on_manifold(jnp.stack([x, y]), c=c))
  d = poincare.dist(x, y, c=c)
  gx, gy = jax.grad(lambda a, b: poincare.dist(a, b, c=c), argnums=(0, 1))(x, y)
  assert np.isfinite(d) and d > 0
  assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
  # The same float32 points in float64: float32 keeps ~3 digits of 1 - c|x|^2 ~ 2e-5.
  with jax.enable_x64(True):
    want = poincare.dist(jnp.asarray(np.asarray(x), jnp.float64),
                         jnp.asarray(np.asarray(y), jnp.float64), c=c)
  np.testing.assert_allclose(d, want, rtol=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("at", ["random", "origin"])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_distance_gradient_at_coincident_points_is_zero(name, at, dtype):
  m = GEOMETRIES[name]
  with jax.enable_x64(dtype == "float64"):
    shape = (N, m.ambient_dim(D))
    if at == "origin":
      x = m.origin(shape, c=0.7, dtype=jnp.dtype(dtype))
    else:
      x = _points(m, 12, shape, c=0.7, dtype=jnp.dtype(dtype))
    grad = jax.grad(lambda p: jnp.sum(m.dist(p, x, c=0.7)))(x)
    grad_sq = jax.grad(lambda p: jnp.sum(m.dist(p, x, c=0.7) ** 2))(x)
    np.testing.assert_array_equal(m.dist(x, x, c=0.7), np.zeros(N))
  np.testing.assert_array_equal(grad, np.zeros(shape))
  np.testing.assert_array_equal(grad_sq, np.zeros(shape))
