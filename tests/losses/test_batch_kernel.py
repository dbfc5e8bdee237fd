"""Tests for the midpoints of embedlab.losses._batch (weighted_midpoint, class_centroids) in every
geometry: closed forms (Euclidean weighted mean, sphere radius), Poincaré == Lorentz through the
isometry, the two-point midpoint on the geodesic, empty rows, gradients, float64."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab.geometry import GEOMETRIES, lorentz
from embedlab.losses import _batch

CURVATURES = [1.0, 2.0]


def _points(name, n, c, seed=0, dim=3, dtype=jnp.float64):
  manifold = GEOMETRIES[name]
  return manifold.random_point(jax.random.key(seed), (n, manifold.ambient_dim(dim)), c=c,
                               dtype=dtype)


@functools.partial(jax.jit, static_argnames=("manifold",))
def _midpoint(points, weights, c, *, manifold):
  return _batch.weighted_midpoint(points, weights, manifold=manifold, c=c)


def test_euclidean_is_weighted_mean():
  points = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 8.0]])
  weights = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 2.0], [0.0, 3.0, 1.0]])
  # Hand: (2, 0); (0 + 4 + 0, 0 + 0 + 16) / 4 = (1, 4); (12, 8) / 4 = (3, 2).
  with jax.enable_x64(True):
    got = _midpoint(jnp.asarray(points), jnp.asarray(weights), 0.0,
                    manifold=GEOMETRIES["euclidean"])
  np.testing.assert_allclose(got, [[2, 0], [1, 4], [3, 2]], rtol=1e-15)


@pytest.mark.parametrize("c", CURVATURES)
def test_sphere_is_renormalised_mean_of_radius(c):
  with jax.enable_x64(True):
    points = _points("sphere", 5, c)
    weights = jax.random.uniform(jax.random.key(1), (4, 5), jnp.float64)
    got = np.asarray(_midpoint(points, weights, c, manifold=GEOMETRIES["sphere"]))
  mean = np.asarray(weights) @ np.asarray(points)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1 / np.sqrt(c), rtol=1e-14)
  np.testing.assert_allclose(got, mean / np.linalg.norm(mean, axis=1, keepdims=True) / np.sqrt(c),
                             rtol=1e-13)


@pytest.mark.parametrize("c", CURVATURES)
def test_poincare_equals_lorentz_through_the_isometry(c):
  with jax.enable_x64(True):
    ball = _points("poincare", 6, c, seed=2)
    weights = jax.random.uniform(jax.random.key(3), (4, 6), jnp.float64)
    in_ball = _midpoint(ball, weights, c, manifold=GEOMETRIES["poincare"])
    hyperboloid = _midpoint(lorentz.from_poincare(ball, c=c), weights, c,
                            manifold=GEOMETRIES["lorentz"])
    np.testing.assert_allclose(lorentz.to_poincare(hyperboloid, c=c), in_ball, rtol=1e-12,
                               atol=1e-14)
    assert np.all(GEOMETRIES["lorentz"].is_on_manifold(hyperboloid, c=c, atol=1e-10))


@pytest.mark.parametrize("c", CURVATURES)
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_two_point_midpoint_is_on_the_geodesic_halfway(name, c):
  manifold = GEOMETRIES[name]
  with jax.enable_x64(True):
    points = _points(name, 2, c, seed=4)
    mid = _midpoint(points, jnp.ones((1, 2), jnp.float64), c, manifold=manifold)[0]
    d_xm, d_my, d_xy = (float(manifold.dist(a, b, c=c)) for a, b in
                        [(points[0], mid), (mid, points[1]), (points[0], points[1])])
  assert d_xy > 0.1
  np.testing.assert_allclose(d_xm, d_xy / 2, rtol=1e-10)
  np.testing.assert_allclose(d_my, d_xy / 2, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_zero_weight_row_gives_origin_and_finite_gradients(name):
  manifold = GEOMETRIES[name]
  points = _points(name, 4, 1.0, dtype=jnp.float32)
  weights = jnp.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.5], [0.0, 1.0, 0.0, 0.0]])
  got = _midpoint(points, weights, 1.0, manifold=manifold)
  np.testing.assert_allclose(got[0], manifold.origin((points.shape[1],), c=1.0), atol=1e-7)
  np.testing.assert_allclose(got[2], points[1], atol=1e-5)  # One point: itself.
  assert np.all(manifold.is_on_manifold(got, c=1.0, atol=1e-4))
  # Gradients w.r.t. points and weights, including the empty row, identical points and the
  # origin itself among the points.
  base = manifold.origin((points.shape[1],), c=1.0, dtype=points.dtype)
  for batch in [points, jnp.stack([points[0], points[0], base, base])]:
    grads = jax.jit(jax.grad(lambda p, w: jnp.sum(jnp.sin(
        _batch.weighted_midpoint(p, w, manifold=manifold, c=1.0))), argnums=(0, 1)))(
            batch, weights)
    for g in grads:
      assert np.all(np.isfinite(g))


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_class_centroids(name):
  manifold = GEOMETRIES[name]
  labels = jnp.array([2, 0, 2, 2, 0])
  with jax.enable_x64(True):
    points = _points(name, 5, 1.0, seed=5)
    centroids, counts = jax.jit(functools.partial(
        _batch.class_centroids, num_classes=4, manifold=manifold, c=1.0))(points, labels)
    expected = _midpoint(points, jnp.array([[0, 1, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 1, 1, 0],
                                            [0, 0, 0, 0, 0]]), 1.0, manifold=manifold)
  np.testing.assert_array_equal(counts, [2, 0, 3, 0])
  np.testing.assert_allclose(centroids, expected, rtol=1e-14, atol=1e-15)
  np.testing.assert_allclose(centroids[1], manifold.origin((points.shape[1],), c=1.0), atol=0)
  assert centroids.dtype == jnp.float64
