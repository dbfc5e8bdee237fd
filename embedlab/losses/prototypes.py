"""Fixed class prototypes and the losses that pull embeddings to them, in every geometry.

Prototype methods fix one target per class *before* training, spread as far apart as the
dimension allows, and train the network to map each sample to its class's target. This module
builds the targets and the losses:

* :func:`equiangular_basis_vectors` (Shen et al., CVPR 2023): ``N`` unit vectors in ``d``
  dimensions, ``N`` possibly ``> d``, with small pairwise ``|cos|``; :func:`ebv_loss` is the
  cross-entropy over (temperature-scaled) similarities to them.
* :func:`hyperspherical_prototypes` and :func:`extend_prototypes` (Mettes, van der Pol & Snoek,
  NeurIPS 2019): maximally separated unit prototypes (each one's largest cosine to the others is
  minimised), and new ones added for novel classes around a fixed existing set;
  :func:`hyperspherical_prototype_loss` is the paper's ``(1 - cos)^2``.
* :func:`busemann_prototype_loss` (Ghadimi Atigh, Keller-Ressel & Mettes, NeurIPS 2021): the
  same unit prototypes read as *ideal points* on the boundary of the Poincaré ball, and the
  Busemann function to them as the loss.

Every geometry has a prototype loss: the Euclidean and spherical ones use the cosine (the angle
at the origin); in the ball that angle is still defined (the model is conformal at the origin)
but the hyperbolic loss proper is the Busemann one; :func:`ebv_loss` works in every geometry
through the shared similarity kernel (see its docstring).

The generators are eager setup code (call them once, outside ``jit``); each runs one jitted
``lax.scan`` of Adam steps (optax, cosine-decayed learning rate) with the rows renormalised to
the unit sphere after every step, and is deterministic given ``seed``. They form ``[N, N]``
Gram matrices: memory and time per step are ``O(N^2 d)``.

Losses follow the conventions of :mod:`embedlab.losses.metric`: eager shape checks, labels
checked to index a prototype (eagerly when they are concrete; under ``jit`` an out-of-range
label makes the loss NaN), and non-finite embeddings or prototypes give a NaN loss with zero
gradient (``_batch.sanitize`` / ``_batch.nan_if``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from embedlab.geometry import _numerics as nm
from embedlab.geometry import poincare, sphere
from embedlab.geometry.base import Manifold
from embedlab.losses import _batch


# --- generating prototypes ----------------------------------------------------------------------

def max_pairwise_cosine(vectors, *, absolute: bool = False):
  """Largest cosine (or ``|cosine|``) between two different rows of ``vectors``.

  Args:
    vectors: ``[N, d]``, ``N >= 2``; rows need not be normalised.
    absolute: if true, the largest ``|cos|`` (what :func:`equiangular_basis_vectors` minimises);
      otherwise the largest signed cosine (what :func:`hyperspherical_prototypes` minimises).

  Returns:
    A scalar.
  """
  if vectors.ndim != 2 or vectors.shape[0] < 2:
    raise ValueError(f"vectors must be [N, d] with N >= 2; got shape {vectors.shape}")
  units = nm.unit(vectors)
  gram = units @ units.T
  if absolute:
    gram = jnp.abs(gram)
  return jnp.max(jnp.where(jnp.eye(vectors.shape[0], dtype=bool), -jnp.inf, gram))


def _smooth_max_abs_cosine(vectors, fixed, temperature):
  """``t log sum_{i != j} 2 cosh(cos_ij / t)``: a smooth maximum of the pairwise ``|cos|``."""
  del fixed
  gram = vectors @ vectors.T
  off_diagonal = ~jnp.eye(vectors.shape[0], dtype=bool)
  both_signs = jnp.stack([jnp.where(off_diagonal, gram, -jnp.inf),
                          jnp.where(off_diagonal, -gram, -jnp.inf)])
  return temperature * jax.nn.logsumexp(both_signs / temperature)


def _mean_max_cosine(vectors, fixed, temperature):
  """Mettes et al. 2019, Sec. 2.1: mean over the rows of ``vectors`` of their largest cosine to the
  other rows and to the ``fixed`` rows (``M = P P^T - 2 I`` keeps the diagonal out)."""
  del temperature
  gram = vectors @ vectors.T - 2.0 * jnp.eye(vectors.shape[0], dtype=vectors.dtype)
  gram = jnp.concatenate([gram, vectors @ fixed.T], axis=1)
  return jnp.mean(jnp.max(gram, axis=1))


@functools.partial(jax.jit, static_argnames=("objective", "steps"))
def _minimise_on_sphere(init, fixed, learning_rate, temperature, *, objective, steps):
  """``steps`` Adam steps on ``objective(rows, fixed, temperature)``, rows renormalised after each.

  The learning rate decays to 0 along a cosine: the objectives are maxima (kinks at the optimum),
  where a constant step size would leave the rows oscillating at the scale of the step.
  """
  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))

  def step(carry, _):
    rows, state = carry
    grads = jax.grad(objective)(rows, fixed, temperature)
    updates, state = optimizer.update(grads, state, rows)
    return (nm.unit(optax.apply_updates(rows, updates)), state), None

  (rows, _), _ = jax.lax.scan(step, (init, optimizer.init(init)), None, length=steps)
  return rows


def _check_sizes(num: int, dim: int, steps: int, what: str):
  if num < 1 or dim < 1:
    raise ValueError(f"{what} and dim must be >= 1; got {num} and {dim}")
  if steps < 0:
    raise ValueError(f"steps must be >= 0; got {steps}")


def _random_units(seed: int, num: int, dim: int, dtype):
  """The deterministic initialisation: i.i.d. Gaussian rows from ``seed``, normalised."""
  return nm.unit(jax.random.normal(jax.random.key(seed), (num, dim), dtype))


def _optimised(init, fixed, objective, *, steps, learning_rate, temperature):
  if steps == 0 or init.shape[0] + fixed.shape[0] < 2:  # no pair: nothing to separate.
    return init
  return _minimise_on_sphere(init, fixed, learning_rate, temperature, objective=objective,
                             steps=steps)


def equiangular_basis_vectors(num_vectors: int, dim: int, *, seed: int = 0, steps: int = 1000,
                              learning_rate: float = 0.01, temperature: float = 0.01,
                              dtype=jnp.float32):
  """``N`` unit vectors in ``d`` dimensions with small pairwise ``|cos|`` (``N`` may exceed ``d``).

  Shen, Chen, Zhang, Chen, Zhao & Shi, "Equiangular Basis Vectors", CVPR 2023, Sec. 3.2: the
  basis vectors should be as close to orthogonal as possible, ``|cos(w_i, w_j)| <= alpha`` for
  all ``i != j``. The paper minimises the thresholded sum ``sum_{i != j} relu(|cos_ij| - alpha)``
  by SGD with a hand-picked ``alpha`` per ``(N, d)``. We minimise the smooth maximum

      L(W) = t log sum_{i != j} (exp(cos_ij / t) + exp(-cos_ij / t))

  (a soft ``max_{i != j} |cos_ij|``, within ``t log(2 N (N - 1))`` of it) instead, which needs no
  threshold: with ``alpha`` below what is achievable, the paper's sum degenerates into
  ``sum |cos_ij|``, which for ``N > d`` is smallest with *duplicated* vectors. The optimum of the
  max ``|cos|`` is 0 for ``N <= d`` and, for ``N = d + 1``, ``1/d`` (the regular simplex,
  meeting the Welch bound ``sqrt((N - d) / (d (N - 1)))``).

  Args:
    num_vectors: ``N >= 1``.
    dim: ``d >= 1``.
    seed: the random initialisation (i.i.d. Gaussian rows, normalised).
    steps: Adam steps.
    learning_rate: peak Adam learning rate (cosine-decayed to 0).
    temperature: ``t`` of the smooth maximum; smaller is closer to the true maximum but stiffer.
    dtype: of the result (float64 needs ``jax.enable_x64``).

  Returns:
    ``[N, d]`` unit vectors; see :func:`max_pairwise_cosine` (``absolute=True``) for the value
    achieved.
  """
  _check_sizes(num_vectors, dim, steps, "num_vectors")
  return _optimised(_random_units(seed, num_vectors, dim, dtype), jnp.zeros((0, dim), dtype),
                    _smooth_max_abs_cosine, steps=steps, learning_rate=learning_rate,
                    temperature=temperature)


def hyperspherical_prototypes(num_classes: int, dim: int, *, seed: int = 0, steps: int = 1000,
                              learning_rate: float = 0.01, dtype=jnp.float32):
  """Maximally separated unit prototypes (Mettes, van der Pol & Snoek, NeurIPS 2019).

  "Hyperspherical Prototype Networks", Sec. 2.1: with ``P`` the unit prototypes and
  ``M = P P^T - 2 I``, minimise the mean over the classes of each prototype's largest cosine
  to the others,

      L(P) = (1/K) sum_i max_j M_ij,

  by gradient steps with the rows renormalised after each (the paper uses SGD with momentum;
  here the Adam loop of :func:`equiangular_basis_vectors`). Unlike the EBV objective this is the
  *signed* cosine: for ``K <= d + 1`` the optimum is the regular simplex, every cosine
  ``-1/(K - 1)``.

  Args:
    num_classes: ``K >= 1``.
    dim: ``d >= 1``.
    seed: the random initialisation (i.i.d. Gaussian rows, normalised).
    steps: Adam steps.
    learning_rate: peak Adam learning rate (cosine-decayed to 0).
    dtype: of the result.

  Returns:
    ``[K, d]`` unit vectors.
  """
  _check_sizes(num_classes, dim, steps, "num_classes")
  return _optimised(_random_units(seed, num_classes, dim, dtype), jnp.zeros((0, dim), dtype),
                    _mean_max_cosine, steps=steps, learning_rate=learning_rate, temperature=0.0)


def extend_prototypes(existing, num_new: int, *, seed: int = 0, steps: int = 1000,
                      learning_rate: float = 0.01):
  """Adds ``num_new`` prototypes for novel classes, keeping ``existing`` fixed.

  The objective of :func:`hyperspherical_prototypes` restricted to the new rows: the mean over
  the new prototypes of their largest cosine to every other prototype, old and new, minimised
  over the new ones only. So a model trained on the old classes keeps its targets, and the new
  classes sit as far as possible from them and from each other (Mettes et al. 2019 fix the
  prototypes before training; this is the same optimisation with part of ``P`` frozen).

  Args:
    existing: ``[K, d]`` prototypes (normalised for the objective, returned unchanged).
    num_new: ``M >= 1`` new prototypes.
    seed: the random initialisation of the new rows.
    steps: Adam steps.
    learning_rate: peak Adam learning rate (cosine-decayed to 0).

  Returns:
    ``[K + M, d]``: ``existing`` bit for bit in the first ``K`` rows, the new unit vectors after.
  """
  existing = jnp.asarray(existing)
  if existing.ndim != 2:
    raise ValueError(f"existing prototypes must be [K, d]; got shape {existing.shape}")
  _check_sizes(num_new, existing.shape[1], steps, "num_new")
  if not np.all(np.isfinite(np.asarray(existing))):
    raise ValueError("existing prototypes contain NaN or inf")
  new = _optimised(_random_units(seed, num_new, existing.shape[1], existing.dtype),
                   nm.unit(existing), _mean_max_cosine, steps=steps, learning_rate=learning_rate,
                   temperature=0.0)
  return jnp.concatenate([existing, new], axis=0)


# --- losses -------------------------------------------------------------------------------------

def _prototype_dim(manifold: Manifold, ambient: int) -> int:
  """Prototypes are directions of the ambient space in a ``radial`` geometry (whose points are
  such directions), elsewhere directions in the tangent space at the origin: its
  ``tangent_dim`` coordinates (``d`` for ``d + 1`` ambient ones on the hyperboloid)."""
  return ambient if manifold.radial else manifold.tangent_dim(ambient)


def _check_inputs(embeddings, labels, prototypes, reduction: str, *, dim: int, what: str):
  """Eager checks of the batch and the ``[K, dim]`` prototypes; out-of-range concrete labels."""
  _batch.check_batch(embeddings, labels, reduction)
  if prototypes.ndim != 2:
    raise ValueError(f"{what} must be [K, d]; got shape {prototypes.shape}")
  if prototypes.shape[1] != dim:
    raise ValueError(f"{what} have dimension {prototypes.shape[1]} but the embeddings need "
                     f"{dim} (embeddings of shape {embeddings.shape})")
  if not isinstance(labels, jax.core.Tracer):
    values = np.asarray(labels)
    if values.size and (values.min() < 0 or values.max() >= prototypes.shape[0]):
      raise ValueError(f"labels must lie in [0, {prototypes.shape[0]}) to index the "
                       f"{prototypes.shape[0]} {what}; got range [{values.min()}, {values.max()}]")


def _sanitize_all(embeddings, labels, prototypes, manifold: Manifold, c):
  """Sanitised ``(embeddings, prototypes, one_hot [B, K], ok)``.

  ``ok`` is false if any embedding or prototype is non-finite or a label is out of range (the
  traced counterpart of :func:`_check_inputs`); non-finite prototypes are swapped for ones so
  that no NaN reaches the backward pass.
  """
  embeddings, finite = _batch.sanitize(embeddings, manifold, c)
  finite_prototypes = jnp.all(jnp.isfinite(prototypes))
  prototypes = jnp.where(finite_prototypes, prototypes, jnp.ones_like(prototypes))
  num = prototypes.shape[0]
  in_range = jnp.all((labels >= 0) & (labels < num))
  one_hot = jax.nn.one_hot(labels, num, dtype=embeddings.dtype)
  return embeddings, prototypes, one_hot, finite & finite_prototypes & in_range


def _directions(embeddings, manifold: Manifold, c):
  """Unit directions of the embeddings: of the ambient vectors in a ``radial`` geometry, seen
  from the origin elsewhere (``direction0``: the spatial part on the hyperboloid); a point at
  the origin has none (zero row)."""
  if manifold.radial:
    return nm.unit(embeddings)
  return manifold.direction0(embeddings, c=c)


def _basis_points(basis, manifold: Manifold, c, radius):
  """The basis directions placed on ``manifold``: in a ``radial`` geometry the points they
  project to (on the sphere of radius ``1/sqrt(c)``), elsewhere at geodesic distance ``radius``
  from the origin (``exp_0(radius * b)``; twice that on the Poincaré ball, whose metric at the
  origin is 4 times the Euclidean one)."""
  directions = nm.unit(basis)
  if manifold.radial:
    return manifold.proj(directions, c=c)
  return manifold.expmap0(radius * directions, c=c)


def ebv_loss(embeddings, labels, basis, *, manifold: Manifold = sphere.MANIFOLD, c=1.0,
             temperature=0.07, radius=1.0, reduction: str = "mean"):
  """Cross-entropy over the similarities to fixed equiangular basis vectors.

  Shen et al., "Equiangular Basis Vectors", CVPR 2023, Sec. 3: with ``s_k(x)`` the similarity
  of an embedding to basis vector ``k``,

      L_i = -log( exp(s_{y_i}(x_i) / tau) / sum_k exp(s_k(x_i) / tau) ),

  ``tau = 0.07`` in the paper's code. The similarity is ``manifold.pairwise_similarity`` to
  the basis placed on ``manifold``:

  * sphere (the paper's setting; any ``radial`` geometry): embeddings are normalised onto the
    sphere (``manifold.proj``, as the paper normalises its features) and the basis too, so
    ``s_k = cos(x, b_k)``;
  * Euclidean, Poincaré ball, hyperboloid (every other geometry): by default
    ``s_k = -d(x, exp_0(radius * b_k))``, the negative geodesic distance to the point
    ``manifold.expmap0(radius * b_k)`` in direction ``b_k`` from the origin, at distance
    ``radius`` (``2 radius`` in the Poincaré ball, whose metric at the origin is 4 times the
    Euclidean one); on the hyperboloid ``b_k`` is a direction of the spatial part.

  Args:
    embeddings: ``[B, D]`` points on ``manifold`` (on the sphere: any nonzero vectors; a zero
      row goes to the north pole).
    labels: ``[B]`` integer classes in ``[0, K)``.
    basis: ``[K, d]`` basis directions, e.g. :func:`equiangular_basis_vectors` (normalised
      here); ``d = D`` in a radial geometry, else ``manifold.tangent_dim(D)`` (``D - 1`` on the
      hyperboloid, ``D`` elsewhere).
    manifold: the geometry; default the sphere.
    c: curvature magnitude.
    temperature: ``tau``.
    radius: length of the tangent vector ``radius * b_k`` at the origin that places the basis
      points (not used in a radial geometry).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``[B]``).

  Returns:
    A scalar, or ``[B]`` for ``reduction="none"``; NaN if any embedding or basis entry is
    non-finite or (under ``jit``) a label is out of range.
  """
  _check_inputs(embeddings, labels, basis, reduction,
                dim=_prototype_dim(manifold, embeddings.shape[-1]), what="basis vectors")
  embeddings, basis, one_hot, ok = _sanitize_all(embeddings, labels, basis, manifold, c)
  if manifold.radial:  # Features stand for their directions: the points they project to.
    embeddings = manifold.proj(embeddings, c=c)
  points = _basis_points(basis, manifold, c, radius)
  logits = manifold.pairwise_similarity(embeddings, points, c=c) / temperature
  per_sample = _batch.cross_entropy(logits, one_hot.astype(bool))
  loss = _batch.masked_reduce(per_sample, labels.shape[0], reduction)
  return _batch.nan_if(ok, loss)


def hyperspherical_prototype_loss(embeddings, labels, prototypes, *,
                                  manifold: Manifold = sphere.MANIFOLD, c=1.0,
                                  reduction: str = "mean"):
  """Squared cosine loss to fixed class prototypes (Mettes, van der Pol & Snoek, NeurIPS 2019).

  "Hyperspherical Prototype Networks", eq. (4)::

      L_i = (1 - cos(x_i, p_{y_i}))^2

  The cosine is the angle at the origin between the embedding and its prototype: on the sphere
  (any ``radial`` geometry) and in Euclidean space the plain cosine of the ambient vectors (the
  paper's network outputs are Euclidean); elsewhere the angle between ``manifold.direction0(x)``
  and the prototype, in the tangent space at the origin: in the Poincaré ball the same formula as
  in Euclidean space (the model is conformal at the origin), on the hyperboloid the angle of the
  spatial parts. It ignores the distance from the origin; for a loss that uses the hyperbolic
  radius see :func:`busemann_prototype_loss`. An embedding exactly at the origin (zero vector)
  has no direction: ``cos = 0``, loss 1, zero gradient. ``c`` does not change angles; it only
  places the NaN fallback point.

  Args:
    embeddings: ``[B, D]`` points on ``manifold``.
    labels: ``[B]`` integer classes in ``[0, K)``.
    prototypes: ``[K, d]``, e.g. :func:`hyperspherical_prototypes` (normalised here); ``d`` as
      in :func:`ebv_loss` (``D - 1`` on the hyperboloid, ``D`` for the built-in others).
    manifold: the geometry; default the sphere.
    c: curvature magnitude.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``[B]``).

  Returns:
    A scalar, or ``[B]`` for ``reduction="none"``; NaN if any embedding or prototype is
    non-finite or (under ``jit``) a label is out of range.
  """
  _check_inputs(embeddings, labels, prototypes, reduction,
                dim=_prototype_dim(manifold, embeddings.shape[-1]), what="prototypes")
  embeddings, prototypes, one_hot, ok = _sanitize_all(embeddings, labels, prototypes, manifold, c)
  cos = jnp.sum(_directions(embeddings, manifold, c) * (one_hot @ nm.unit(prototypes)), axis=-1)
  loss = _batch.masked_reduce(jnp.square(1.0 - cos), labels.shape[0], reduction)
  return _batch.nan_if(ok, loss)


def busemann_prototype_loss(embeddings, labels, ideal_prototypes, *, c=1.0, phi=None,
                            reduction: str = "mean"):
  """Busemann loss to ideal prototypes on the boundary of the Poincaré ball.

  Ghadimi Atigh, Keller-Ressel & Mettes, "Hyperbolic Busemann Learning with Ideal Prototypes",
  NeurIPS 2021, Sec. 3: a unit vector ``p`` is a point at infinity of the unit ball; the
  Busemann function ``b_p(z) = log(|p - z|^2 / (1 - |z|^2))`` is the distance to ``p`` measured
  from a horosphere, and the loss adds a penalty ``-phi log(1 - |z|^2) >= 0`` that keeps
  embeddings from running off to the boundary::

      L_i = log|p_{y_i} - z_i|^2 - (1 + phi) log(1 - |z_i|^2)

  For curvature ``-c`` (ball of radius ``1/sqrt(c)``, ideal point ``p / sqrt(c)``) distances are
  those of the unit ball at ``sqrt(c) z`` divided by ``sqrt(c)``, so is the Busemann function,
  and we scale the whole loss the same way::

      L_i = (log|p_{y_i} - sqrt(c) z_i|^2 - (1 + phi) log(1 - c |z_i|^2)) / sqrt(c)

  Defined for the Poincaré ball only (the loss of the other geometries is
  :func:`hyperspherical_prototype_loss` / :func:`ebv_loss`). Embeddings are projected into the
  ball (``poincare.proj``), so ``1 - c|z|^2`` and ``|p - sqrt(c) z|`` stay positive.

  Args:
    embeddings: ``[B, d]`` points of the ball.
    labels: ``[B]`` integer classes in ``[0, K)``.
    ideal_prototypes: ``[K, d]`` directions of the ideal points (normalised here), e.g.
      :func:`hyperspherical_prototypes`.
    c: curvature magnitude.
    phi: penalty weight; default ``d`` (the authors' code: ``phi = s d`` with slope ``s = 1``).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``[B]``).

  Returns:
    A scalar, or ``[B]`` for ``reduction="none"``; NaN if any embedding or prototype is
    non-finite or (under ``jit``) a label is out of range.
  """
  _check_inputs(embeddings, labels, ideal_prototypes, reduction, dim=embeddings.shape[-1],
                what="ideal prototypes")
  phi = embeddings.shape[-1] if phi is None else phi
  manifold = poincare.MANIFOLD
  embeddings, prototypes, one_hot, ok = _sanitize_all(embeddings, labels, ideal_prototypes,
                                                      manifold, c)
  sqrt_c = jnp.sqrt(jnp.asarray(c, embeddings.dtype))
  z = sqrt_c * manifold.proj(embeddings, c=c)
  ideal = one_hot @ nm.unit(prototypes)
  per_sample = (jnp.log(jnp.sum(jnp.square(ideal - z), axis=-1))
                - (1.0 + phi) * jnp.log1p(-jnp.sum(z * z, axis=-1))) / sqrt_c
  loss = _batch.masked_reduce(per_sample, labels.shape[0], reduction)
  return _batch.nan_if(ok, loss)
