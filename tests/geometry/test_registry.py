"""The geometry registry (register / unregister / registered) and the Manifold record's optional
fields: generic defaults filled in, equality, ``dataclasses.replace``."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embedlab import geometry
from embedlab.geometry import GEOMETRIES, Manifold, poincare
from tests.geometry.bare import bare


def _ball(name):
  return dataclasses.replace(bare(poincare.MANIFOLD), name=name)


def test_register_makes_get_find_it_and_unregister_removes_it():
  ball = _ball("test_ball")
  assert geometry.register(ball) is ball
  try:
    assert geometry.get("test_ball") is ball
    geometry.register(_ball("test_ball"))  # An equal record: nothing to do.
    assert geometry.get("test_ball") is ball
  finally:
    assert geometry.unregister("test_ball") is ball
  with pytest.raises(ValueError, match="unknown geometry 'test_ball'"):
    geometry.get("test_ball")


@pytest.mark.parametrize("bad, error, match", [
    ("poincare", TypeError, "expects a Manifold record; got str"),
    (poincare.MANIFOLD.__dict__, TypeError, "expects a Manifold record; got dict"),
    (dataclasses.replace(poincare.MANIFOLD, name=""), ValueError, "non-empty name"),
    # A different geometry under a built-in name.
    (dataclasses.replace(poincare.MANIFOLD, curvature_sign=1), ValueError,
     "'poincare' is already registered"),
])
def test_register_errors(bad, error, match):
  before = dict(GEOMETRIES)
  with pytest.raises(error, match=match):
    geometry.register(bad)
  assert GEOMETRIES == before


def test_replace_and_unregister_a_built_in():
  variant = dataclasses.replace(poincare.MANIFOLD, curvature_sign=1)
  geometry.register(variant, replace=True)
  try:
    assert geometry.get("poincare") is variant
  finally:
    assert geometry.unregister("poincare") is variant
  assert geometry.get("poincare") is poincare.MANIFOLD
  with pytest.raises(ValueError, match="'poincare' is built in"):
    geometry.unregister("poincare")
  with pytest.raises(ValueError, match="unknown geometry 'nowhere'"):
    geometry.unregister("nowhere")


def test_registered_context_restores_the_registry():
  before = dict(GEOMETRIES)
  with geometry.registered(_ball("test_ctx")) as ball:
    assert geometry.get("test_ctx") is ball
  assert GEOMETRIES == before
  variant = dataclasses.replace(poincare.MANIFOLD, curvature_sign=1)
  with pytest.raises(RuntimeError, match="inside"):
    with geometry.registered(variant, replace=True):
      assert geometry.get("poincare") is variant
      raise RuntimeError("inside")
  assert GEOMETRIES == before


def test_a_record_without_the_optional_fields_gets_the_generic_defaults():
  required = {f.name: getattr(poincare.MANIFOLD, f.name) for f in dataclasses.fields(Manifold)
              if f.default is dataclasses.MISSING}
  record = Manifold(**{**required, "name": "minimal"})  # A pre-existing notebook's call.
  assert record.generic_operations() == ("weighted_midpoint", "expmap0", "logmap0",
                                         "direction0", "pairwise_similarity")
  assert not record.radial and not record.vector_space
  assert record == Manifold(**{**required, "name": "minimal"})  # One jit cache entry.
  assert hash(record) == hash(Manifold(**{**required, "name": "minimal"}))
  assert poincare.MANIFOLD.generic_operations() == ("pairwise_similarity",)


def test_replace_rebinds_the_generic_defaults():
  record = bare(poincare.MANIFOLD)
  flipped = dataclasses.replace(record, logmap=lambda x, y, *, c=1.0: -poincare.logmap(x, y, c=c))
  y = poincare.MANIFOLD.random_point(jax.random.key(0), (3, 2))
  # The copy's generic logmap0 uses the copy's logmap.
  np.testing.assert_allclose(flipped.logmap0(y, c=1.0), -record.logmap0(y, c=1.0), rtol=1e-6)
  assert flipped.logmap0.manifold is flipped


def test_a_registered_record_crosses_jit_as_static():
  traces = []

  @jax.jit
  def dist(manifold, x):
    traces.append(manifold.name)
    return manifold.weighted_midpoint(x, jnp.ones((1, x.shape[0])), c=1.0)

  x = poincare.MANIFOLD.random_point(jax.random.key(1), (3, 2))
  with geometry.registered(_ball("test_jit")) as ball:
    dist(ball, x)
    dist(_ball("test_jit"), x)  # Equal record: no retrace.
  assert traces == ["test_jit"]
