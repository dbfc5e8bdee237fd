"""Every loss in a geometry embedlab does not know: the built-in records stripped of their
optional operations (``tests/geometry/bare.py``, what a notebook geometry gets), with and without
``jit`` (``chex.variants``).

Each loss must give finite values and finite gradients (to the embeddings and to the class
vectors) there. In the hyperbolic models the stripped record differs from the built-in one only
in its midpoint (the generic tangent-space mean instead of the Einstein midpoint), so every loss
that takes no midpoint must agree with the built-in geometry's.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from embedlab.geometry import GEOMETRIES
from embedlab.losses import contrastive, metric, mixup, prototypes, proxy
from tests.geometry.bare import BARE, bare

C = 0.7
LABELS = jnp.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
NUM_CLASSES = 5  # Class 4 is absent: an empty centroid.
MIXES = mixup.sample_mixes(jax.random.key(3), LABELS, num_mixes=6)


def _losses(manifold):
  """``{name: fn(embeddings [10, D], class_vectors [5, D], basis [5, d]) -> scalar}``."""
  kw = dict(manifold=manifold, c=C)
  pairs = lambda x: (x[:5], x[5:])
  return {
      "contrastive": lambda x, p, b: metric.contrastive_loss(x, LABELS, **kw),
      "triplet": lambda x, p, b: metric.triplet_loss(x, LABELS, **kw),
      "multi_similarity": lambda x, p, b: metric.multi_similarity_loss(x, LABELS, **kw),
      "centroid_triplet": lambda x, p, b: metric.centroid_triplet_loss(
          x, LABELS, num_classes=NUM_CLASSES, **kw),
      "ntxent": lambda x, p, b: contrastive.ntxent_loss(x, LABELS, **kw),
      "supcon": lambda x, p, b: contrastive.supcon_loss(x, LABELS, **kw),
      "infonce": lambda x, p, b: contrastive.infonce_loss(*pairs(x), **kw),
      "npair": lambda x, p, b: contrastive.npair_loss(*pairs(x), **kw),
      "prototypical": lambda x, p, b: contrastive.prototypical_loss(
          x[::2], LABELS[::2], x[1::2], LABELS[1::2], num_classes=NUM_CLASSES, **kw),
      "proxy_nca": lambda x, p, b: proxy.proxy_nca_loss(x, LABELS, p, **kw),
      "proxy_anchor": lambda x, p, b: proxy.proxy_anchor_loss(x, LABELS, p, **kw),
      "cosface": lambda x, p, b: proxy.cosface_loss(x, LABELS, p, **kw),
      "arcface": lambda x, p, b: proxy.arcface_loss(x, LABELS, p, **kw),
      "ebv": lambda x, p, b: prototypes.ebv_loss(x, LABELS, b, **kw),
      "hyperspherical_prototype": lambda x, p, b: prototypes.hyperspherical_prototype_loss(
          x, LABELS, b, **kw),
      "metrix_contrastive": lambda x, p, b: mixup.metrix_contrastive_loss(x, LABELS, MIXES, **kw),
      "metrix_multi_similarity": lambda x, p, b: mixup.metrix_multi_similarity_loss(
          x, LABELS, MIXES, **kw),
      "metrix_proxy_anchor": lambda x, p, b: mixup.metrix_proxy_anchor_loss(
          x, LABELS, p, MIXES, **kw),
  }


MIDPOINT_LOSSES = {"centroid_triplet", "prototypical", "metrix_contrastive",
                   "metrix_multi_similarity", "metrix_proxy_anchor"}


def _inputs(manifold):
  ambient = manifold.ambient_dim(3)
  keys = jax.random.split(jax.random.key(0), 3)
  x = manifold.random_point(keys[0], (len(LABELS), ambient), c=C)
  x = x.at[4].set(x[3])  # Two identical points.
  class_vectors = manifold.random_point(keys[1], (NUM_CLASSES, ambient), c=C)
  basis = jax.random.normal(keys[2], (NUM_CLASSES, manifold.tangent_dim(ambient)))
  return x, class_vectors, basis


def _values_and_grads(manifold):
  return {name: jax.value_and_grad(fn, argnums=(0, 1, 2))
          for name, fn in _losses(manifold).items()}


class AnyGeometryTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*sorted(BARE))
  def test_every_loss_is_finite_with_finite_gradients(self, name):
    manifold = BARE[name]
    x, class_vectors, basis = _inputs(manifold)
    run = self.variant(lambda x, p, b: {loss: fn(x, p, b)
                                        for loss, fn in _values_and_grads(manifold).items()})
    for loss, (value, grads) in run(x, class_vectors, basis).items():
      chex.assert_shape(value, ())
      assert np.isfinite(value), (name, loss)
      for g in grads:
        assert np.all(np.isfinite(g)), (name, loss)


@pytest.mark.parametrize("name", [n for n, m in sorted(GEOMETRIES.items())
                                  if m.curvature_sign < 0])
def test_hyperbolic_losses_without_a_midpoint_do_not_need_the_closed_forms(name):
  built_in, generic = GEOMETRIES[name], bare(GEOMETRIES[name])
  inputs = _inputs(built_in)
  got = jax.jit(lambda *a: {k: fn(*a) for k, fn in _losses(generic).items()})(*inputs)
  want = jax.jit(lambda *a: {k: fn(*a) for k, fn in _losses(built_in).items()})(*inputs)
  for loss in sorted(set(got) - MIDPOINT_LOSSES):
    np.testing.assert_allclose(got[loss], want[loss], rtol=1e-5, atol=1e-6, err_msg=loss)
