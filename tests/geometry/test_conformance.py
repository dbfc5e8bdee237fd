"""The conformance table of DESIGN.md §4, and proof that the suite catches broken geometries.

Every registered geometry x dtype x dim (``check_all``'s ``dim``; the ambient size ``D`` is
``manifold.ambient_dim(dim)``) x leaf shape x curvature must pass every property of
``conformance.check_all``. The leaf shapes are a single point ``[D]``, a table ``[N, D]`` and a
square table with ``N == D`` (where a reduction over the wrong axis keeps the right shape).
Curvatures cost almost nothing: each computation compiles once per geometry, dtype and shape.
The same geometries stripped of their optional operations (``tests/geometry/bare.py``: what a
notebook geometry gets, the generic defaults) must pass too, on a smaller table.
"""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from embedlab.geometry import GEOMETRIES, conformance, euclidean, poincare
from tests.geometry.bare import BARE

PROPERTIES = ["on_manifold", "tangent", "distance_axioms", "pairwise", "exp_log", "transport",
              "egrad2rgrad", "broadcast", "jit", "edge_gradients", "far_points", "midpoint",
              "origin_maps", "similarity", "radial", "vector_space"]
N = 7
LEAVES = {
    "[D]": lambda ambient: (),
    "[N,D]": lambda ambient: (N,),
    "[N=D,D]": lambda ambient: (ambient,),
}


def _check_all(manifold, *, dtype, **kwargs):
  with jax.enable_x64(dtype == "float64"):
    return conformance.check_all(manifold, dtype=jnp.dtype(dtype), **kwargs)


def _failures(results):
  return {r.name: r.detail for r in results if not r.ok}


@pytest.mark.parametrize("c", [1.0, 0.7])
@pytest.mark.parametrize("leaf", list(LEAVES))
@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_geometry_conforms(name, dtype, dim, leaf, c):
  manifold = GEOMETRIES[name]
  batch_shape = LEAVES[leaf](manifold.ambient_dim(dim))
  results = _check_all(manifold, dtype=dtype, dim=dim, batch_shape=batch_shape, c=c)
  assert [r.name for r in results] == PROPERTIES
  failed = _failures(results)
  assert not failed, (f"{name} ({dtype}, dim={dim}, leaves {leaf}, c={c}) fails "
                      + "; ".join(f"{k}: {v}" for k, v in failed.items()))


# Broken variants of the Poincaré ball, each with the properties that must catch it.
def _identity_rgrad(x, g, *, c=1.0):
  del x, c
  return g


def _identity_transp(x, y, v, *, c=1.0):
  del x, y, c
  return v


def _stretched_dist(x, y, *, c=1.0):
  return 1.05 * poincare.dist(x, y, c=c)


def _negated_logmap(x, y, *, c=1.0):
  return -poincare.logmap(x, y, c=c)


def _crashing_transp(x, y, v, *, c=1.0):
  raise RuntimeError("transp is not implemented")


def _long_logmap0(x, *, c=1.0):
  return 2.0 * poincare.logmap0(x, c=c)


def _chordal_midpoint(points, weights, *, c=1.0):  # The Euclidean mean, clipped into the ball.
  return poincare.proj(euclidean.weighted_midpoint(points, weights), c=c)


def _distance_as_similarity(x, y, *, c=1.0):
  return poincare.pairwise_dist(x, y, c=c)


BROKEN = {
    "egrad2rgrad returns g": (dict(egrad2rgrad=_identity_rgrad), {"egrad2rgrad"}),
    "identity transp": (dict(transp=_identity_transp), {"transport"}),
    "dist 5% too long": (dict(dist=_stretched_dist), {"exp_log", "pairwise"}),
    "logmap sign error": (dict(logmap=_negated_logmap), {"exp_log"}),
    # A crash fails the properties that use the function; the suite still reports them all.
    "transp raises": (dict(transp=_crashing_transp), {"transport", "broadcast", "jit"}),
    "logmap0 twice too long": (dict(logmap0=_long_logmap0), {"origin_maps"}),
    "Euclidean mean as midpoint": (dict(weighted_midpoint=_chordal_midpoint), {"midpoint"}),
    "similarity grows with distance": (dict(pairwise_similarity=_distance_as_similarity),
                                       {"similarity"}),
    "the ball claims to be radial": (dict(radial=True), {"radial"}),
    "the ball claims to be a vector space": (dict(vector_space=True), {"vector_space"}),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(BARE))
def test_generic_defaults_conform(name, dtype):
  manifold = BARE[name]
  assert set(manifold.generic_operations()) == {
      "weighted_midpoint", "expmap0", "logmap0", "direction0", "pairwise_similarity"}
  failed = _failures(_check_all(manifold, dtype=dtype, dim=5, batch_shape=(N,), c=0.7))
  assert not failed, f"{name} ({dtype}) fails " + "; ".join(f"{k}: {v}" for k, v in failed.items())


@pytest.mark.parametrize("variant", list(BROKEN))
def test_broken_geometry_fails(variant):
  # float32: its looser tolerances are the harder case for catching a bug.
  fields, must_fail = BROKEN[variant]
  broken = dataclasses.replace(poincare.MANIFOLD, **fields)
  results = _check_all(broken, dtype="float32", dim=5, batch_shape=(N,), c=0.7)
  assert [r.name for r in results] == PROPERTIES
  failed = _failures(results)
  assert must_fail <= set(failed), f"{variant}: expected {must_fail} to fail, got {failed}"
  assert all(failed[name] for name in must_fail), "failures must say why"


def test_assert_conforms_lists_every_failure():
  conformance.assert_conforms(poincare.MANIFOLD, dim=5, batch_shape=(N,), c=0.7)
  broken = dataclasses.replace(poincare.MANIFOLD, transp=_identity_transp,
                               egrad2rgrad=_identity_rgrad)
  with pytest.raises(AssertionError, match=r"(?s)poincare fails.*transport.*egrad2rgrad"):
    conformance.assert_conforms(broken, dim=5, batch_shape=(N,), c=0.7)
