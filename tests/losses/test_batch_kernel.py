"""Tests for the class centroids of embedlab.losses._batch in every geometry: each class's
``manifold.weighted_midpoint`` (the midpoints themselves are tested in
tests/geometry/test_optional_ops.py), absent classes at the origin, float64 kept."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from embedlab.geometry import GEOMETRIES
from embedlab.losses import _batch
from tests.geometry.bare import BARE


def _manifold(name):
  return BARE[name] if name in BARE else GEOMETRIES[name]


class ClassCentroidsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*sorted(GEOMETRIES), *sorted(BARE))
  def test_class_centroids(self, name):
    manifold = _manifold(name)
    labels = jnp.array([2, 0, 2, 2, 0])
    with jax.enable_x64(True):
      points = manifold.random_point(jax.random.key(5), (5, manifold.ambient_dim(3)), c=1.0,
                                     dtype=jnp.float64)
      centroids, counts = self.variant(functools.partial(
          _batch.class_centroids, num_classes=4, manifold=manifold, c=1.0))(points, labels)
      expected = manifold.weighted_midpoint(
          points, jnp.array([[0, 1, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 1, 1, 0],
                             [0, 0, 0, 0, 0]]), c=1.0)
    np.testing.assert_array_equal(counts, [2, 0, 3, 0])
    np.testing.assert_allclose(centroids, expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(centroids[1], manifold.origin((points.shape[1],), c=1.0), atol=0)
    chex.assert_type(centroids, jnp.float64)
