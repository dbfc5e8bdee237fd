"""Tests for embedlab.models.encoder: the MLP and the map of its output onto each manifold.

Each table runs with and without ``jit`` (``chex.variants``): tracing must not change the
points.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from embedlab import geometry
from embedlab import models

_GEOMETRIES = [(name, name) for name in sorted(geometry.GEOMETRIES)]
# Clipping applies where the curvature is negative (the map goes through exp at the origin).
_HYPERBOLIC = [(name, name) for name in sorted(geometry.GEOMETRIES)
               if geometry.get(name).curvature_sign < 0]


class ToManifoldTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*_GEOMETRIES)
  def test_lands_on_the_manifold(self, name):
    manifold = geometry.get(name)
    v = 10.0 * jax.random.normal(jax.random.PRNGKey(0), (64, 5))
    fn = self.variant(models.to_manifold, static_argnames=("clip_radius",))
    x = fn(v, manifold=manifold, c=1.0, clip_radius=2.0)
    assert x.shape == (64, manifold.ambient_dim(5))
    geometry.check_on_manifold(manifold, x, c=1.0)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*_HYPERBOLIC)
  def test_clipping_bounds_the_distance_from_the_origin(self, name):
    """Features longer than the radius land exactly as far from the origin as one of norm
    ``clip_radius`` does, shorter ones nearer."""
    manifold = geometry.get(name)
    radius = 1.5
    directions = jax.random.normal(jax.random.PRNGKey(1), (32, 3))
    directions /= jnp.linalg.norm(directions, axis=1, keepdims=True)
    norms = jnp.linspace(0.1, 6.0, 32)[:, None]
    fn = self.variant(models.to_manifold, static_argnames=("clip_radius",))
    x = fn(norms * directions, manifold=manifold, c=1.0, clip_radius=radius)
    at_radius = fn(radius * directions, manifold=manifold, c=1.0, clip_radius=0.0)
    origin = manifold.origin(x.shape, c=1.0)
    d, bound = manifold.dist(origin, x, c=1.0), manifold.dist(origin, at_radius, c=1.0)
    longer = norms[:, 0] > radius
    np.testing.assert_allclose(d[longer], bound[longer], rtol=1e-5)
    assert bool(jnp.all(d[~longer] < bound[~longer]))

  @chex.variants(with_jit=True, without_jit=True)
  def test_clip_norm(self):
    v = jnp.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    clip = self.variant(models.clip_norm, static_argnums=(1,))
    np.testing.assert_allclose(clip(v, 1.0), [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_array_equal(clip(v, 0.0), v)  # radius <= 0: off


class MLPTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("two_hidden", (8, 4)), ("one_hidden", (16,)), ("linear", ()))
  def test_widths_and_output(self, hidden):
    model = models.MLP(hidden=hidden, out=3)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 7))
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    kernels = [params[f"Dense_{i}"]["kernel"].shape for i in range(len(hidden) + 1)]
    assert kernels == list(zip((7,) + hidden, hidden + (3,)))
    y = self.variant(model.apply)({"params": params}, x)
    chex.assert_shape(y, (5, 3))
    if not hidden:  # A linear encoder is the affine map x W + b.
      dense = params["Dense_0"]
      np.testing.assert_allclose(y, x @ dense["kernel"] + dense["bias"], rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(*_GEOMETRIES)
  def test_embed_points_is_the_encoder_then_the_map(self, name):
    manifold = geometry.get(name)
    model = models.MLP(hidden=(8,), out=4)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    got = models.embed_points(model, params, x, manifold=manifold, c=1.0, clip_radius=2.0)
    want = models.to_manifold(model.apply({"params": params}, x), manifold=manifold, c=1.0,
                              clip_radius=2.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hidden, expected", [((256, 256), (256, 256)), ([16], (16,)), ((), ())])
def test_check_widths_accepts_positive_ints(hidden, expected):
  assert models.check_widths(hidden) == expected


@pytest.mark.parametrize("hidden", [(0,), (64, -1), (2.5,), ("64",), (True,)])
def test_check_widths_names_the_field(hidden):
  with pytest.raises(ValueError, match=r"model\.hidden=.*must be positive ints"):
    models.check_widths(hidden, name="model.hidden")
