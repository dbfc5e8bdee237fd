"""The property suite every geometry must pass (DESIGN.md §4), usable from tests and notebooks.

>>> from embedlab.geometry import conformance, poincare
>>> results = conformance.check_all(poincare.MANIFOLD, dim=5)
>>> conformance.assert_conforms(poincare.MANIFOLD, dim=5)   # raises listing the failures

The suite feeds each geometry its *own* ``random_point``/``random_tangent`` (no per-geometry
branches), so a new geometry is checked by the same code as the built-in ones. Run it in float64
(``with jax.enable_x64(True): ...``) for tight tolerances; float32 uses looser ones.

Properties checked (names as reported):

* ``on_manifold``: random points, ``expmap`` results and ``proj`` outputs satisfy
  ``is_on_manifold``; ``proj`` is idempotent and fixes points already on the manifold.
* ``tangent``: ``random_tangent`` lies in ``T_x`` (``proj_tangent`` fixes it).
* ``distance_axioms``: ``d(x, x) = 0``, symmetry, positivity, triangle inequality.
* ``pairwise``: ``pairwise_dist`` equals ``dist`` on all pairs.
* ``exp_log``: ``exp_x(log_x y) = y``, ``log_x(exp_x v) = v`` and ``|log_x y|_x = d(x, y)``.
* ``transport``: parallel transport is an isometry, lands in ``T_y`` and maps ``log_x y`` to
  ``-log_y x``.
* ``egrad2rgrad``: ``<rgrad f(x), v>_x == d/dt f(exp_x(t v))|_{t=0}`` for a smooth ``f``
  (the definition of the Riemannian gradient, checked against autodiff) and rgrad in ``T_x``.
* ``broadcast``: ``[..., D]`` leaves give the same results as ``vmap`` over single points.
* ``jit``: jitted functions (the optional operations included) agree with eager ones.
* ``edge_gradients``: finite values and gradients of ``dist`` at ``x == y``, at the origin, and
  of ``expmap`` at ``v == 0``, ``logmap`` at ``x == y``.
* ``far_points``: points pushed far from the origin (to the ball's margin, far up the
  hyperboloid) stay on the manifold with finite distances and gradients (and ``logmap0``).
* ``midpoint``: ``weighted_midpoint`` lies on the manifold, does not depend on the order of the
  points or the scale of a row's weights, gives the origin for zero weights and ``x`` for
  copies of ``x``; a geometry's own midpoint (not the generic default) of two points with equal
  weights is their geodesic midpoint (at ``d(x, y) / 2`` from both).
* ``origin_maps``: ``expmap0`` / ``logmap0`` are inverse to each other, agree with ``expmap`` /
  ``logmap`` at the origin in tangent coordinates (the last ``tangent_dim(D)`` ambient ones;
  the leading ones are 0), ``|logmap0 y|`` (the metric at the origin) is ``d(origin, y)``, and
  ``direction0`` is ``logmap0 / |logmap0|``.
* ``similarity``: ``pairwise_similarity`` has ``pairwise_dist``'s shape and orders pairs as
  ``-pairwise_dist`` does.
* ``radial`` / ``vector_space``: what the flags claim (checked only when claimed): ``proj`` is
  scale-invariant and puts any vector on the manifold and the similarity is
  ``cos(sqrt(c) d)``; ``dist``, ``expmap``, ``logmap``, ``inner`` and ``origin`` are those of
  ``R^D``.

Implementation: the random inputs are drawn once per call; each property is then a jitted
*compute* function (module level, so its compilation is cached per geometry, shape and dtype and
reused across curvatures and calls) that returns arrays, and a host-side check of them. The
computations are traced on the calling thread and compiled on worker threads, with XLA:CPU's
fast-compile settings (compilation, not arithmetic, is what this suite spends its time on).
Only ``jit`` runs the geometry eagerly: eager results are what it compares against.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from embedlab.geometry.base import Manifold


@dataclasses.dataclass(frozen=True)
class CheckResult:
  name: str
  ok: bool
  detail: str = ""


def _tolerances(dtype) -> tuple[float, float]:
  """(rtol, atol) for comparisons in ``dtype``."""
  return (1e-7, 1e-8) if jnp.dtype(dtype) == jnp.float64 else (2e-3, 2e-3)


def _close(a, b, dtype, scale: float = 1.0) -> tuple[bool, str]:
  rtol, atol = _tolerances(dtype)
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    return False, f"shape {a.shape} != {b.shape}"
  if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
    return False, "non-finite values"
  err = np.abs(a - b) - (atol * scale + rtol * np.abs(b))
  if np.all(err <= 0):
    return True, ""
  worst = int(np.argmax(err))
  return False, f"max violation {float(err.flat[worst]):.3g} ({a.flat[worst]!r} vs {b.flat[worst]!r})"


def _finite(*arrays) -> bool:
  return all(bool(np.all(np.isfinite(np.asarray(a)))) for a in jax.tree_util.tree_leaves(arrays))


def _unit(m: Manifold, x, v, c):
  return v / m.norm(x, v, c=c)[..., None]


def _samples(m: Manifold, key, shape: tuple[int, ...], dtype, c) -> dict:
  """Every random input of the suite, drawn (eagerly) from the geometry's own samplers.

  Points ``x, y, z``; tangents ``u, v`` at ``x``; ``noise`` (a Euclidean perturbation);
  ``w`` a tangent at ``x`` and ``w0`` one at the origin; positive midpoint ``weights [3, 3n]``
  (``n`` points per leaf array) and a permutation ``perm`` of the ``3n`` points. Drawing them all
  here keeps the property computations free of random number generation.
  """
  keys = jax.random.split(key, 8)
  x = m.random_point(keys[0], shape, c=c, dtype=dtype)
  count = 3 * int(np.prod(shape[:-1], dtype=int))
  midpoint_keys = jax.random.split(jax.random.fold_in(key, 8), 2)
  return dict(
      weights=jax.random.uniform(midpoint_keys[0], (3, count), dtype, 0.1, 1.0),
      perm=jax.random.permutation(midpoint_keys[1], count),
      x=x, y=m.random_point(keys[1], shape, c=c, dtype=dtype),
      z=m.random_point(keys[2], shape, c=c, dtype=dtype),
      u=m.random_tangent(keys[3], x, c=c), v=m.random_tangent(keys[4], x, c=c),
      noise=jax.random.normal(keys[5], shape, dtype), w=m.random_tangent(keys[6], x, c=c),
      w0=m.random_tangent(keys[7], m.origin(shape, c=c, dtype=dtype), c=c), c=c)


# XLA:CPU spends most of this suite's time compiling (the computations themselves take
# milliseconds). These settings only change LLVM code generation (no fast-math: the same HLO,
# the same IEEE arithmetic) and cut compile time about 5x. The ``jit`` property, which stands
# for user code, still compiles with the defaults.
_FAST_CPU_COMPILE = {"xla_backend_optimization_level": 0,
                     "xla_llvm_disable_expensive_passes": True,
                     "xla_cpu_use_fusion_emitters": False,
                     "xla_cpu_parallel_codegen_split_count": 1}


@functools.cache
def _compiler_options(platform: str) -> dict | None:
  if platform != "cpu":
    return None
  try:  # Option names are XLA-version specific: fall back to the defaults if one is unknown.
    jax.jit(lambda t: t + 1, compiler_options=_FAST_CPU_COMPILE).lower(1.0).compile()
  except Exception:  # pylint: disable=broad-except
    return None
  return _FAST_CPU_COMPILE


@functools.cache
def _jitted(compute: Callable, platform: str) -> Callable:
  return jax.jit(compute, compiler_options=_compiler_options(platform))


def _compile_ahead(pool, jobs: dict) -> dict:
  """Traces each ``{key: (jitted, args)}`` job here and compiles it on ``pool``'s threads.

  XLA releases the GIL while compiling, so on a multi-core host the compilations overlap each
  other and the eager work of the ``jit`` property; a later ``jitted(*args)`` finds the result
  in jit's cache. Tracing stays on the calling thread, under its (thread-local) config such as
  ``jax.enable_x64``. Best effort: a failure is left for the property's own call to raise.
  Returns ``{key: future}``.
  """
  futures = {}
  for key, (jitted, args) in jobs.items():
    try:
      lowered = jitted.lower(*args)
    except Exception:  # pylint: disable=broad-except
      continue
    futures[key] = pool.submit(lowered.compile)
  return futures


def _wait(ahead: dict, key) -> None:
  if key in ahead:
    concurrent.futures.wait([ahead[key]])


def _evaluate(compute: Callable, m: Manifold, s: dict, ahead: dict | None = None):
  """``compute(m, s)`` under ``jit``; the Manifold record is a static pytree, so each geometry
  compiles once per shape and dtype, and every curvature reuses that compilation."""
  _wait(ahead or {}, compute)
  return _jitted(compute, jax.default_backend())(m, s)


# Compute functions: (manifold, samples) -> arrays, run under ``jit`` by ``_evaluate``.


def _on_manifold_values(m: Manifold, s: dict) -> dict:
  x, u, c = s["x"], s["u"], s["c"]
  atol = _tolerances(x.dtype)[1] * 10
  members = {what: jnp.all(m.is_on_manifold(pts, c=c, atol=atol))
             for what, pts in [("random_point", x), ("expmap", m.expmap(x, u, c=c)),
                               ("proj(random_point)", m.proj(x, c=c))]}
  perturbed = x + 0.01 * s["noise"]
  once = m.proj(perturbed, c=c)
  return dict(members=members, proj_x=m.proj(x, c=c), once=once, twice=m.proj(once, c=c))


def _tangent_values(m: Manifold, s: dict) -> dict:
  return dict(projected=m.proj_tangent(s["x"], s["u"], c=s["c"]))


def _distance_values(m: Manifold, s: dict) -> dict:
  x, y, z, c = s["x"], s["y"], s["z"], s["c"]
  rtol, atol = _tolerances(x.dtype)
  dxy, dxz = m.dist(x, y, c=c), m.dist(x, z, c=c)
  slack = dxy + m.dist(y, z, c=c) - dxz
  return dict(dxx=m.dist(x, x, c=c), dxy=dxy, dyx=m.dist(y, x, c=c),
              triangle=jnp.all(slack >= -atol - rtol * dxz))


def _pairwise_values(m: Manifold, s: dict) -> dict:
  x, y, c = s["x"], s["y"], s["c"]
  a = x.reshape(-1, x.shape[-1])
  b = y.reshape(-1, y.shape[-1])
  return dict(matmul=m.pairwise_dist(a, b, c=c), brute=m.dist(a[:, None, :], b[None, :, :], c=c))


def _exp_log_values(m: Manifold, s: dict) -> dict:
  x, y, c = s["x"], s["y"], s["c"]
  w = m.logmap(x, y, c=c)
  small = 0.5 * _unit(m, x, s["w"], c)
  return dict(exp_log=m.expmap(x, w, c=c), norm=m.norm(x, w, c=c), dxy=m.dist(x, y, c=c),
              small=small, log_exp=m.logmap(x, m.expmap(x, small, c=c), c=c))


def _transport_values(m: Manifold, s: dict) -> dict:
  x, y, u, v, c = s["x"], s["y"], s["u"], s["v"], s["c"]
  pu, pv = m.transp(x, y, u, c=c), m.transp(x, y, v, c=c)
  return dict(inner_y=m.inner(y, pu, pv, c=c), inner_x=m.inner(x, u, v, c=c), pu=pu,
              pu_projected=m.proj_tangent(y, pu, c=c),
              transported_log=m.transp(x, y, m.logmap(x, y, c=c), c=c),
              minus_log=-m.logmap(y, x, c=c))


def _egrad2rgrad_values(m: Manifold, s: dict) -> dict:
  x, z, v, c = s["x"], s["z"], s["v"], s["c"]

  def f(p):  # Smooth, non-symmetric test function: a squared distance plus a linear term.
    return jnp.sum(m.dist(p, z, c=c) ** 2 + 0.3 * p[..., -1] * jnp.cos(p[..., 0]))

  rgrad = m.egrad2rgrad(x, jax.grad(f)(x), c=c)
  # Per-point directional derivatives: one point moves at a time via a per-row t.
  t0 = jnp.zeros(x.shape[:-1], x.dtype)
  directional = jax.jvp(
      lambda t: jax.grad(lambda r: f(m.expmap(x, r[..., None] * v, c=c)))(t),
      (t0,), (t0,))[0]
  return dict(rgrad=rgrad, rgrad_projected=m.proj_tangent(x, rgrad, c=c),
              inner=m.inner(x, rgrad, v, c=c), directional=directional)


def _broadcast_values(m: Manifold, s: dict) -> list:
  x, y, u, c = s["x"], s["y"], s["u"], s["c"]
  flat = lambda a: a.reshape(-1, a.shape[-1])
  return [
      (m.dist(x, y, c=c).reshape(-1),
       jax.vmap(lambda a, b: m.dist(a, b, c=c))(flat(x), flat(y))),
      (flat(m.expmap(x, u, c=c)), jax.vmap(lambda a, b: m.expmap(a, b, c=c))(flat(x), flat(u))),
      (flat(m.logmap(x, y, c=c)), jax.vmap(lambda a, b: m.logmap(a, b, c=c))(flat(x), flat(y))),
      (flat(m.transp(x, y, u, c=c)),
       jax.vmap(lambda a, b, w: m.transp(a, b, w, c=c))(flat(x), flat(y), flat(u))),
      (flat(m.egrad2rgrad(x, u, c=c)),
       jax.vmap(lambda a, g: m.egrad2rgrad(a, g, c=c))(flat(x), flat(u))),
      (flat(m.logmap0(x, c=c)), jax.vmap(lambda a: m.logmap0(a, c=c))(flat(x))),
      (flat(m.direction0(x, c=c)), jax.vmap(lambda a: m.direction0(a, c=c))(flat(x))),
      (flat(m.expmap0(m.logmap0(y, c=c), c=c)),
       jax.vmap(lambda a: m.expmap0(a, c=c))(flat(m.logmap0(y, c=c)))),
  ]


@functools.partial(jax.jit, static_argnums=0)
def _jitted_calls(fns: tuple[Callable, ...], args: tuple, c) -> list:
  """``[fn(*a, c=c) for fn, a in zip(fns, args)]`` under one default ``jit``."""
  return [fn(*a, c=c) for fn, a in zip(fns, args)]


def _edge_values(m: Manifold, s: dict) -> dict:
  x, c = s["x"], s["c"]
  o = m.origin(x.shape, c=c, dtype=x.dtype)
  zero = jnp.zeros_like(x)
  tangent0 = m.logmap0(o, c=c)  # zero tangent coordinates at the origin
  two = jnp.ones((1, 2), x.dtype)
  values = [m.dist(x, x, c=c), m.dist(o, o, c=c), m.dist(o, x, c=c),
            m.expmap(x, zero, c=c), m.logmap(x, x, c=c), m.expmap0(tangent0, c=c), tangent0,
            m.direction0(o, c=c), m.weighted_midpoint(_flat(x)[:1].repeat(2, 0), two, c=c)]
  grads = [jax.grad(lambda p: jnp.sum(m.dist(p, x, c=c)))(x),
           jax.grad(lambda p: jnp.sum(m.dist(p, o, c=c)))(o),
           jax.grad(lambda p: jnp.sum(m.dist(p, x, c=c)))(o),
           jax.grad(lambda w: jnp.sum(m.expmap(x, w, c=c)))(zero),
           jax.grad(lambda p: jnp.sum(m.logmap(x, p, c=c)))(x),
           jax.grad(lambda p: jnp.sum(m.dist(p, x, c=c) ** 2))(x),
           jax.grad(lambda w: jnp.sum(m.expmap0(w, c=c)))(tangent0),
           jax.grad(lambda p: jnp.sum(m.logmap0(p, c=c)))(o),
           jax.grad(lambda p: jnp.sum(m.direction0(p, c=c)))(o),
           jax.grad(lambda p: jnp.sum(m.weighted_midpoint(p, two, c=c)))(
               _flat(x)[:1].repeat(2, 0)),
           jax.grad(lambda p: jnp.sum(m.weighted_midpoint(p, two, c=c)))(_flat(o)[:1].repeat(2, 0))]
  return dict(values=values, grads=grads)


def _flat(a):
  return a.reshape(-1, a.shape[-1])


def _midpoint_values(m: Manifold, s: dict) -> dict:
  x, y, z, c, w = _flat(s["x"]), _flat(s["y"]), _flat(s["z"]), s["c"], s["weights"]
  n = x.shape[0]
  points = jnp.concatenate([x, y, z])
  mid = m.weighted_midpoint(points, w, c=c)
  atol = _tolerances(x.dtype)[1] * 10
  # Row i: x_i three times, with different weights.
  same = jnp.tile(jnp.eye(n, dtype=x.dtype), (1, 3)) * w[0]
  halves = m.weighted_midpoint(jnp.concatenate([x, y]),
                               jnp.tile(jnp.eye(n, dtype=x.dtype), (1, 2)), c=c)
  return dict(
      on=jnp.all(m.is_on_manifold(mid, c=c, atol=atol)), mid=mid,
      permuted=m.weighted_midpoint(points[s["perm"]], w[:, s["perm"]], c=c),
      scaled=m.weighted_midpoint(points, 2.5 * w, c=c),
      empty=m.weighted_midpoint(points, jnp.zeros_like(w[:2]), c=c),
      origin=m.origin((2, x.shape[-1]), c=c, dtype=x.dtype),
      same=m.weighted_midpoint(jnp.concatenate([x, x, x]), same, c=c), x=x,
      d_xm=m.dist(x, halves, c=c), d_ym=m.dist(y, halves, c=c), d_xy=m.dist(x, y, c=c))


def _origin_values(m: Manifold, s: dict) -> dict:
  x, y, c = s["x"], s["y"], s["c"]
  ambient = x.shape[-1]
  extra = ambient - m.tangent_dim(ambient)
  o = m.origin(x.shape, c=c, dtype=x.dtype)
  v = m.logmap0(y, c=c)
  log_o = m.logmap(o, y, c=c)
  small = 0.5 * _unit(m, o, s["w0"], c)  # A tangent at the origin, in ambient coordinates.
  exp_small = m.expmap0(small[..., extra:], c=c)
  embedded = m.proj_tangent(o, jnp.concatenate([jnp.zeros_like(log_o[..., :extra]), v], -1), c=c)
  return dict(v=v, exp_log=m.expmap0(v, c=c), log_ref=log_o[..., extra:], lead=log_o[..., :extra],
              small=small[..., extra:], exp_small=exp_small, exp_ref=m.expmap(o, small, c=c),
              log_exp=m.logmap0(exp_small, c=c), norm=m.norm(o, embedded, c=c),
              d_oy=m.dist(o, y, c=c), direction=m.direction0(y, c=c),
              unit_v=v / jnp.linalg.norm(v, axis=-1, keepdims=True))


def _similarity_values(m: Manifold, s: dict) -> dict:
  x, y, c = _flat(s["x"]), _flat(s["y"]), s["c"]
  out = dict(s=m.pairwise_similarity(x, y, c=c), d=m.pairwise_dist(x, y, c=c))
  if m.radial:
    noise = s["noise"]
    atol = _tolerances(x.dtype)[1] * 10
    out.update(cos=jnp.cos(jnp.sqrt(c) * out["d"]), proj=m.proj(noise, c=c),
               proj_scaled=m.proj(2.5 * noise, c=c),
               proj_on=jnp.all(m.is_on_manifold(m.proj(noise, c=c), c=c, atol=atol)))
  if m.vector_space:
    x, y, u = s["x"], s["y"], s["u"]
    out.update(pairs=[(m.dist(x, y, c=c), jnp.linalg.norm(x - y, axis=-1)),
                      (m.expmap(x, u, c=c), x + u), (m.logmap(x, y, c=c), y - x),
                      (m.origin(x.shape, c=c, dtype=x.dtype), jnp.zeros_like(x)),
                      (m.inner(x, u, s["v"], c=c), jnp.sum(u * s["v"], axis=-1))])
  return out


def _far_values(m: Manifold, s: dict) -> dict:
  x, c = s["x"], s["c"]
  ambient = x.shape[-1]
  o = m.origin(x.shape, c=c, dtype=x.dtype)
  direction = _unit(m, o, s["w0"], c)
  far = m.proj(m.expmap(o, 15.0 * direction, c=c), c=c)
  farther = m.proj(m.expmap(o, 30.0 * direction, c=c), c=c)
  on = jnp.all(m.is_on_manifold(far, c=c, atol=_tolerances(x.dtype)[1] * 10))
  d = [m.dist(far, x, c=c), m.dist(far, farther, c=c), m.pairwise_dist(
      far.reshape(-1, ambient), x.reshape(-1, ambient), c=c)]
  g = [jax.grad(lambda p: jnp.sum(m.dist(p, x, c=c)))(far),
       jax.grad(lambda p: jnp.sum(m.dist(p, farther, c=c)))(far),
       m.egrad2rgrad(far, jax.grad(lambda p: jnp.sum(m.dist(p, x, c=c)))(far), c=c)]
  d.append(m.logmap0(far, c=c))
  return dict(on=on, d=d, g=g)


_COMPUTES = (_on_manifold_values, _tangent_values, _distance_values, _pairwise_values,
             _exp_log_values, _transport_values, _egrad2rgrad_values, _broadcast_values,
             _edge_values, _far_values, _midpoint_values, _origin_values, _similarity_values)


def check_all(manifold: Manifold, *, dim: int = 4, batch_shape: tuple[int, ...] = (),
              dtype=None, c=1.0, seed: int = 0) -> list[CheckResult]:
  """Runs every property on ``manifold`` and returns one :class:`CheckResult` per property.

  Args:
    manifold: the geometry under test.
    dim: intrinsic dimension; leaves have ambient size ``manifold.ambient_dim(dim)``.
    batch_shape: leading shape of the leaves: ``()`` for ``[D]``, ``(N,)`` for ``[N, D]``.
    dtype: float32 or float64 (the latter needs ``jax.enable_x64(True)``); defaults to
      float64 when x64 is enabled, else float32.
    c: curvature magnitude.
    seed: PRNG seed for the random points.
  """
  if dtype is None:
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  dtype = jnp.dtype(dtype)
  m = manifold
  shape = tuple(batch_shape) + (m.ambient_dim(dim),)
  c = jnp.asarray(c, dtype)
  s = _samples(m, jax.random.key(seed), shape, dtype, c)
  x, y, u = s["x"], s["y"], s["u"]
  ahead = {}  # {compute: future of its compilation}, filled below.

  def run(name: str, fn: Callable[[], tuple[bool, str]]) -> CheckResult:
    try:
      ok, detail = fn()
    except Exception as e:  # A crash is a failure of that property, not of the suite.
      ok, detail = False, f"{type(e).__name__}: {e}"
    return CheckResult(name, bool(ok), detail)

  def on_manifold():
    r = _evaluate(_on_manifold_values, m, s, ahead)
    for what, ok in r["members"].items():
      if not bool(ok):
        return False, f"{what} output is off the manifold"
    ok, detail = _close(r["proj_x"], x, dtype)
    if not ok:
      return False, "proj moves a point already on the manifold: " + detail
    return _close(r["twice"], r["once"], dtype)

  def tangent():
    return _close(_evaluate(_tangent_values, m, s, ahead)["projected"], u, dtype)

  def distance_axioms():
    r = _evaluate(_distance_values, m, s, ahead)
    ok, detail = _close(r["dxx"], np.zeros_like(r["dxx"]), dtype)
    if not ok:
      return False, "d(x, x) != 0: " + detail
    ok, detail = _close(r["dxy"], r["dyx"], dtype)
    if not ok:
      return False, "asymmetric: " + detail
    if not bool(np.all(np.asarray(r["dxy"]) > 0)):
      return False, "d(x, y) <= 0 for distinct points"
    ok = bool(r["triangle"])
    return ok, "" if ok else "triangle inequality fails"

  def pairwise():
    r = _evaluate(_pairwise_values, m, s, ahead)
    # The matmul form loses ~sqrt(eps) near 0 in float32; compare at the scale of 1.
    return _close(r["matmul"], r["brute"], dtype, scale=10.0)

  def exp_log():
    r = _evaluate(_exp_log_values, m, s, ahead)
    ok, detail = _close(r["exp_log"], y, dtype, scale=10.0)
    if not ok:
      return False, "exp_x(log_x y) != y: " + detail
    ok, detail = _close(r["norm"], r["dxy"], dtype)
    if not ok:
      return False, "|log_x y| != d(x, y): " + detail
    return _close(r["log_exp"], r["small"], dtype, scale=10.0)

  def transport():
    r = _evaluate(_transport_values, m, s, ahead)
    ok, detail = _close(r["inner_y"], r["inner_x"], dtype)
    if not ok:
      return False, "not an isometry: " + detail
    ok, detail = _close(r["pu_projected"], r["pu"], dtype)
    if not ok:
      return False, "result not in T_y: " + detail
    return _close(r["transported_log"], r["minus_log"], dtype, scale=10.0)

  def egrad2rgrad():
    r = _evaluate(_egrad2rgrad_values, m, s, ahead)
    ok, detail = _close(r["rgrad_projected"], r["rgrad"], dtype)
    if not ok:
      return False, "rgrad not in T_x: " + detail
    return _close(r["inner"], r["directional"], dtype, scale=10.0)

  def broadcast():
    for got, want in _evaluate(_broadcast_values, m, s, ahead):
      ok, detail = _close(got, want, dtype)
      if not ok:
        return False, detail
    return True, ""

  def midpoint():
    r = _evaluate(_midpoint_values, m, s, ahead)
    if not bool(r["on"]):
      return False, "midpoint off the manifold"
    for what, got, want in [("points permuted", r["permuted"], r["mid"]),
                            ("weights scaled", r["scaled"], r["mid"]),
                            ("zero weights: not the origin", r["empty"], r["origin"]),
                            ("midpoint of copies of x is not x", r["same"], r["x"])]:
      ok, detail = _close(got, want, dtype, scale=10.0)
      if not ok:
        return False, f"{what}: {detail}"
    if "weighted_midpoint" in m.generic_operations():
      return True, ""  # The generic default is not a geodesic midpoint (see _defaults).
    ok, detail = _close(r["d_xm"], r["d_xy"] / 2, dtype, scale=10.0)
    if ok:
      ok, detail = _close(r["d_ym"], r["d_xy"] / 2, dtype, scale=10.0)
    return ok, "" if ok else "equal weights: not the geodesic midpoint: " + detail

  def origin_maps():
    r = _evaluate(_origin_values, m, s, ahead)
    checks = [("expmap0(logmap0 y) != y", r["exp_log"], y),
              ("logmap0 != logmap at the origin", r["v"], r["log_ref"]),
              ("logmap at the origin has nonzero leading coordinates", r["lead"],
               np.zeros(np.shape(r["lead"]))),
              ("expmap0 != expmap at the origin", r["exp_small"], r["exp_ref"]),
              ("logmap0(expmap0 v) != v", r["log_exp"], r["small"]),
              ("|logmap0 y| != d(origin, y)", r["norm"], r["d_oy"]),
              ("direction0 != logmap0 / |logmap0|", r["direction"], r["unit_v"])]
    for what, got, want in checks:
      ok, detail = _close(got, want, dtype, scale=10.0)
      if not ok:
        return False, f"{what}: {detail}"
    return True, ""

  def similarity():
    r = _evaluate(_similarity_values, m, s, ahead)
    sim, d = np.asarray(r["s"], np.float64).ravel(), np.asarray(r["d"], np.float64).ravel()
    if np.shape(r["s"]) != np.shape(r["d"]):
      return False, f"shape {np.shape(r['s'])}, pairwise_dist's {np.shape(r['d'])}"
    rtol, atol = _tolerances(dtype)
    tol_d, tol_s = 10 * (atol + rtol * np.abs(d)), 10 * (atol + rtol * np.abs(sim))
    # A pair clearly closer than another must not be clearly less similar.
    wrong = (d[:, None] + tol_d[:, None] < d[None, :]) & (sim[:, None] + tol_s[:, None]
                                                           < sim[None, :])
    return (not wrong.any(), f"{int(wrong.sum())} pairs ordered unlike -pairwise_dist"
            if wrong.any() else "")

  def radial():
    if not m.radial:
      return True, "not claimed"
    r = _evaluate(_similarity_values, m, s, ahead)
    if not bool(r["proj_on"]):
      return False, "proj of a raw vector is off the manifold"
    ok, detail = _close(r["proj_scaled"], r["proj"], dtype)
    if not ok:
      return False, "proj is not scale-invariant: " + detail
    ok, detail = _close(r["s"], r["cos"], dtype, scale=10.0)
    return ok, "" if ok else "similarity is not cos(sqrt(c) d): " + detail

  def vector_space():
    if not m.vector_space:
      return True, "not claimed"
    r = _evaluate(_similarity_values, m, s, ahead)
    for (got, want), what in zip(r["pairs"], ["dist", "expmap", "logmap", "origin", "inner"]):
      ok, detail = _close(got, want, dtype)
      if not ok:
        return False, f"{what} is not that of R^D: {detail}"
    return True, ""

  calls = [(m.dist, (x, y)), (m.expmap, (x, u)), (m.logmap, (x, y)), (m.transp, (x, y, u)),
           (m.egrad2rgrad, (x, u)), (m.proj, (x,)), (m.logmap0, (x,)), (m.direction0, (x,)),
           (m.expmap0, (m.logmap0(y, c=c),)),
           (m.pairwise_similarity, (_flat(x), _flat(y))),
           (m.weighted_midpoint, (jnp.concatenate([_flat(x), _flat(y), _flat(s["z"])]),
                                  s["weights"]))]
  jit_args = (tuple(fn for fn, _ in calls), tuple(args for _, args in calls), c)

  def jit():
    eager = [fn(*args, c=c) for fn, args in calls]
    _wait(ahead, _jitted_calls)
    jitted = _jitted_calls(*jit_args)
    for (fn, _), want, got in zip(calls, eager, jitted):
      ok, detail = _close(got, want, dtype)
      if not ok:
        return False, f"{fn.__name__}: {detail}"
    return True, ""

  def edge_gradients():
    r = _evaluate(_edge_values, m, s, ahead)
    if not _finite(r["values"]):
      return False, "non-finite values at x == y / origin / v == 0"
    if not _finite(r["grads"]):
      return False, "non-finite gradients at x == y / origin / v == 0"
    return True, ""

  def far_points():
    r = _evaluate(_far_values, m, s, ahead)
    if not bool(r["on"]):
      return False, "far point off the manifold after proj"
    if not _finite(r["d"]):
      return False, "non-finite distances near the boundary / far away"
    if not _finite(r["g"]):
      return False, "non-finite gradients near the boundary / far away"
    return True, ""

  properties = [("on_manifold", on_manifold), ("tangent", tangent),
                ("distance_axioms", distance_axioms), ("pairwise", pairwise),
                ("exp_log", exp_log), ("transport", transport), ("egrad2rgrad", egrad2rgrad),
                ("broadcast", broadcast), ("jit", jit), ("edge_gradients", edge_gradients),
                ("far_points", far_points), ("midpoint", midpoint), ("origin_maps", origin_maps),
                ("similarity", similarity), ("radial", radial), ("vector_space", vector_space)]
  results = {}
  with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    platform = jax.default_backend()
    jobs = {_jitted_calls: (_jitted_calls, jit_args)}
    jobs.update({compute: (_jitted(compute, platform), (m, s)) for compute in _COMPUTES})
    ahead.update(_compile_ahead(pool, jobs))
    # ``jit`` first: its eager work overlaps the others' compilation.
    for name, fn in sorted(properties, key=lambda p: p[0] != "jit"):
      results[name] = run(name, fn)
  return [results[name] for name, _ in properties]


def assert_conforms(manifold: Manifold, **kwargs) -> None:
  """Runs :func:`check_all` and raises ``AssertionError`` listing every failed property."""
  failed = [r for r in check_all(manifold, **kwargs) if not r.ok]
  if failed:
    lines = "\n".join(f"  {r.name}: {r.detail}" for r in failed)
    raise AssertionError(f"{manifold.name} fails {len(failed)} conformance properties:\n{lines}")
