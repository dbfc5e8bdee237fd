r"""h-MDS: hyperbolic multidimensional scaling (Sala, De Sa, Gu & Ré, ICML 2018, section 4).

Points ``x_i = (x_{i,0}, X_i)`` on the hyperboloid ``x_0^2 - |X|^2 = 1`` (curvature -1) satisfy
``cosh d(x_i, x_j) = x_{i,0} x_{j,0} - <X_i, X_j>``, i.e. with ``Y = cosh(D)`` and ``u`` the
vector of time coordinates::

  Y = u u^T - X X^T.

Centring. Move the points by a Lorentz boost so that their spatial parts sum to zero,
``X^T 1 = 0`` (the boost that takes the timelike vector ``sum_i x_i`` to the time axis; it
always exists and changes no distance). Then ``Y 1 = u (u^T 1)`` and ``1^T Y 1 = (u^T 1)^2``,
so the time coordinates follow from the distances alone::

  u = Y 1 / sqrt(1^T Y 1),        X X^T = u u^T - Y,

and ``X`` is read off the eigendecomposition of the right-hand side, keeping the ``dim``
largest eigenvalues (negative ones, which exact hyperbolic distances never produce, are
clipped to 0): the best rank-``dim`` approximation of the Gram matrix, as in classical MDS.
The recovered points are ``(sqrt(1 + |X_i|^2), X_i)``, mapped to the Poincaré ball by
``X_i / (1 + sqrt(1 + |X_i|^2))``. For distances of points that really lie in ``H^dim`` the
recovery is exact up to an isometry.

``scale`` multiplies the input distances first (the embedding's distances approximate
``scale * D``): graph distances are integers, and a small scale keeps ``cosh`` in the range
where hop counts look like hyperbolic distances of points near each other (Sala et al. use
0.1 on the phylogenetic tree). Divide embedded distances by ``scale`` to compare with ``D``
(:func:`embedlab.evals.distortion.distortion_metrics` takes it as ``scale``).

float64 NumPy throughout: ``cosh`` of distances grows like ``e^d`` and the eigenproblem needs
the digits.
"""

from __future__ import annotations

import numpy as np

# cosh overflows float64 past ~710; keep well inside so u u^T stays finite.
_MAX_SCALED_DISTANCE = 350.0


def hmds(distances, *, dim: int, scale: float = 1.0) -> np.ndarray:
  """Embeds a distance matrix in the Poincaré ball of dimension ``dim`` with h-MDS.

  Args:
    distances: ``[N, N]`` symmetric, non-negative, zero diagonal (e.g. graph distances).
    dim: target dimension (rank), ``1 <= dim <= N``.
    scale: multiplies the distances before embedding.

  Returns:
    ``float64 [N, dim]`` Poincaré-ball coordinates (curvature -1) whose pairwise distances
    approximate ``scale * distances``.

  Raises:
    ValueError: a non-square, asymmetric, negative or non-finite matrix, a bad ``dim`` or
      ``scale``, or ``scale * max(distances)`` so large that ``cosh`` would overflow.
  """
  d = np.asarray(distances, np.float64)
  if d.ndim != 2 or d.shape[0] != d.shape[1]:
    raise ValueError(f"distances must be a square [N, N] matrix, got shape {d.shape}.")
  n = d.shape[0]
  if not 1 <= dim <= n:
    raise ValueError(f"dim must lie in [1, N={n}], got {dim}.")
  if not scale > 0:
    raise ValueError(f"scale must be positive, got {scale}.")
  if not np.all(np.isfinite(d)) or np.any(d < 0):
    raise ValueError("distances must be finite and non-negative (one connected component).")
  if not np.allclose(d, d.T, rtol=1e-10, atol=1e-12):
    raise ValueError("distances must be symmetric.")
  largest = scale * float(d.max())
  if largest > _MAX_SCALED_DISTANCE:
    raise ValueError(f"scale * max distance = {largest:.4g} > {_MAX_SCALED_DISTANCE}: cosh would "
                     "overflow float64; lower the scale.")
  y = np.cosh(scale * d)
  row_sums = y.sum(axis=1)
  u = row_sums / np.sqrt(row_sums.sum())
  gram = np.outer(u, u) - y
  gram = 0.5 * (gram + gram.T)  # Symmetric to the last bit, for eigh.
  eigenvalues, eigenvectors = np.linalg.eigh(gram)  # Ascending.
  top = np.argsort(eigenvalues)[::-1][:dim]
  spatial = eigenvectors[:, top] * np.sqrt(np.maximum(eigenvalues[top], 0.0))
  return spatial / (1.0 + np.sqrt(1.0 + np.sum(spatial * spatial, axis=1, keepdims=True)))
