"""sample_negatives' pooled redraws against the full-size redraw rounds and the exact law.

A toy relation makes invalid draws common enough to count: N = 200 nodes, anchor 0 has the
ancestors 1..19, so a uniform candidate is invalid with probability p = 20 / N = 0.1. With two
redraw rounds each slot is independently: a given valid node w with probability
(1 + p + p^2) / N (valid on the first, second or third draw), and masked (still invalid after
the third) with probability p^3.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import data
from embedlab.losses import hierarchy

N, ANCESTORS = 200, tuple(range(1, 20))
B, K = 2000, 50  # 100,000 draws per law check, in one call (so lax.cond really branches).
FORMS = {"dense": {}, "csr": {"dense_max_nodes": 0}}


@functools.cache
def _adjacency(form):
  edges = np.array([(0, a) for a in ANCESTORS], np.int32)
  offsets, targets = data.csr(edges, N)
  return hierarchy.build_adjacency(offsets, targets, num_nodes=N, **FORMS[form])


@functools.partial(jax.jit, static_argnames="redraw")
def _jitted_sample(key, adjacency, cumulative_weights, *, redraw):
  return hierarchy.sample_negatives(
      key, jnp.zeros((B,), jnp.int32), num_negatives=K, num_nodes=N, adjacency=adjacency,
      max_degree=len(ANCESTORS), cumulative_weights=cumulative_weights, redraw=redraw)


def _sample(seed, cumulative_weights=None, *, form, redraw):
  """``[B, K]`` negatives and mask, every anchor node 0."""
  return _jitted_sample(jax.random.key(seed), _adjacency(form), cumulative_weights,
                        redraw=redraw)


def _invalid(negatives):
  return (negatives == 0) | np.isin(negatives, ANCESTORS)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("redraw", ["pooled", "full"])
def test_redraws_follow_the_exact_law(form, redraw):
  negatives, mask = (np.asarray(a) for a in _sample(0, form=form, redraw=redraw))
  np.testing.assert_array_equal(mask, ~_invalid(negatives))
  p = (1 + len(ANCESTORS)) / N
  valid_nodes = np.setdiff1d(np.arange(N), (0,) + ANCESTORS)
  counts = np.append(np.bincount(negatives[mask], minlength=N)[valid_nodes], (~mask).sum())
  probs = np.append(np.full(valid_nodes.size, (1 + p + p**2) / N), p**3)
  assert math.isclose(probs.sum(), 1.0)
  expected = negatives.size * probs
  # Chi-square with 180 degrees of freedom (std sqrt(360) = 19): within 6 std of its mean.
  chi2 = float(((counts - expected) ** 2 / expected).sum())
  dof = counts.size - 1
  assert abs(chi2 - dof) < 6 * math.sqrt(2 * dof), chi2


@pytest.mark.parametrize("form", sorted(FORMS))
def test_pool_overflow_falls_back_to_full_rounds(form):
  """Mass piled on the excluded nodes overflows the pool: the full rounds run, bit for bit."""
  weights = np.full(N, 0.05 / (N - 20))
  weights[:20] = 0.95 / 20
  cdf = jnp.asarray(np.cumsum(weights), jnp.float32)
  pooled = _sample(1, cdf, form=form, redraw="pooled")
  full = _sample(1, cdf, form=form, redraw="full")
  negatives, mask = (np.asarray(a) for a in pooled)
  assert (~mask).mean() > 0.5  # 0.95^3 of the slots stay invalid: the check bites.
  np.testing.assert_array_equal(mask, ~_invalid(negatives))
  np.testing.assert_array_equal(negatives, np.asarray(full[0]))
  np.testing.assert_array_equal(mask, np.asarray(full[1]))


def test_unknown_redraw_raises():
  with pytest.raises(ValueError, match="redraw"):
    hierarchy.sample_negatives(jax.random.key(0), jnp.zeros((2,), jnp.int32), num_negatives=3,
                               num_nodes=N, adjacency=_adjacency("csr"),
                               max_degree=len(ANCESTORS), redraw="lazy")
