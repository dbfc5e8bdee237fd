"""Tests for embedlab.losses.mixup (Metrix): mix sampling, mixed points on the manifold and on
the geodesic, lam in {0, 1} reducing to the clean losses in every geometry, a hand-computed
Euclidean case, gradients, non-finite input and errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab.geometry import GEOMETRIES
from embedlab.losses import metric, mixup, proxy

LABELS = jnp.array([0, 0, 0, 1, 1, 2, 3, 3])  # label 2 is a singleton (no positive).


def _mixes(anchor, positive, negative, lam, valid=None):
  anchor = jnp.asarray(anchor)
  return mixup.Mixes(anchor=anchor, positive=jnp.asarray(positive),
                     negative=jnp.asarray(negative), lam=jnp.asarray(lam, jnp.float32),
                     valid=jnp.ones(anchor.shape, bool) if valid is None else jnp.asarray(valid))


@functools.cache
def _sampled(num_mixes=16, seed=3):
  """Mixes drawn once (jax.random.beta is slow to compile: the other tests reuse these)."""
  return jax.jit(functools.partial(mixup.sample_mixes, num_mixes=num_mixes))(
      jax.random.key(seed), LABELS)


# --- sampling ----------------------------------------------------------------------------------

def test_sample_mixes_draws_positive_and_negative_of_the_anchor():
  mixes = jax.jit(functools.partial(mixup.sample_mixes, num_mixes=256))(jax.random.key(0), LABELS)
  labels = np.asarray(LABELS)
  assert np.all(mixes.valid)
  assert not np.any(mixes.anchor == 5)  # The singleton has no positive: never an anchor.
  assert np.all(labels[mixes.positive] == labels[mixes.anchor])
  assert np.all(mixes.positive != mixes.anchor)
  assert np.all(labels[mixes.negative] != labels[mixes.anchor])
  assert np.all((mixes.lam >= 0) & (mixes.lam <= 1))
  assert len(np.unique(mixes.anchor)) == 7 and len(np.unique(mixes.negative)) == 8
  assert 0.4 < float(np.mean(mixes.lam)) < 0.6  # Beta(2, 2) has mean 1/2.


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 1, 2]])
def test_sample_mixes_without_valid_anchor(labels):
  mixes = mixup.sample_mixes(jax.random.key(1), jnp.array(labels), num_mixes=5)
  assert not np.any(mixes.valid)
  np.testing.assert_array_equal(mixes.positive, mixes.anchor)
  np.testing.assert_array_equal(mixes.negative, mixes.anchor)
  np.testing.assert_array_equal(mixes.lam, 1.0)


# --- mixed points ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_mixed_points_lie_on_the_manifold_and_the_geodesic(name):
  manifold = GEOMETRIES[name]
  mixes = _sampled()

  @jax.jit
  def run(x):
    mixed = mixup.mix_points(x, mixes, manifold=manifold)
    ends = mixup.mix_points(x, _mixes([0, 0], [1, 1], [3, 3], [1.0, 0.0]), manifold=manifold)
    pos, neg = x[mixes.positive], x[mixes.negative]
    d = functools.partial(manifold.dist, c=1.0)
    return (mixed, ends, pos, neg, d(pos, mixed), d(mixed, neg), d(pos, neg),
            manifold.is_on_manifold(mixed, c=1.0, atol=1e-9))

  with jax.enable_x64(True):
    x = manifold.random_point(jax.random.key(2), (8, manifold.ambient_dim(3)), c=1.0,
                              dtype=jnp.float64)
    mixed, ends, pos, neg, d_pu, d_un, d_pn, on = run(x)
    x, mixed, ends, pos, neg = (np.asarray(a) for a in (x, mixed, ends, pos, neg))
  assert mixed.shape == (16, x.shape[1]) and mixed.dtype == np.float64
  assert np.all(on)
  np.testing.assert_allclose(d_pu + d_un, d_pn, rtol=1e-9)  # On the geodesic from x_p to x_n.
  np.testing.assert_allclose(ends, x[[1, 3]], atol=1e-12)  # lam 1: x_p; lam 0: x_n.
  if name == "euclidean":
    lam = np.asarray(mixes.lam, np.float64)[:, None]
    np.testing.assert_allclose(mixed, lam * pos + (1 - lam) * neg, rtol=1e-12)


def test_mix_embeddings_is_sample_then_mix():
  manifold = GEOMETRIES["poincare"]
  x = manifold.random_point(jax.random.key(2), (8, 3), c=1.0)
  mixed, mixes = jax.jit(functools.partial(mixup.mix_embeddings, manifold=manifold,
                                           num_mixes=16))(jax.random.key(3), x, LABELS)
  for got, expected in zip(mixes, _sampled()):
    np.testing.assert_array_equal(got, expected)
  np.testing.assert_allclose(mixed, mixup.mix_points(x, mixes, manifold=manifold), atol=1e-6)


def test_mixed_class_targets_and_pair_weights():
  mixes = _mixes([0, 3], [1, 4], [3, 6], [0.25, 0.5], valid=[True, False])
  np.testing.assert_allclose(mixup.mixed_class_targets(LABELS, mixes, 4),
                             [[0.25, 0.75, 0, 0], [0, 0.5, 0, 0.5]])
  pairs, targets = mixup.mixed_pair_weights(mixes, 8)
  expected = np.zeros((8, 2), bool)
  expected[0, 0] = True  # Mix 1 is invalid: it pairs with nobody.
  np.testing.assert_array_equal(pairs, expected)
  np.testing.assert_allclose(targets, [0.25, 0.5])


# --- lam in {0, 1}: the mixed loss is the clean loss -------------------------------------------

def _binary_mixes(labels):
  """One mix per ordered pair (a, j), a != j: the point x_j itself (p = n = j) with target
  1 if j is a positive of a and 0 otherwise; so the mixed pairs are exactly the clean pairs."""
  n = len(labels)
  pairs = [(a, j) for a in range(n) for j in range(n) if a != j]
  anchor, other = (np.array(v) for v in zip(*pairs))
  return _mixes(anchor, other, other, (labels[anchor] == labels[other]).astype(float))


@functools.partial(jax.jit, static_argnames=("manifold",))
def _clean_and_metrix(x, labels, proxies, pair_mixes, copy_mixes, *, manifold):
  kw = dict(manifold=manifold, c=1.0, mix_weight=0.5)
  ms = dict(alpha=2.0, beta=5.0, base=0.3 if manifold.radial else -0.5)  # cosine or -d
  pa = dict(margin=0.1, alpha=4.0)
  return (
      (metric.contrastive_loss(x, labels, manifold=manifold, neg_margin=2.0),
       mixup.metrix_contrastive_loss(x, labels, pair_mixes, neg_margin=2.0, **kw)),
      (metric.multi_similarity_loss(x, labels, manifold=manifold, **ms),
       mixup.metrix_multi_similarity_loss(x, labels, pair_mixes, **ms, **kw)),
      (proxy.proxy_anchor_loss(x, labels, proxies, manifold=manifold, **pa),
       mixup.metrix_proxy_anchor_loss(x, labels, proxies, copy_mixes, **pa, **kw)))


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_binary_lam_reduces_to_the_clean_loss(name):
  manifold = GEOMETRIES[name]
  x = manifold.random_point(jax.random.key(4), (8, manifold.ambient_dim(3)), c=1.0)
  proxies = manifold.random_point(jax.random.key(5), (4, manifold.ambient_dim(3)), c=1.0)
  pair_mixes = _binary_mixes(np.asarray(LABELS))
  # Proxy Anchor: mixes are not tied to anchors; lam = 1 copies of every point.
  copy_mixes = _mixes(np.arange(8), np.arange(8), (np.arange(8) + 3) % 8, np.ones(8))
  for clean, total in _clean_and_metrix(x, LABELS, proxies, pair_mixes, copy_mixes,
                                        manifold=manifold):
    assert clean > 0
    np.testing.assert_allclose(total, 1.5 * clean, rtol=1e-5)


# --- hand-computed -----------------------------------------------------------------------------

# Line points 0 (label 0), 2 (label 0), 4 (label 1); one mix of anchor 0: positive 1 (x = 2),
# negative 2 (x = 4), lam 0.25 -> u = 0.25 * 2 + 0.75 * 4 = 3.5, d(a, u) = 3.5.
LINE = jnp.array([[0.0], [2.0], [4.0]])
LINE_LABELS = jnp.array([0, 0, 1])
LINE_MIX = _mixes([0], [1], [2], [0.25])
EUCLIDEAN = GEOMETRIES["euclidean"]


def test_metrix_contrastive_hand_computed():
  # Clean, neg_margin 5: pairs (0,2) pos d 2 -> 4; (0,4) neg d 4 -> 1; (2,4) neg d 2 -> 9; twice
  # each over 6 ordered pairs: 28 / 6. Mixed: 0.25 * 3.5^2 + 0.75 * (5 - 3.5)^2 = 4.75.
  fn = jax.jit(functools.partial(mixup.metrix_contrastive_loss, manifold=EUCLIDEAN, c=0.0,
                                 neg_margin=5.0, mix_weight=2.0))
  np.testing.assert_allclose(fn(LINE, LINE_LABELS, LINE_MIX), 28 / 6 + 2 * 4.75, rtol=1e-6)


def test_metrix_multi_similarity_hand_computed():
  # alpha = beta = 1, base -3, S = -d. Clean: anchor 0: P d 2 -> log(1 + e^-1), N d 4 ->
  # log(1 + e^-1); anchor 1: P d 2 -> log(1 + e^-1), N d 2 -> log(1 + e^1); anchor 2: N d 4, 2
  # -> log(1 + e^-1 + e^1); mean over 3. Mixed (anchor 0 only, S = -3.5):
  # log(1 + 0.25 e^0.5) + log(1 + 0.75 e^-0.5).
  e = np.exp
  clean = (3 * np.log1p(e(-1)) + np.log1p(e(1)) + np.log1p(e(-1) + e(1))) / 3
  mixed = np.log1p(0.25 * e(0.5)) + np.log1p(0.75 * e(-0.5))
  fn = jax.jit(functools.partial(mixup.metrix_multi_similarity_loss, manifold=EUCLIDEAN, c=0.0,
                                 alpha=1.0, beta=1.0, base=-3.0, mix_weight=1.0))
  np.testing.assert_allclose(fn(LINE, LINE_LABELS, LINE_MIX), clean + mixed, rtol=1e-6)


def test_metrix_proxy_anchor_uses_soft_class_targets():
  proxies = jnp.array([[1.0], [3.0]])
  kw = dict(manifold=EUCLIDEAN, c=0.0, margin=0.1, alpha=2.0)
  total = mixup.metrix_proxy_anchor_loss(LINE, LINE_LABELS, proxies, LINE_MIX, mix_weight=2.0,
                                         **kw)
  clean = proxy.proxy_anchor_loss(LINE, LINE_LABELS, proxies, **kw)
  # The mixed point 3.5 with target 0.25 for class 0 (x_p's) and 0.75 for class 1 (x_n's).
  mixed = proxy.proxy_anchor_loss(jnp.array([[3.5]]), jnp.array([0]), proxies,
                                  label_weights=jnp.array([[0.25, 0.75]]), **kw)
  np.testing.assert_allclose(total, clean + 2.0 * mixed, rtol=1e-6)


# --- gradients, jit, non-finite input, errors --------------------------------------------------

def _all_losses(labels, proxies, mixes, manifold):
  """Each Metrix loss as a function of the embeddings alone."""
  kw = dict(manifold=manifold, c=1.0)
  return {
      "contrastive": lambda x: mixup.metrix_contrastive_loss(x, labels, mixes, **kw),
      "multi_similarity": lambda x: mixup.metrix_multi_similarity_loss(x, labels, mixes, **kw),
      "proxy_anchor": lambda x: mixup.metrix_proxy_anchor_loss(x, labels, proxies, mixes, **kw),
  }


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_finite_gradients_and_jit(name):
  manifold = GEOMETRIES[name]
  x = manifold.random_point(jax.random.key(6), (8, manifold.ambient_dim(3)), c=1.0)
  proxies = manifold.random_point(jax.random.key(7), (4, manifold.ambient_dim(3)), c=1.0)
  base = manifold.origin((manifold.ambient_dim(3),), c=1.0, dtype=x.dtype)

  @jax.jit
  def step(mixes, e):
    return {k: jax.value_and_grad(f)(e)
            for k, f in _all_losses(LABELS, proxies, mixes, manifold).items()}

  # Random points; rows 0, 1 (same class) coincide and rows 3, 5 are the origin.
  for batch in [x, x.at[1].set(x[0]).at[3].set(base).at[5].set(base)]:
    for loss, (value, grad) in step(_sampled(), batch).items():
      assert np.isfinite(value) and value > 0, loss
      assert np.all(np.isfinite(grad)) and np.any(grad != 0), loss


def test_non_finite_embedding_gives_nan_and_zero_gradient():
  manifold = GEOMETRIES["sphere"]
  x = manifold.random_point(jax.random.key(9), (8, 3), c=1.0).at[5, 0].set(jnp.nan)
  proxies = manifold.random_point(jax.random.key(10), (4, 3), c=1.0)
  mixes = _mixes([0], [1], [3], [0.5])
  out = jax.jit(lambda e: {k: jax.value_and_grad(f)(e) for k, f in
                           _all_losses(LABELS, proxies, mixes, manifold).items()})(x)
  for loss, (value, grad) in out.items():
    assert np.isnan(value), loss
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("fn", [mixup.metrix_contrastive_loss,
                                mixup.metrix_multi_similarity_loss])
def test_errors(fn):
  x, mixes = jnp.zeros((8, 3)), _mixes([0], [1], [3], [0.5])
  with pytest.raises(ValueError, match="unknown reduction"):
    fn(x, LABELS, mixes, reduction="none")
  with pytest.raises(ValueError, match="different lengths"):
    fn(x[:5], LABELS, mixes)
  with pytest.raises(ValueError, match=r"every field of Mixes must be \[M\]"):
    fn(x, LABELS, mixes._replace(lam=jnp.zeros((2,))))
  with pytest.raises(ValueError, match="num_mixes"):
    mixup.sample_mixes(jax.random.key(0), LABELS, num_mixes=0)
