"""The optional operations of the geometries: midpoints, maps at the origin, similarities.

Closed forms written out here in numpy (Euclidean weighted mean, the sphere's renormalised mean,
the hyperboloid's cosh/sinh map at the origin), cross-model identities (Poincaré == Lorentz
through the isometry), each built-in closed form against the generic default of the same
geometry stripped of it (``tests/geometry/bare.py``), and the bits tasks depend on. Each runs
with and without ``jit`` (``chex.variants``).
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from embedlab.geometry import GEOMETRIES, euclidean, lorentz, poincare, sphere
from tests.geometry.bare import BARE, bare

C = 0.7
# The built-in geometries (a notebook may register more while the suite runs).
BUILT_IN = sorted(GEOMETRIES)
WITH_BARE = BUILT_IN + sorted(BARE)


def _manifold(name):
  return BARE[name] if name in BARE else GEOMETRIES[name]


def _points(manifold, seed, n, dim=3, c=C, dtype=jnp.float64):
  return manifold.random_point(jax.random.key(seed), (n, manifold.ambient_dim(dim)), c=c,
                               dtype=dtype)


def _weights(seed, shape, dtype=jnp.float64):
  return jnp.asarray(np.random.default_rng(seed).uniform(0.1, 1.0, shape), dtype)


class MidpointTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_euclidean_is_weighted_mean(self):
    points = jnp.array([[0.0, 0.0], [4.0, 0.0], [0.0, 8.0]])
    weights = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 2.0], [0.0, 3.0, 1.0]])
    # Hand: (2, 0); (0 + 4 + 0, 0 + 0 + 16) / 4 = (1, 4); (12, 8) / 4 = (3, 2).
    got = self.variant(euclidean.MANIFOLD.weighted_midpoint)(points, weights, c=0.0)
    np.testing.assert_allclose(got, [[2, 0], [1, 4], [3, 2]], rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(1.0, 2.0)
  def test_sphere_is_renormalised_mean(self, c):
    with jax.enable_x64(True):
      points = _points(sphere.MANIFOLD, 0, 5, c=c)
      weights = _weights(1, (4, 5))
      got = np.asarray(self.variant(functools.partial(sphere.MANIFOLD.weighted_midpoint, c=c))(
          points, weights))
    mean = np.asarray(weights) @ np.asarray(points)
    np.testing.assert_allclose(got, mean / np.linalg.norm(mean, axis=1, keepdims=True)
                               / np.sqrt(c), rtol=1e-13)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(1.0, 2.0)
  def test_poincare_equals_lorentz_through_the_isometry(self, c):
    with jax.enable_x64(True):
      ball = _points(poincare.MANIFOLD, 2, 6, c=c)
      weights = _weights(3, (4, 6))
      in_ball = self.variant(functools.partial(poincare.MANIFOLD.weighted_midpoint, c=c))(
          ball, weights)
      hyperboloid = self.variant(functools.partial(lorentz.MANIFOLD.weighted_midpoint, c=c))(
          lorentz.from_poincare(ball, c=c), weights)
      np.testing.assert_allclose(lorentz.to_poincare(hyperboloid, c=c), in_ball, rtol=1e-12,
                                 atol=1e-14)
      assert np.all(lorentz.is_on_manifold(hyperboloid, c=c, atol=1e-10))

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*BUILT_IN)
  def test_two_point_midpoint_is_on_the_geodesic_halfway(self, name):
    manifold = GEOMETRIES[name]
    with jax.enable_x64(True):
      points = _points(manifold, 4, 2)
      mid = self.variant(functools.partial(manifold.weighted_midpoint, c=C))(
          points, jnp.ones((1, 2), jnp.float64))[0]
      d_xm, d_my, d_xy = (float(manifold.dist(a, b, c=C)) for a, b in
                          [(points[0], mid), (mid, points[1]), (points[0], points[1])])
    assert d_xy > 0.1
    np.testing.assert_allclose([d_xm, d_my], [d_xy / 2, d_xy / 2], rtol=1e-10)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(name=WITH_BARE, c=[1.0, 2.0])
  def test_zero_weight_row_gives_origin_and_finite_gradients(self, name, c):
    # c >= 1: below, the hyperboloid's empty row has NaN gradients (see its weighted_midpoint).
    manifold = _manifold(name)
    points = _points(manifold, 0, 4, c=c, dtype=jnp.float32)
    weights = jnp.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.5], [0.0, 1.0, 0.0, 0.0]])
    midpoint = self.variant(functools.partial(manifold.weighted_midpoint, c=c))
    got = midpoint(points, weights)
    chex.assert_shape(got, (3, points.shape[1]))
    chex.assert_type(got, jnp.float32)
    np.testing.assert_allclose(got[0], manifold.origin((points.shape[1],), c=c), atol=1e-7)
    np.testing.assert_allclose(got[2], points[1], atol=1e-5)  # One point: itself.
    assert np.all(manifold.is_on_manifold(got, c=c, atol=1e-4))
    # Gradients w.r.t. points and weights, including the empty row, identical points and the
    # origin itself among the points.
    base = manifold.origin((points.shape[1],), c=c, dtype=points.dtype)
    grad = self.variant(jax.grad(lambda p, w: jnp.sum(jnp.sin(manifold.weighted_midpoint(
        p, w, c=c))), argnums=(0, 1)))
    for batch in [points, jnp.stack([points[0], points[0], base, base])]:
      for g in grad(batch, weights):
        assert np.all(np.isfinite(g))


class OriginMapsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*BUILT_IN)
  def test_closed_forms_equal_the_generic_defaults(self, name):
    # The generic defaults are built from expmap / logmap at the origin only.
    manifold, generic = GEOMETRIES[name], bare(GEOMETRIES[name])
    with jax.enable_x64(True):
      y = _points(manifold, 5, 6)
      points = _points(manifold, 6, 5)
      weights = _weights(7, (3, 5))
      for op, args in [("logmap0", (y,)), ("direction0", (y,)),
                       ("expmap0", (manifold.logmap0(y, c=C),))]:
        got = self.variant(functools.partial(getattr(manifold, op), c=C))(*args)
        want = getattr(generic, op)(*args, c=C)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=op)
      # The generic midpoint is a different point; on Euclidean space the two coincide.
      if manifold.vector_space:
        np.testing.assert_allclose(manifold.weighted_midpoint(points, weights, c=C),
                                   generic.weighted_midpoint(points, weights, c=C), rtol=1e-12)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(0.3, 1.0, 2.5)
  def test_hyperboloid_expmap0_closed_form(self, c):
    v = np.random.default_rng(8).standard_normal((4, 3))
    with jax.enable_x64(True):
      got = self.variant(functools.partial(lorentz.expmap0, c=c))(jnp.asarray(v))
      chex.assert_shape(got, (4, 4))
      back = lorentz.logmap0(got, c=c)
    r = math.sqrt(c) * np.linalg.norm(v, axis=1, keepdims=True)
    want = np.concatenate([np.cosh(r) / math.sqrt(c), np.sinh(r) * v / r], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(back, v, rtol=1e-10)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(0.3, 1.0, 2.5)
  def test_sphere_maps_at_the_north_pole(self, c):
    # exp_o(t e_1) = (cos(sqrt(c) t), sin(sqrt(c) t)) / sqrt(c); coordinate 0 of v is ignored.
    t = np.array([0.2, 1.0, 1.9])  # sqrt(c) t < pi: inside the injectivity radius.
    v = np.stack([np.full(3, 7.0), t, np.zeros(3)], axis=1)
    with jax.enable_x64(True):
      got = self.variant(functools.partial(sphere.expmap0, c=c))(jnp.asarray(v))
      back = sphere.logmap0(got, c=c)
    s = math.sqrt(c)
    want = np.stack([np.cos(s * t), np.sin(s * t), np.zeros(3)], axis=1) / s
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(back, np.stack([np.zeros(3), t, np.zeros(3)], axis=1),
                               rtol=1e-12, atol=1e-15)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*BUILT_IN)
  def test_expmap0_is_bitwise_expmap_at_the_origin(self, name):
    # Tasks map features with expmap at the origin; expmap0 must keep their float32 bits.
    manifold = GEOMETRIES[name]
    v = jnp.asarray(3.0 * np.random.default_rng(9).standard_normal((16, 5)), jnp.float32)
    u = jnp.pad(v, ((0, 0), (manifold.ambient_dim(5) - 5, 0)))
    o = manifold.origin(u.shape, c=1.0, dtype=u.dtype)
    got = self.variant(functools.partial(manifold.expmap0, c=1.0))(v)
    want = self.variant(lambda t: manifold.expmap(o, manifold.proj_tangent(o, t, c=1.0),
                                                  c=1.0))(u)
    if manifold.radial:
      want = self.variant(lambda t: manifold.expmap(o, t.at[:, 0].set(0.0), c=1.0))(u)
    np.testing.assert_array_equal(got, want)

  def test_tangent_dim(self):
    assert [GEOMETRIES[n].tangent_dim(GEOMETRIES[n].ambient_dim(4)) for n in BUILT_IN] == [4] * 4
    assert lorentz.MANIFOLD.tangent_dim(5) == 4
    assert euclidean.MANIFOLD.tangent_dim(5) == 5


class SimilarityTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(0.5, 1.0)
  def test_sphere_similarity_is_the_cosine(self, c):
    with jax.enable_x64(True):
      x, y = _points(sphere.MANIFOLD, 10, 4, c=c), _points(sphere.MANIFOLD, 11, 3, c=c)
      got = self.variant(functools.partial(sphere.MANIFOLD.pairwise_similarity, c=c))(x, y)
    unit = lambda a: np.asarray(a) / np.linalg.norm(a, axis=1, keepdims=True)
    np.testing.assert_allclose(got, unit(x) @ unit(y).T, rtol=1e-12)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*[n for n in WITH_BARE if not _manifold(n).radial])
  def test_default_similarity_is_negative_distance(self, name):
    manifold = _manifold(name)
    x, y = _points(manifold, 12, 4, dtype=jnp.float32), _points(manifold, 13, 3,
                                                                dtype=jnp.float32)
    similarity = self.variant(functools.partial(manifold.pairwise_similarity, c=C))
    distance = self.variant(functools.partial(manifold.pairwise_dist, c=C))
    np.testing.assert_array_equal(similarity(x, y), -distance(x, y))
