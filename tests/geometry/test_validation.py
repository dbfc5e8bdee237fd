"""The registry, the membership checks (eager and checkify) and the Manifold record under jit."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from embedlab import geometry
from embedlab.geometry import GEOMETRIES, check_on_manifold, checkify_on_manifold

N = 7
BAD_ROWS = (2, 5)


def test_get_returns_the_registered_record():
  for name, manifold in GEOMETRIES.items():
    assert geometry.get(name) is manifold
    assert manifold.name == name


def test_get_unknown_name_lists_the_valid_ones():
  with pytest.raises(ValueError, match="'hyperbolic'") as info:
    geometry.get("hyperbolic")
  for name in GEOMETRIES:
    assert repr(name) in str(info.value)


def _points(name, c, dtype=jnp.float32):
  m = GEOMETRIES[name]
  return m.random_point(jax.random.key(0), (N, m.ambient_dim(5)), c=c, dtype=dtype)


# How to push one point off each manifold (the string names the case in test ids).
def _outside_ball(x, c):
  return 1.5 * x / (np.sqrt(c) * np.linalg.norm(x))


def _scaled(x, c):
  return 1.5 * x


def _lower_sheet(x, c):
  return -x


def _nan(x, c):
  return np.full_like(x, np.nan)


def _inf(x, c):
  return np.full_like(x, np.inf)


BREAKS = [
    ("poincare", "outside the ball", _outside_ball),
    ("poincare", "NaN", _nan),
    ("lorentz", "off the hyperboloid", _scaled),
    ("lorentz", "on the lower sheet", _lower_sheet),
    ("lorentz", "NaN", _nan),
    ("sphere", "off the sphere", _scaled),
    ("sphere", "NaN", _nan),
    ("euclidean", "NaN", _nan),
    ("euclidean", "inf", _inf),
]


def _with_bad_rows(name, c, brk):
  x = np.array(_points(name, c))
  for row in BAD_ROWS:
    x[row] = brk(x[row], c)
  return jnp.asarray(x)


@pytest.mark.parametrize("c", [1.0, 0.7])
@pytest.mark.parametrize("name, what, brk", BREAKS, ids=[f"{n}-{w}" for n, w, _ in BREAKS])
def test_check_on_manifold_names_the_bad_rows(name, what, brk, c):
  x = _with_bad_rows(name, c, brk)
  with pytest.raises(ValueError) as info:
    check_on_manifold(GEOMETRIES[name], x, c=c, name="params['emb']")
  message = str(info.value)
  assert "params['emb']" in message and name in message
  assert f"{len(BAD_ROWS)} of {N} points" in message
  assert re.search(r"rows? \[2, 5\]", message), message


def test_check_on_manifold_names_index_tuples_for_stacked_tables():
  x = np.array(_points("sphere", 1.0)).reshape(1, N, -1).repeat(2, axis=0)
  x[1, 4] *= 3.0
  with pytest.raises(ValueError, match=r"\[\(1, 4\)\]"):
    check_on_manifold(GEOMETRIES["sphere"], x)


def test_check_on_manifold_rejects_a_scalar():
  with pytest.raises(ValueError, match="scalar"):
    check_on_manifold(GEOMETRIES["euclidean"], jnp.float32(1.0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("c", [1.0, 0.7])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_check_on_manifold_accepts_random_points(name, c, dtype):
  m = GEOMETRIES[name]
  with jax.enable_x64(dtype == "float64"):
    x = _points(name, c, jnp.dtype(dtype))
    check_on_manifold(m, x, c=c)
    check_on_manifold(m, x[0], c=c)  # A single point [D].
    check_on_manifold(m, m.proj(2.0 * x, c=c), c=c)  # proj puts points back.


@pytest.mark.parametrize("name, what, brk", BREAKS, ids=[f"{n}-{w}" for n, w, _ in BREAKS])
def test_checkify_on_manifold_under_jit(name, what, brk):
  m = GEOMETRIES[name]
  traces = []

  def norms(x, c):
    traces.append(None)
    checkify_on_manifold(m, x, c=c, name="emb")
    return jnp.linalg.norm(x, axis=-1)

  checked = jax.jit(checkify.checkify(norms))
  err, out = checked(_points(name, 0.7), 0.7)
  assert err.get() is None
  assert out.shape == (N,)
  err, _ = checked(_with_bad_rows(name, 0.7, brk), 0.7)
  assert err.get() is not None
  assert "emb" in err.get() and f"{len(BAD_ROWS)} points" in err.get()
  with pytest.raises(checkify.JaxRuntimeError):
    err.throw()
  assert len(traces) == 1  # Same shapes: the check costs no retrace.


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_manifold_record_crosses_jit_without_retracing(name):
  m = GEOMETRIES[name]
  traces = []

  @jax.jit
  def mean_dist(manifold, x, y, c):
    traces.append(manifold.name)
    return jnp.mean(manifold.dist(x, y, c=c))

  x = _points(name, 1.0)
  for c in [1.0, 0.7, 0.5]:  # Curvature is data: new values do not retrace either.
    mean_dist(m, x, x[::-1], jnp.float32(c))
  mean_dist(dataclasses.replace(m), x, x[::-1], jnp.float32(1.0))  # An equal copy.
  assert traces == [name]
  assert jax.tree_util.tree_leaves(m) == []  # A static pytree: no array leaves.


def test_different_records_trace_separately():
  traces = []

  @jax.jit
  def dist(manifold, x, y):
    traces.append(manifold.name)
    return manifold.dist(x, y, c=1.0)

  x = jnp.zeros((N, 3)).at[:, 0].set(1.0)  # Valid points of both geometries.
  for _ in range(2):
    for name in ["euclidean", "sphere"]:
      dist(GEOMETRIES[name], x, x)
  assert traces == ["euclidean", "sphere"]
