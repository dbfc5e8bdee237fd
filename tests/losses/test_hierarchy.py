"""Tests for embedlab.losses.hierarchy: hand-computed loss values, every geometry, the closure
membership search and the negative sampler (checked against Python sets on the mammal closure)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import data
from embedlab.geometry import GEOMETRIES
from embedlab.losses import hierarchy

C = 1.0
DTYPES = ["float32", "float64"]
FORMS = {"dense": {}, "csr": {"dense_max_nodes": 0}}  # build_adjacency options per form.


def _x64(dtype):
  """Context for ``dtype``: float64 arrays need x64 mode."""
  return jax.enable_x64(dtype == "float64")


def _rtol(dtype):
  return 1e-5 if dtype == "float32" else 1e-12


@functools.cache
def _mammals():
  """(closure, CSR offsets, CSR targets, {(child, ancestor)} set, max out-degree)."""
  closure = data.mammal_closure()
  offsets, targets = data.csr(closure.edges, closure.num_nodes)
  edge_set = {(int(u), int(v)) for u, v in closure.edges}
  return closure, offsets, targets, edge_set, int(np.diff(offsets).max())


@functools.cache
def _mammal_adjacency(form):
  closure, offsets, targets, _, _ = _mammals()
  return hierarchy.build_adjacency(offsets, targets, num_nodes=closure.num_nodes, **FORMS[form])


# --- nickel_kiela_loss: hand-computed values ---------------------------------------------------

# loss = d_pos + log(sum over {pos} ∪ negatives of exp(-d)).
@pytest.mark.parametrize("positive, negatives, expected", [
    # 1 + log(e^-1 + e^-2 + e^-3) = 1 + log(0.36788 + 0.13534 + 0.04979) = 1 + log(0.55301)
    (1.0, [2.0, 3.0], 0.40760596444438035),
    # All distances equal: d + log(4 e^-d) = log 4.
    (0.0, [0.0, 0.0, 0.0], 1.3862943611198906),
    # K = 1: 2 + log(e^-2 + e^-1) = log(1 + e^(2 - 1)) = softplus(1).
    (2.0, [1.0], 1.3132616875182228),
    # Far pairs: 1000 + log(3 e^-1000) = log 3. exp(-1000) underflows (a naive sum gives log 0) and
    # 1000 + (-1000 + log 3) cancels in float32 (ulp(1000) = 6e-5): exact only as log-softmax.
    (1000.0, [1000.0, 1000.0], 1.0986122886681098),
    # Negatives far away: 0.5 + log(e^-0.5 + 2 e^-60) = log(1 + 2 e^-59.5) ~ 2e-26 ~ 0.
    (0.5, [60.0, 60.0], 0.0),
])
def test_nickel_kiela_loss_hand_computed(positive, negatives, expected):
  loss = hierarchy.nickel_kiela_loss(jnp.array([positive]), jnp.array([negatives]))
  assert loss.shape == ()
  np.testing.assert_allclose(loss, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("negatives, mask, expected", [
    # Mask drops the 0.0 that would dominate: same as (1, [2, 3]) above.
    ([2.0, 0.0, 3.0], [True, False, True], 0.40760596444438035),
    # Two masked in the middle and at the end; same value again.
    ([2.0, 0.0, 3.0, -5.0], [True, False, True, False], 0.40760596444438035),
    # Every negative masked: 1 + log(e^-1) = 0.
    ([0.0, 0.0], [False, False], 0.0),
    # Mask all True: 1 + log(e^-1 + e^-2 + e^-3), unchanged.
    ([2.0, 3.0], [True, True], 0.40760596444438035),
])
def test_nickel_kiela_loss_mask_ignores_dropped(negatives, mask, expected):
  positive = jnp.array([1.0])
  masked = hierarchy.nickel_kiela_loss(positive, jnp.array([negatives]),
                                       negative_mask=jnp.array([mask]))
  kept = jnp.array([[d for d, m in zip(negatives, mask) if m]]).reshape(1, -1)
  np.testing.assert_allclose(masked, expected, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(masked, hierarchy.nickel_kiela_loss(positive, kept), rtol=1e-6,
                             atol=1e-6)


def test_nickel_kiela_loss_gradients():
  negatives = jnp.array([[2.0, 0.0, 3.0]])
  mask = jnp.array([[True, False, True]])
  grad_positive, grad_negatives = jax.grad(
      lambda p, n: hierarchy.nickel_kiela_loss(p, n, negative_mask=mask),
      argnums=(0, 1))(jnp.array([1.0]), negatives)
  # With s = e^-1 + e^-2 + e^-3 = 0.55301 (the kept terms): dL/dd_pos = 1 - e^-1 / s
  # = 1 - 0.66524 = 0.33476 > 0 (a shorter positive lowers the loss); dL/dd_k = -e^-d_k / s:
  # -e^-2 / s = -0.24473 for d = 2, and 0 for the masked 0.0.
  np.testing.assert_allclose(grad_positive, [0.3347590442251781], rtol=1e-6)
  np.testing.assert_allclose(grad_negatives, [[-0.24472847105479767, 0.0,
                                               -0.09003057317038046]], rtol=1e-6)
  assert grad_negatives[0, 1] == 0.0


# Rows (1, [2, 3]) -> 0.40760596 and (2, [1]) padded with a masked negative -> 1.31326169.
_ROWS = (jnp.array([1.0, 2.0]), jnp.array([[2.0, 3.0], [1.0, 9.0]]),
         jnp.array([[True, True], [True, False]]))


@pytest.mark.parametrize("reduction, expected", [
    ("none", [0.40760596444438035, 1.3132616875182228]),
    ("sum", 0.40760596444438035 + 1.3132616875182228),  # = 1.72086765
    ("mean", (0.40760596444438035 + 1.3132616875182228) / 2),  # = 0.86043383
])
def test_nickel_kiela_loss_reductions(reduction, expected):
  positive, negatives, mask = _ROWS
  loss = hierarchy.nickel_kiela_loss(positive, negatives, negative_mask=mask, reduction=reduction)
  assert loss.shape == np.shape(expected)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)


@pytest.mark.parametrize("positive_shape, negative_shape, mask_shape, reduction, match", [
    ((3, 1), (3, 2), None, "mean", "expected positive_dist"),  # Positive not [B].
    ((3,), (3,), None, "mean", "expected positive_dist"),  # Negatives not [B, K].
    ((3,), (3, 2, 1), None, "mean", "expected positive_dist"),
    ((3,), (4, 2), None, "mean", "batch sizes differ"),
    ((3,), (3, 2), (3, 3), "mean", "negative_mask shape"),
    ((3,), (3, 2), (3,), "mean", "negative_mask shape"),
    ((3,), (3, 2), None, "max", "unknown reduction"),
    ((3,), (3, 2), None, "MEAN", "unknown reduction"),
])
def test_nickel_kiela_loss_errors(positive_shape, negative_shape, mask_shape, reduction, match):
  mask = None if mask_shape is None else jnp.ones(mask_shape, bool)
  with pytest.raises(ValueError, match=match):
    hierarchy.nickel_kiela_loss(jnp.ones(positive_shape), jnp.ones(negative_shape),
                                negative_mask=mask, reduction=reduction)


# --- hierarchy_loss in every geometry ----------------------------------------------------------

N, DIM, B, K = 8, 3, 4, 3
PAIRS = np.array([[0, 1], [2, 3], [4, 1], [5, 6]], np.int32)
# Row 0 holds its anchor (masked: d = 0) and its positive, row 2 its anchor unmasked, row 3 a
# duplicate negative.
NEGATIVES = np.array([[0, 1, 7], [4, 5, 6], [4, 2, 3], [7, 7, 2]], np.int32)
MASK = np.array([[False, True, True], [True, True, True], [True, False, True],
                 [True, True, False]])


@jax.jit
def _proj(m, x):
  return m.proj(x, c=C)


def _table(geometry, dtype, seed=0):
  """``[N, D]`` points of ``geometry``: a numpy Gaussian (scale 0.3) put on it by ``proj``.

  (Not ``random_point``: compiling a jax.random sampler costs ~0.5 s per geometry and dtype.)
  """
  m = GEOMETRIES[geometry]
  gaussian = np.random.default_rng(seed).normal(size=(N, m.ambient_dim(DIM)))
  return _proj(m, jnp.asarray(0.3 * gaussian, dtype))


def _reference_loss(dists, mask):
  """Per-pair loss by hand from ``dists [B, 1 + K]`` (positive first), float64 sums."""
  keep = np.ones((B, 1 + K), bool) if mask is None else np.concatenate(
      [np.ones((B, 1), bool), mask], axis=1)
  # d(u, v) + log(sum_{kept} exp(-d)).
  return np.array([row[0] + math.log(sum(math.exp(-d) for d, k in zip(row, kept) if k))
                   for row, kept in zip(np.asarray(dists, np.float64).tolist(), keep)])


@jax.jit
def _loss_outputs(m, table):
  """The losses of ``PAIRS``/``NEGATIVES`` (per pair and reduced, with and without ``MASK``).

  ``dists [B, 1 + K]`` are the reference: rows gathered in numpy order (u once for v, then once
  for each negative) and one flat ``m.dist`` call, without the loss's own [B, 1] x [B, K]
  broadcast.
  """
  anchors = np.repeat(PAIRS[:, 0], 1 + K)
  others = np.concatenate([PAIRS[:, 1:], NEGATIVES], axis=1).ravel()
  dists = m.dist(table[anchors], table[others], c=C).reshape(B, 1 + K)

  def loss(**kwargs):
    return hierarchy.hierarchy_loss(table, jnp.asarray(PAIRS), jnp.asarray(NEGATIVES),
                                    manifold=m, c=C, **kwargs)

  mask = jnp.asarray(MASK)
  return {"dists": dists, "none": loss(reduction="none"),
          "masked_none": loss(negative_mask=mask, reduction="none"), "mean": loss(),
          "masked_mean": loss(negative_mask=mask),
          "masked_sum": loss(negative_mask=mask, reduction="sum")}


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_hierarchy_loss_matches_dist_by_hand(geometry, dtype):
  with _x64(dtype):
    out = jax.tree.map(np.asarray, _loss_outputs(GEOMETRIES[geometry], _table(geometry, dtype)))
  plain, masked = out["none"], out["masked_none"]
  assert plain.shape == masked.shape == (B,) and plain.dtype == jnp.dtype(dtype)
  rtol = _rtol(dtype)
  expected = _reference_loss(out["dists"], None)
  np.testing.assert_allclose(plain, expected, rtol=rtol)
  np.testing.assert_allclose(out["mean"], expected.mean(), rtol=rtol)
  expected = _reference_loss(out["dists"], MASK)
  np.testing.assert_allclose(masked, expected, rtol=rtol)
  np.testing.assert_allclose(out["masked_mean"], expected.mean(), rtol=rtol)
  np.testing.assert_allclose(out["masked_sum"], expected.sum(), rtol=rtol)
  # Masking drops positive terms from the log-sum-exp; row 1 masks nothing.
  dropped = ~MASK.all(axis=1)
  assert np.all(plain[dropped] > masked[dropped]) and plain[1] == masked[1]


# Gradients are what XLA takes longest to compile, so the three gradient tests below share one
# function (and shapes): one compilation per geometry.
@jax.jit
def _gradient_step(m, table, pairs, negatives, mask):
  """``(egrad, rgrad, table after one step -1e-2 rgrad of every row)`` of the mean loss."""
  egrad = jax.grad(lambda t: hierarchy.hierarchy_loss(t, pairs, negatives, manifold=m, c=C,
                                                      negative_mask=mask))(table)
  rgrad = m.egrad2rgrad(table, egrad, c=C)
  return egrad, rgrad, m.expmap(table, -1e-2 * rgrad, c=C)


@jax.jit
def _place_behind(m, table):
  """Row 2 moved onto the geodesic from row 1 through row 0, past row 0: ``exp_u(-log_u(v)/2)``."""
  u, v = table[0], table[1]
  return table.at[2].set(m.expmap(u, -0.5 * m.logmap(u, v, c=C), c=C))


@jax.jit
def _pull_stats(m, table, moved, rgrad):
  """For u = row 0, v = row 1: ``(d(u, v) before, d(u, v) after moving both rows, d(u, v) after
  moving v only, <-rgrad_u, log_u(v)>_u, <-rgrad_v, log_v(u)>_v)``; the last two are positive
  when each row's descent direction points at the other."""
  u, v = table[0], table[1]
  return (m.dist(u, v, c=C), m.dist(moved[0], moved[1], c=C), m.dist(u, moved[1], c=C),
          m.inner(u, -rgrad[0], m.logmap(u, v, c=C), c=C),
          m.inner(v, -rgrad[1], m.logmap(v, u, c=C), c=C))


_PULL_PAIRS = np.array([[0, 1]] * B, np.int32)  # The one pair (u, v) = (0, 1), B times.
_ALL = np.ones((B, K), bool)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_hierarchy_loss_gradient_finite(geometry):
  # NEGATIVES holds the anchor itself (d = 0, the unsafe point of arcosh/arccos: masked in row 0,
  # where a NaN would survive as 0 * NaN, and unmasked in row 2), the positive, and duplicates.
  m = GEOMETRIES[geometry]
  table = _table(geometry, "float32")
  egrad, rgrad, moved = _gradient_step(m, table, PAIRS, NEGATIVES, MASK)
  assert egrad.shape == table.shape and egrad.dtype == table.dtype
  for value in (egrad, rgrad, moved):
    assert np.all(np.isfinite(value))
  assert np.all(np.any(egrad != 0, axis=1))  # Every row is an anchor, positive or negative.


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_hierarchy_loss_gradient_pulls_pair_together(geometry):
  # Every negative is n = row 2, behind u: pushing u away from n and pulling it to v then agree,
  # so a small step of every row along -rgrad shortens d(u, v): u and v move toward each other.
  m = GEOMETRIES[geometry]
  table = _place_behind(m, _table(geometry, "float32", seed=2))
  negatives = np.full((B, K), 2, np.int32)
  _, rgrad, moved = _gradient_step(m, table, _PULL_PAIRS, negatives, _ALL)
  before, after, _, toward_v, toward_u = _pull_stats(m, table, moved, rgrad)
  assert toward_v > 0 and toward_u > 0
  assert after < before - 1e-4, (before, after)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_hierarchy_loss_gradient_pulls_ancestor_whatever_the_negatives(geometry):
  # v's row enters only d(u, v) (v is no negative), with coefficient 1 - softmax_v > 0, so moving
  # v alone along -rgrad shortens d(u, v) for any (here random) negatives.
  m = GEOMETRIES[geometry]
  table = _table(geometry, "float32", seed=3)
  negatives = np.array([[2, 3, 4], [5, 6, 7], [2, 5, 7], [3, 4, 6]], np.int32)
  _, rgrad, moved = _gradient_step(m, table, _PULL_PAIRS, negatives, _ALL)
  before, _, after_v_only, _, toward_u = _pull_stats(m, table, moved, rgrad)
  assert toward_u > 0
  assert after_v_only < before - 1e-4, (before, after_v_only)


@pytest.mark.parametrize("pairs_shape, negatives_shape, match", [
    ((4, 3), (4, 2), "pairs must be"),
    ((4,), (4, 2), "pairs must be"),
    ((4, 2), (4,), "negatives must be"),  # Would broadcast to a [4, 4] distance matrix.
    ((4, 2), (3,), "negatives must be"),
    ((4, 2), (3, 2), "negatives must be"),
])
def test_hierarchy_loss_shape_errors(pairs_shape, negatives_shape, match):
  m = GEOMETRIES["poincare"]
  table = _table("poincare", "float32")
  with pytest.raises(ValueError, match=match):
    hierarchy.hierarchy_loss(table, jnp.zeros(pairs_shape, jnp.int32),
                             jnp.zeros(negatives_shape, jnp.int32), manifold=m, c=C)


# --- adjacency_contains ------------------------------------------------------------------------

# One jitted function each for the whole file, so equal shapes compile once. (The mammal
# closure's adjacency is built eagerly, the small graphs' under jit: both ways are covered.)
_contains = jax.jit(hierarchy.adjacency_contains, static_argnames="max_degree")
_build = jax.jit(hierarchy.build_adjacency, static_argnames=("num_nodes", "dense_max_nodes"))


def _random_graph(num_nodes, num_edges, seed):
  """Random edges (duplicates kept) that never leave node 0 or the last node; CSR and edge set."""
  rng = np.random.default_rng(seed)
  sources = rng.integers(1, max(num_nodes - 1, 2), size=num_edges)
  edges = np.stack([sources, rng.integers(0, num_nodes, size=num_edges)], axis=1)
  offsets, targets = data.csr(edges, num_nodes)
  return offsets, targets, {(int(s), int(t)) for s, t in edges}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("num_nodes, num_edges, seed", [
    (1, 0, 0),  # One node, no edge.
    (5, 0, 1),  # No edge at all.
    (7, 4, 2),  # Sparse: most rows empty.
    (12, 60, 3),  # Dense-ish rows, duplicates.
])
def test_adjacency_contains_matches_set(form, num_nodes, num_edges, seed):
  offsets, targets, edge_set = _random_graph(num_nodes, num_edges, seed)
  max_degree = int(np.diff(offsets).max())
  adjacency = _build(offsets, targets, num_nodes=num_nodes, **FORMS[form])
  assert set(adjacency) == ({"dense"} if form == "dense" else {"offsets", "targets"})
  # Every (source, query) pair of the graph.
  sources, queries = np.meshgrid(np.arange(num_nodes), np.arange(num_nodes), indexing="ij")
  expected = np.array([(int(s), int(q)) in edge_set
                       for s, q in zip(sources.ravel(), queries.ravel())]).reshape(sources.shape)
  assert not expected[0].any() and not expected[-1].any()  # Rows without neighbours.
  sources, queries = jnp.asarray(sources, jnp.int32), jnp.asarray(queries, jnp.int32)
  found = _contains(adjacency, sources, queries, max_degree=max_degree)
  assert found.shape == sources.shape and found.dtype == jnp.bool_
  np.testing.assert_array_equal(found, expected)
  if form == "csr":  # A loose bound on a row's length only adds search rounds.
    np.testing.assert_array_equal(
        _contains(adjacency, sources, queries, max_degree=4 * max_degree + 3), expected)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_adjacency_contains_mammal_closure(form):
  closure, _, _, edge_set, max_degree = _mammals()
  adjacency = _mammal_adjacency(form)
  rng = np.random.default_rng(0)
  random = rng.integers(0, closure.num_nodes, size=(20_000, 2))
  # Random pairs (almost all False), every true edge, and every edge reversed (all False: a DAG).
  queries = np.concatenate([random, closure.edges, closure.edges[:, ::-1]]).astype(np.int32)
  expected = np.array([(int(s), int(q)) in edge_set for s, q in queries])
  assert expected[len(random):len(random) + closure.num_edges].all()
  assert not expected[len(random) + closure.num_edges:].any()
  assert 0 < expected[:len(random)].sum() < len(random) // 10
  found = _contains(adjacency, jnp.asarray(queries[:, 0]), jnp.asarray(queries[:, 1]),
                    max_degree=max_degree)
  np.testing.assert_array_equal(found, expected)


# --- sample_negatives --------------------------------------------------------------------------

K_SAMPLE = 32  # Negatives per anchor; every anchor of the closure at once: 37,824 draws a call.
_sample_negatives = jax.jit(hierarchy.sample_negatives, static_argnames=(
    "num_negatives", "num_nodes", "max_degree", "resample_rounds"))


def _sample(form, seed, *, resample_rounds=2, cumulative_weights=None):
  """``(anchors, negatives, mask)`` as numpy, for every node of the mammal closure as anchor."""
  closure, _, _, _, max_degree = _mammals()
  anchors = jnp.arange(closure.num_nodes, dtype=jnp.int32)
  negatives, mask = _sample_negatives(
      jax.random.key(seed), anchors, num_negatives=K_SAMPLE, num_nodes=closure.num_nodes,
      adjacency=_mammal_adjacency(form), max_degree=max_degree, resample_rounds=resample_rounds,
      cumulative_weights=cumulative_weights)
  assert negatives.shape == mask.shape == (closure.num_nodes, K_SAMPLE)
  assert negatives.dtype == jnp.int32 and mask.dtype == jnp.bool_
  return np.asarray(anchors), np.asarray(negatives), np.asarray(mask)


def _invalid(anchors, negatives):
  """Python-set truth: the candidate is the anchor or one of its ancestors."""
  _, _, _, edge_set, _ = _mammals()
  return np.array([[n == a or (a, n) in edge_set for n in row]
                   for a, row in zip(anchors.tolist(), negatives.tolist())])


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("resample_rounds", [0, 2])
def test_sample_negatives_mask_is_exactly_validity(form, resample_rounds):
  anchors, negatives, mask = _sample(form, 0, resample_rounds=resample_rounds)
  invalid = _invalid(anchors, negatives)
  np.testing.assert_array_equal(mask, ~invalid)
  if resample_rounds == 0:
    assert invalid.sum() > 50  # ~ (1 + out-degree) / N of 37,824 draws: the check bites.
  else:
    assert invalid.sum() < 10  # Redraws leave ~ ((1 + deg) / N)^3 of them.


@pytest.mark.parametrize("form", sorted(FORMS))
def test_sample_negatives_uniform_covers_nodes(form):
  # No redraws, so every draw is uniform on [0, N): all ids appear (~32 draws each), and the
  # chi-square statistic (N - 1 = 1181 degrees of freedom, std sqrt(2 * 1181) = 48.6) is within
  # 6 std of its mean.
  _, negatives, _ = _sample(form, 1, resample_rounds=0)
  n = _mammals()[0].num_nodes
  ids = negatives.ravel()
  assert ids.min() >= 0 and ids.max() < n
  counts = np.bincount(ids, minlength=n)
  assert (counts > 0).all()
  expected = ids.size / n
  chi2 = float(((counts - expected) ** 2 / expected).sum())
  assert abs(chi2 - (n - 1)) < 6 * math.sqrt(2 * (n - 1)), chi2


def _cdf(n, weights):
  """float32 CDF over ``n`` nodes with ``weights = {node: mass}``."""
  dense = np.zeros(n)
  for node, mass in weights.items():
    dense[node] = mass
  return jnp.asarray(np.cumsum(dense), jnp.float32)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_sample_negatives_follows_cumulative_weights(form):
  closure, _, _, edge_set, _ = _mammals()
  n = closure.num_nodes
  # a = 5 and b = n - 1 are leaves (ancestors of no node), so the only invalid draws are an
  # anchor drawing itself. Zero-mass nodes precede both (searchsorted must skip them) and b is the
  # last id.
  a, b = 5, n - 1
  assert not any(v in (a, b) for _, v in edge_set)
  anchors, negatives, mask = _sample(form, 2, cumulative_weights=_cdf(n, {a: 0.25, b: 0.75}))
  assert set(np.unique(negatives)) == {a, b}  # Only nodes with mass, even after redraws.
  np.testing.assert_array_equal(mask, negatives != anchors[:, None])
  others = np.delete(negatives, [a, b], axis=0)
  assert mask[np.delete(anchors, [a, b])].all()
  # Rows a and b redraw themselves twice: a keeps itself with P = 0.25^3 = 1/64 per entry, b with
  # P = 0.75^3 = 0.42 (so about 58% of row b is a).
  assert (negatives[a] == b).mean() > 0.8 and (negatives[b] == a).mean() > 0.25
  # 1,180 * 32 = 37,760 draws with P(a) = 0.25: mean 9,440, std sqrt(37760 * 0.25 * 0.75) = 84.1;
  # allow 5 std.
  assert abs((others == a).sum() - 9440) < 5 * 84.1


@pytest.mark.parametrize("form", sorted(FORMS))
def test_sample_negatives_all_mass_on_an_ancestor(form):
  closure = _mammals()[0]
  root = closure.name_to_id()["mammal.n.01"]  # An ancestor of every other node.
  assert {int(u) for u in closure.edges[closure.edges[:, 1] == root, 0]} == (
      set(range(closure.num_nodes)) - {root})
  # Every draw for every anchor is the root: invalid after all redraws, all masked out.
  _, negatives, mask = _sample(form, 3, cumulative_weights=_cdf(closure.num_nodes, {root: 1.0}))
  assert (negatives == root).all()
  assert not mask.any()


@pytest.mark.parametrize("form", sorted(FORMS))
def test_sample_negatives_deterministic_for_a_key(form):
  first = _sample(form, 7)
  again = _sample(form, 7)
  other = _sample(form, 8)
  for x, y in zip(first, again):
    np.testing.assert_array_equal(x, y)
  assert (first[1] != other[1]).mean() > 0.9
  # Both adjacency forms implement one relation: same key, same draws and mask.
  for x, y in zip(first, _sample("csr" if form == "dense" else "dense", 7)):
    np.testing.assert_array_equal(x, y)
