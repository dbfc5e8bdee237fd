r"""The combinatorial construction: trees in the Poincaré ball without optimisation.

Sala, De Sa, Gu & Ré, "Representation Tradeoffs for Hyperbolic Embeddings", ICML 2018,
section 3, generalising Sarkar, "Low Distortion Delaunay Embedding of Trees in Hyperbolic
Plane", Graph Drawing 2011, from the disk to the ball ``H^d`` (curvature -1).

Construction. The root sits at the origin. For each node ``v`` (top-down, breadth first):
move ``v`` to the origin with the isometry ``x -> (-v) (+) x`` (Möbius addition); its parent now
lies at hyperbolic distance ``tau`` in some direction ``e``. Take ``m = #children + 1`` unit
vectors spread far apart on the sphere ``S^{d-1}`` (a *spherical code*), turn them so that the
first one is ``e``, put the children at hyperbolic distance ``tau`` along the other ``m - 1``
(Euclidean radius ``tanh(tau / 2)``), and move everything back with ``x -> v (+) x``. Every edge
then has length exactly ``tau`` and the edges at a node meet at the code's angles, so a path of
``k`` edges is nearly a geodesic of length ``k tau``: ``d_E(u, v) ~= tau d_G(u, v)`` and
distortion is measured on ``d_E / tau``.

Codes. ``d = 2``: ``m`` points evenly on the circle (Sarkar). ``d >= 3``: coding-theoretic
placements from Hadamard matrices, in the spirit of Sala et al. (their exact code is not
reproduced here): while ``m`` fits, the binary simplex code (Hadamard rows of order
``n >= m`` without their constant column: angles ``arccos(-1/(n-1))``, above 90 degrees), then
the rows of a Hadamard matrix and their negatives (90 or 180 degrees), then the circle; see
:func:`_code`. The parent's direction is always one code point.

Scaling ``tau``. Larger ``tau`` lowers distortion (each turn at a node costs a bounded
length, so relative to ``tau`` it shrinks) but pushes points towards the boundary. Sarkar's
bound, with the angle ``beta = pi / (1.2 deg_max)`` (this reproduces the tau of the reference
implementation's README example), gives worst-case distortion at most ``1 + eps`` for
``tau = (1 + eps) / eps * (-2 log tan(beta / 2))`` (:func:`tau_for_distortion`). The
precision needed grows with ``tau`` times the tree's height (:func:`bits_needed`); the
largest ``tau`` a precision affords is :func:`tau_for_precision`. ``tau`` can also be given
directly.

Representation near the boundary (why precision matters). A point at hyperbolic distance
``r`` from the origin has ``1 - |x|^2 = 1 / cosh^2(r / 2) ~= 4 e^{-r}``: about
``r log2(e) = 1.44 r`` of a coordinate's leading bits are spent on ``0.999...``. float64 (53
bits) resolves ``1 - |x|^2`` to a few digits only up to ``r ~= 25``, and past ``r ~= 37``
points round onto the boundary; the phylogenetic tree (height 30) at ``tau = 2`` reaches
``r = 45``, WordNet in 2-D ``r = 340``. ``precision=<bits>`` therefore runs the construction
in mpmath with that many bits (plus guard bits; the Möbius additions are written without
cancellation, so about ``r log2(e) + 53`` bits suffice, :func:`bits_needed`) and keeps each
coordinate as a fixed-point integer ``X = round(x 2^bits)`` (a Python ``int``,
:attr:`CombinatorialEmbedding.fixed`). Distances are evaluated from the integers
(:meth:`CombinatorialEmbedding.distance_rows`): the differences ``X - Y`` and the gaps
``2^{2 bits} - |X|^2`` are exact integers, taken to float64 (logarithms, for the gaps) only
after the subtraction that cancels, so a distance of hundreds keeps about 15 significant
digits. The float64 ``points`` are the same coordinates rounded, for plots and downstream
code; deep points are on the rim there.

With ``precision="float64"`` the same algorithm runs in NumPy float64 (fast, fine for
shallow trees or small ``tau``; it warns when points come closer to the boundary than
float64 can resolve).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import numpy as np

# Extra mpmath bits on top of the requested precision: rounding errors of the top-down
# construction add up over the tree's height, and these absorb them.
_GUARD_BITS = 32
# Beyond this distance from the origin float64 keeps fewer than ~4 digits of 1 - |x|^2.
_FLOAT64_MAX_RADIUS = 25.0
_LN2 = math.log(2.0)


# ----------------------------------------------------------------------------------------------
# Scaling factor.


def tau_for_distortion(max_degree: int, *, eps: float) -> float:
  """The scaling factor that bounds the worst-case distortion by ``1 + eps``.

  ``tau = (1 + eps) / eps * nu`` with ``nu = -2 log tan(beta / 2)`` and
  ``beta = pi / (1.2 max_degree)`` (Sarkar 2011; this angle reproduces the reference
  implementation's README example: tau 23.769 for max degree 4 and eps 0.1). The codes used
  here place the edges at a node at least ``beta`` apart, in every dimension. A degree below
  2 (no node where a path turns) is treated as 2.

  Args:
    max_degree: the largest number of tree edges at a node (children plus parent).
    eps: the distortion target, ``> 0``.
  """
  if eps <= 0 or max_degree < 1:
    raise ValueError(f"need eps > 0 and max_degree >= 1, got eps={eps}, "
                     f"max_degree={max_degree}.")
  beta = math.pi / (1.2 * max(max_degree, 2))
  return (1.0 + eps) / eps * -2.0 * math.log(math.tan(beta / 2.0))


def bits_needed(max_radius: float) -> int:
  """Bits that keep ``1 - |x|^2`` to float64 accuracy out to hyperbolic radius ``max_radius``.

  ``1 - |x|^2 ~= 4 e^{-r}`` needs ``r log2(e) - 2`` leading bits of ``0.999...`` plus 53
  significant ones; 8 more cover the rounding of the distance formula.
  """
  return max(53, math.ceil(max_radius / _LN2) - 2 + 53 + 8)


def tau_for_precision(bits: int, height: int) -> float:
  """The largest ``tau`` whose embedding of a tree of this height fits in ``bits``."""
  if height < 1:
    raise ValueError(f"height must be >= 1, got {height}.")
  return (bits + 2 - 53 - 8) * _LN2 / height


# ----------------------------------------------------------------------------------------------
# Arithmetic: one algorithm, NumPy float64 or mpmath numbers in object arrays.


@dataclasses.dataclass(frozen=True)
class _Arith:
  """The handful of scalar functions the construction needs, in one number type."""
  dtype: object
  sqrt: object
  tanh: object
  cos: object
  sin: object
  pi: object

  def array(self, values) -> np.ndarray:
    return np.asarray(values, dtype=self.dtype)


_FLOAT64 = _Arith(np.float64, math.sqrt, math.tanh, math.cos, math.sin, math.pi)


def _mpmath_arith():
  import mpmath  # Imported lazily: only high-precision runs need it.
  return _Arith(object, mpmath.sqrt, mpmath.tanh, mpmath.cos, mpmath.sin, mpmath.pi)


def _mobius_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """``a (+) b`` for one point ``a [d]`` and a batch ``b [k, d]`` (curvature -1).

  ``((1 + 2<a,b> + |b|^2) a + (1 - |a|^2) b) / (1 + 2<a,b> + |a|^2 |b|^2)``, evaluated through
  ``1 + 2<a,b> + |b|^2 = |a + b|^2 + (1 - |a|^2)`` and
  ``1 + 2<a,b> + |a|^2 |b|^2 = |a + b|^2 + (1 - |a|^2)(1 - |b|^2)``: sums of non-negative terms.
  Near the boundary the plain form cancels ones down to ``~e^{-2r}`` and would need twice the
  bits. Works on float64 and on object arrays of mpmath numbers alike.
  """
  total = a[None, :] + b
  total2 = np.sum(total * total, axis=1)
  gap_a = 1 - a @ a
  gap_b = 1 - np.sum(b * b, axis=1)
  # Arrays on the left: mpf * ndarray makes mpmath try (slowly) to convert the array first.
  numerator = (total2 + gap_a)[:, None] * a[None, :] + b * gap_a
  return numerator / (total2 + gap_a * gap_b)[:, None]


def _hadamard(order: int) -> np.ndarray:
  """The Sylvester-Hadamard matrix of a power-of-two order (entries +-1)."""
  h = np.ones((1, 1), np.int64)
  while h.shape[0] < order:
    h = np.block([[h, h], [h, -h]])
  return h


def _code(m: int, dim: int, arith: _Arith) -> np.ndarray:
  """``[m, dim]`` unit vectors far apart; row 0 is the reference direction.

  The best-spread of three codes that holds ``m`` points in ``dim`` dimensions:

  1. simplex code: the first ``m`` rows of a Sylvester-Hadamard matrix of order ``n`` (the
     smallest power of two ``>= m``) without its constant first column, over ``sqrt(n - 1)``:
     pairwise inner products ``-1 / (n - 1)``, angles above 90 degrees (a regular simplex
     when ``m == n``); needs ``n - 1 <= dim``.
  2. Hadamard rows and their negatives, ``[H; -H] / sqrt(n)`` with ``n`` the largest power of
     two ``<= dim``: up to ``2n`` points at 90 or 180 degrees.
  3. the circle: ``m`` points evenly on the circle of the first two coordinates (the only
     code in ``dim == 2``, Sarkar's; elsewhere the fallback for very high degrees).
  """
  out = arith.array(np.zeros((m, dim)))
  simplex_order = 1 << max(m - 1, 0).bit_length()  # smallest power of two >= m
  cross_order = 1 << (dim.bit_length() - 1)  # largest power of two <= dim
  if dim > 2 and simplex_order - 1 <= dim and m > 1:
    rows = _hadamard(simplex_order)[:m, 1:]
    out[:, :simplex_order - 1] = arith.array(rows) / arith.sqrt(simplex_order - 1)
  elif dim > 2 and m <= 2 * cross_order:
    h = _hadamard(cross_order)
    out[:, :cross_order] = arith.array(np.concatenate([h, -h])[:m]) / arith.sqrt(cross_order)
  else:
    for i in range(m):
      angle = 2 * arith.pi * i / m
      out[i, 0], out[i, 1] = arith.cos(angle), arith.sin(angle)
  return out


def _turn(code: np.ndarray, direction: np.ndarray) -> np.ndarray:
  """The code moved by an orthogonal map that takes its row 0 to the unit vector ``direction``.

  A Householder reflection ``H_w = I - 2 w w^T / |w|^2``: ``w = c - e`` maps ``c = code[0]``
  to ``e``, and ``-H_w`` with ``w = c + e`` does too. Picking the one with ``|w|^2 >= 2`` keeps
  it exact: with ``e`` next to ``c`` the first ``w`` would be a difference of nearly equal
  vectors, and the reflection would send the other code points anywhere.
  """
  c = code[0]
  flip = c @ direction >= 0
  w = c + direction if flip else c - direction
  turned = code - (2 * (code @ w) / (w @ w))[:, None] * w[None, :]
  return -turned if flip else turned


# ----------------------------------------------------------------------------------------------
# The tree.


def _tree_order(parent: np.ndarray):
  """``(order, children, roots)``: a top-down BFS order and the children of each node."""
  n = parent.size
  if parent.ndim != 1 or n == 0:
    raise ValueError(f"parent must be a non-empty int array [N], got shape {parent.shape}.")
  if parent.min() < -1 or parent.max() >= n:
    raise ValueError(f"parent ids must lie in [-1, {n}), got [{parent.min()}, {parent.max()}].")
  if np.any(parent == np.arange(n)):
    raise ValueError(f"node {int(np.flatnonzero(parent == np.arange(n))[0])} is its own parent.")
  roots = np.flatnonzero(parent < 0)
  if not roots.size:
    raise ValueError("parent has no root (no entry -1): it holds a cycle.")
  has_parent = np.flatnonzero(parent >= 0)
  by_parent = has_parent[np.argsort(parent[has_parent], kind="stable")]
  counts = np.bincount(parent[has_parent], minlength=n)
  starts = np.concatenate([[0], np.cumsum(counts)])
  children = [by_parent[starts[v]:starts[v + 1]] for v in range(n)]
  order = list(roots)
  for v in order:  # Appending while iterating: a breadth-first walk.
    order.extend(children[v])
  if len(order) != n:
    raise ValueError(f"parent holds a cycle: only {len(order)} of {n} nodes hang from a root.")
  return np.asarray(order), children, roots


def _depths(order, parent) -> np.ndarray:
  depth = np.zeros(parent.size, np.int64)
  for v in order:
    if parent[v] >= 0:
      depth[v] = depth[parent[v]] + 1
  return depth


@dataclasses.dataclass(frozen=True, eq=False)
class CombinatorialEmbedding:
  """A combinatorial embedding of a tree (or forest) in the Poincaré ball, curvature -1.

  Attributes:
    points: ``float64 [N, dim]`` Poincaré coordinates (rounded to float64 in high precision;
      deep points then sit on the rim, see the module docstring).
    tau: the scaling factor: every tree edge has hyperbolic length ``tau``.
    precision: ``"float64"`` or the number of bits.
    radii: ``float64 [N]`` hyperbolic distance of each point to the origin, from the exact
      representation.
    bits_needed: :func:`bits_needed` for the largest radius.
    fixed: high precision only: ``object [N, dim]`` Python ints ``round(x 2^frac_bits)``.
    frac_bits: the fixed-point scale of ``fixed`` (0 in float64).
    virtual_root: whether the roots of a forest hang from an extra node at the origin (not
      part of ``points``).
  """

  points: np.ndarray
  tau: float
  precision: str | int
  radii: np.ndarray
  bits_needed: int
  fixed: np.ndarray | None = None
  frac_bits: int = 0
  virtual_root: bool = False

  @property
  def num_nodes(self) -> int:
    return int(self.points.shape[0])

  @property
  def dim(self) -> int:
    return int(self.points.shape[1])

  @functools.cached_property
  def _log_gaps(self) -> np.ndarray:
    return _norms_and_log_gaps(self.fixed, self.frac_bits)[1]

  def distance_rows(self, sources) -> np.ndarray:
    """``float64 [B, N]`` hyperbolic distances from each of ``sources`` to every point.

    High precision: from the fixed-point integers, accurate to ~1e-15 relative whatever the
    radius. ``z = 2 |x - y|^2 / ((1 - |x|^2)(1 - |y|^2))`` is assembled in logarithms: the
    gaps ``1 - |x|^2`` are exact integers (logged once), and the differences ``X - Y`` are
    exact integers rounded to float64 only after the subtraction, so the digits that
    cancel are never lost. float64 precision: the usual formula on the float64 points.
    """
    sources = np.asarray(sources, np.int64).reshape(-1)
    if self.fixed is None:
      return _float64_rows(self.points, sources)
    log_gaps = self._log_gaps
    # float(int) overflows past 2^1024: drop low bits of each exact difference beyond 2^1000.
    shift = max(self.frac_bits - 1000, 0)
    out = np.empty((sources.size, self.num_nodes))
    for i, s in enumerate(sources):
      diff = self.fixed - self.fixed[s]
      if shift:
        diff = diff >> shift
      diff = diff.astype(np.float64)  # exact integers, one rounding each; |diff| < 2^1001
      # log |X - Y|^2 without overflow: scale by the largest coordinate difference.
      biggest = np.max(np.abs(diff), axis=1)
      with np.errstate(divide="ignore", invalid="ignore"):
        log_sq = 2.0 * np.log(biggest) + np.log(np.sum((diff / biggest[:, None]) ** 2, axis=1))
      log_sq[biggest == 0] = -np.inf  # the source itself (or a point on top of it)
      log_z = log_sq + _LN2 - 2 * (self.frac_bits - shift) * _LN2 - log_gaps[s] - log_gaps
      out[i] = _arcosh1p_from_log(log_z)
    return out


def _arcosh1p_from_log(log_z: np.ndarray) -> np.ndarray:
  """``arcosh(1 + z)`` from ``log z``, accurate for every ``z`` in ``[0, inf)``.

  Past ``z = e^40``, ``arcosh(1 + z) = log(2z) + O(1/z)`` exactly in float64.
  """
  big = log_z > 40.0
  z = np.exp(np.where(big, 0.0, log_z))
  return np.where(big, log_z + _LN2, np.log1p(z + np.sqrt(z * (z + 2.0))))


def _float64_rows(x: np.ndarray, sources: np.ndarray) -> np.ndarray:
  diff = x[sources, None, :] - x[None, :, :]
  gap = np.maximum(1.0 - np.sum(x * x, axis=1), np.finfo(np.float64).tiny)
  z = 2.0 * np.sum(diff * diff, axis=-1) / (gap[sources, None] * gap[None, :])
  return np.log1p(z + np.sqrt(z * (z + 2.0)))


def _to_fixed(value, frac_bits: int) -> int:
  """``round(value * 2^frac_bits)`` of an mpmath number, exactly (``ldexp`` only shifts)."""
  import mpmath
  return int(mpmath.nint(mpmath.ldexp(value, frac_bits)))


def _norms_and_log_gaps(fixed: np.ndarray, frac_bits: int) -> tuple[np.ndarray, np.ndarray]:
  """``(|x|, log(1 - |x|^2))`` of fixed-point rows, the gap from exact integers.

  Raises:
    ValueError: a point lies on or past the boundary (the precision was too low).
  """
  sq = np.sum(fixed * fixed, axis=1)
  one = 1 << (2 * frac_bits)
  if any(s >= one for s in sq):
    raise ValueError("a point lies on or past the boundary of the ball: the precision is too "
                     "low for this tau and tree height (see bits_needed).")
  norms = np.array([math.sqrt(s / one) for s in sq])
  log_gaps = np.array([math.log(one - s) for s in sq]) - 2 * frac_bits * _LN2
  return norms, log_gaps


def combinatorial_embedding(parent, *, dim: int = 2, tau: float | None = None,
                            eps: float | None = None,
                            precision: str | int = "float64") -> CombinatorialEmbedding:
  """Embeds a rooted tree (or forest) with the combinatorial construction of Sala et al.

  Args:
    parent: ``int [N]`` parent of each node, ``-1`` for a root. Several roots (a forest, e.g.
      the BFS forest of a graph with several components) hang from a virtual root at the
      origin, one ``tau`` above them; a single root sits at the origin.
    dim: dimension of the Poincaré ball, ``>= 2``.
    tau: the scaling factor (hyperbolic length of every edge).
    eps: instead of ``tau``: aim for worst-case distortion ``<= 1 + eps``
      (:func:`tau_for_distortion` of the tree's largest degree).
      With neither ``tau`` nor ``eps`` and ``precision=<bits>``: the largest ``tau`` those
      bits afford for the tree's height (:func:`tau_for_precision`), the "precision-limited"
      choice (least distortion the bits allow).
    precision: ``"float64"`` (NumPy) or a number of bits (``>= 53``) for mpmath; see the
      module docstring.

  Returns:
    The :class:`CombinatorialEmbedding`.

  Raises:
    ValueError: bad ``parent`` (cycles, ids out of range), ``dim < 2``, both ``tau`` and
      ``eps`` (or neither in float64), or a bad precision.

  Warns:
    UserWarning: the precision is too low for the largest radius (distances will be off).
  """
  parent = np.asarray(parent, np.int64).reshape(-1)
  if dim < 2:
    raise ValueError(f"dim must be >= 2, got {dim}.")
  if precision != "float64" and not (isinstance(precision, int) and precision >= 53):
    raise ValueError(f"precision must be 'float64' or a number of bits >= 53, got "
                     f"{precision!r}.")
  if tau is not None and eps is not None or (tau is None and eps is None
                                             and precision == "float64"):
    raise ValueError(f"give one of tau and eps (or neither, with precision=<bits>), got "
                     f"tau={tau}, eps={eps}, precision={precision!r}.")
  order, children, roots = _tree_order(parent)
  virtual_root = roots.size > 1
  degree = np.array([c.size for c in children]) + (parent >= 0)
  if virtual_root:
    degree[roots] += 1
  max_degree = max(int(degree.max()), roots.size)
  height = int(_depths(order, parent).max()) + int(virtual_root)
  if eps is not None:
    tau = tau_for_distortion(max_degree, eps=eps)
  elif tau is None:
    tau = tau_for_precision(precision, max(height, 1))
  if tau <= 0:
    raise ValueError(f"tau must be positive, got {tau} (too few bits for this height?).")
  needed = bits_needed(tau * height)

  if precision == "float64":
    # Past float64's reach points degrade to the rim (or NaN); the warning below says so once.
    with np.errstate(invalid="ignore", divide="ignore"):
      points = _construct(parent, order, children, roots, dim, tau, _FLOAT64)
      radii = 2.0 * np.arctanh(np.minimum(np.linalg.norm(points, axis=1), 1.0))
    if tau * height > _FLOAT64_MAX_RADIUS:
      warnings.warn(
          f"tau={tau:.4g} x height {height} puts points {tau * height:.1f} from the origin, "
          f"beyond what float64 resolves (~{_FLOAT64_MAX_RADIUS:.0f}); distances will be "
          f"wrong. Use precision={needed} (bits) or tau <= {_FLOAT64_MAX_RADIUS / height:.3g}.",
          stacklevel=2)
    return CombinatorialEmbedding(points=points, tau=float(tau), precision="float64",
                                  radii=radii, bits_needed=needed, virtual_root=virtual_root)

  import mpmath  # Imported lazily: only high-precision runs need it.
  if precision < needed:
    warnings.warn(
        f"precision={precision} bits is below the {needed} that tau={tau:.4g} x height "
        f"{height} needs; distances will lose accuracy. The largest tau {precision} bits "
        f"afford here is {tau_for_precision(precision, height):.4g}.", stacklevel=2)
  with mpmath.workprec(precision + _GUARD_BITS):
    exact = _construct(parent, order, children, roots, dim, mpmath.mpf(tau), _mpmath_arith())
    fixed = np.empty(exact.shape, object)
    for index, value in np.ndenumerate(exact):
      fixed[index] = _to_fixed(mpmath.mpf(value), precision)
    points = exact.astype(np.float64)
  norms, log_gaps = _norms_and_log_gaps(fixed, precision)
  # Distance to the origin: log((1 + |x|)^2 / (1 - |x|^2)), the gap from exact integers.
  radii = 2.0 * np.log1p(norms) - log_gaps
  return CombinatorialEmbedding(points=points, tau=float(tau), precision=int(precision),
                                radii=radii, bits_needed=needed,
                                fixed=fixed, frac_bits=int(precision),
                                virtual_root=virtual_root)


def _construct(parent, order, children, roots, dim: int, tau, arith: _Arith) -> np.ndarray:
  """The top-down placement; ``[N, dim]`` in ``arith``'s number type."""
  n = parent.size
  radius = arith.tanh(tau / 2)  # Euclidean radius of hyperbolic distance tau from the origin.
  codes = {}

  def code(m):
    if m not in codes:
      codes[m] = _code(m, dim, arith)
    return codes[m]

  points = arith.array(np.zeros((n, dim)))
  if roots.size > 1:
    # A forest: the roots are the children of a virtual node at the origin.
    points[roots] = code(roots.size) * radius
  for v in order:
    kids = children[v]
    if not kids.size:
      continue
    u = parent[v]
    if u < 0 and roots.size == 1:
      points[kids] = code(kids.size) * radius  # The root: no parent direction to avoid.
      continue
    # Move v to the origin; the parent (or the virtual root at 0) lands tau away along e.
    origin_side = points[u] if u >= 0 else arith.array(np.zeros(dim))
    toward_parent = _mobius_add(-points[v], origin_side[None, :])[0]
    e = toward_parent / arith.sqrt(toward_parent @ toward_parent)
    directions = _turn(code(kids.size + 1), e)[1:]
    points[kids] = _mobius_add(points[v], directions * radius)
  return points
