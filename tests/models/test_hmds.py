"""Tests for embedlab.models.hmds: exact recovery of hyperbolic point sets, graphs, errors."""

import numpy as np
import pytest

from embedlab.evals import distortion
from embedlab.models import hmds


def _hyperboloid_points(seed, n, dim, spread):
  """``n`` points of H^dim (hyperboloid model), at distances up to ~``spread`` from a random
  centre that is *not* the origin (so the centring step has work to do)."""
  rng = np.random.default_rng(seed)
  spatial = rng.normal(size=(n, dim)) * spread / np.sqrt(dim)
  points = np.concatenate([np.sqrt(1 + np.sum(spatial ** 2, axis=1, keepdims=True)), spatial],
                          axis=1)
  # A Lorentz boost along the first spatial axis moves the whole cloud off-centre.
  b = 1.5
  boost = np.eye(dim + 1)
  boost[:2, :2] = [[np.cosh(b), np.sinh(b)], [np.sinh(b), np.cosh(b)]]
  return points @ boost.T


def _hyperboloid_distances(x):
  minkowski = x[:, :1] @ x[:, :1].T - x[:, 1:] @ x[:, 1:].T
  d = np.arccosh(np.maximum(minkowski, 1.0))
  np.fill_diagonal(d, 0.0)  # rounding leaves ~1e-7 there (arccosh is steep at 1)
  return d


def _ball_distances(points):
  return distortion.poincare_distance_rows(points)(np.arange(points.shape[0]))


@pytest.mark.parametrize("seed, n, dim, spread, rank", [
    (0, 10, 2, 1.0, 2),
    (1, 30, 2, 3.0, 2),
    (2, 30, 3, 2.0, 3),
    (3, 40, 5, 1.5, 5),
    (4, 25, 2, 2.0, 4),   # more room than the points need: the extra axes stay empty
])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_exact_recovery_of_hyperbolic_points(seed, n, dim, spread, rank, scale):
  true = _hyperboloid_distances(_hyperboloid_points(seed, n, dim, spread))
  points = hmds(true / scale, dim=rank, scale=scale)
  assert points.shape == (n, rank) and np.all(np.linalg.norm(points, axis=1) < 1)
  np.testing.assert_allclose(_ball_distances(points), true, rtol=1e-7, atol=1e-7)


def test_lower_rank_keeps_the_largest_axes():
  # Points spread along one geodesic (a line) plus a tiny wobble: rank 1 keeps the line.
  t = np.linspace(-2, 2, 15)
  x = np.stack([np.cosh(t), np.sinh(t), 1e-4 * np.sin(7 * t)], axis=1)
  x[:, 0] = np.sqrt(1 + x[:, 1] ** 2 + x[:, 2] ** 2)
  true = _hyperboloid_distances(x)
  recovered = _ball_distances(hmds(true, dim=1))
  np.testing.assert_allclose(recovered, true, atol=1e-3)


def test_graph_distances_of_a_tree():
  # A path: distances are exactly those of points on a geodesic, so h-MDS is exact in 1-D.
  n = 9
  path = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :]).astype(float)
  points = hmds(path, dim=1, scale=0.5)
  np.testing.assert_allclose(_ball_distances(points) / 0.5, path, atol=1e-8)


@pytest.mark.parametrize("distances, kwargs, message", [
    (np.zeros((2, 3)), {"dim": 1}, "square"),
    (np.array([[0, 1], [2, 0]]), {"dim": 1}, "symmetric"),
    (np.array([[0, -1], [-1, 0]]), {"dim": 1}, "non-negative"),
    (np.array([[0, np.inf], [np.inf, 0]]), {"dim": 1}, "finite"),
    (np.array([[0, 1], [1, 0]]), {"dim": 3}, "dim"),
    (np.array([[0, 1], [1, 0]]), {"dim": 1, "scale": 0.0}, "scale"),
    (np.array([[0, 1000], [1000, 0]]), {"dim": 1}, "overflow"),
])
def test_errors(distances, kwargs, message):
  with pytest.raises(ValueError, match=message):
    hmds(distances, **kwargs)
