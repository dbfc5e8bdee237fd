"""Clustering metrics of labelled embeddings: k-means, then NMI / AMI against the labels.

:func:`clustering_metrics`: k-means (k-means++ seeding, Lloyd iterations, in JAX) on the
embedding coordinates, scored against the labels with NMI and AMI computed in NumPy from the
contingency table (Vinh, Epps & Bailey, "Information Theoretic Measures for Clusterings
Comparison", JMLR 2010; arithmetic-mean normalisation, scikit-learn's default).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from embedlab.evals._inputs import as_labels, as_points


# ----------------------------------------------------------------------------------------------
# k-means.


def _sq_dist(x, centers):
  return jnp.maximum(jnp.sum(x * x, axis=1)[:, None] - 2.0 * x @ centers.T
                     + jnp.sum(centers * centers, axis=1)[None, :], 0.0)


@functools.partial(jax.jit, static_argnames=("num_clusters", "max_iters"))
def _kmeans(x, key, *, num_clusters, max_iters):
  n, dim = x.shape
  key, first_key = jax.random.split(key)
  first = x[jax.random.randint(first_key, (), 0, n)]
  centers = jnp.zeros((num_clusters, dim), x.dtype).at[0].set(first)
  min_sq = _sq_dist(x, first[None])[:, 0]

  def seed_one(i, state):
    centers, min_sq, key = state
    key, sub = jax.random.split(key)
    # D^2 sampling; if every point already coincides with a centre, sample uniformly.
    logits = jnp.where(jnp.sum(min_sq) > 0, jnp.log(min_sq), jnp.zeros_like(min_sq))
    new = x[jax.random.categorical(sub, logits)]
    return centers.at[i].set(new), jnp.minimum(min_sq, _sq_dist(x, new[None])[:, 0]), key

  centers, _, _ = jax.lax.fori_loop(1, num_clusters, seed_one, (centers, min_sq, key))

  def assign(centers):
    return jnp.argmin(_sq_dist(x, centers), axis=1).astype(jnp.int32)

  def update(centers, assignment):
    sums = jax.ops.segment_sum(x, assignment, num_segments=num_clusters)
    counts = jax.ops.segment_sum(jnp.ones((n,), x.dtype), assignment,
                                 num_segments=num_clusters)
    # An empty cluster keeps its previous centre.
    return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centers)

  def cond(state):
    _, _, changed, it = state
    return changed & (it < max_iters)

  def body(state):
    centers, assignment, _, it = state
    centers = update(centers, assignment)
    new_assignment = assign(centers)
    return centers, new_assignment, jnp.any(new_assignment != assignment), it + 1

  assignment = assign(centers)
  centers, assignment, _, iters = jax.lax.while_loop(
      cond, body, (centers, assignment, jnp.array(True), jnp.array(0, jnp.int32)))
  return centers, assignment, iters


def kmeans(x, *, num_clusters: int, seed: int = 0, max_iters: int = 300):
  """Euclidean k-means: k-means++ seeding (Arthur & Vassilvitskii, SODA 2007), Lloyd steps.

  One run (no restarts) of plain D^2 seeding, then Lloyd iterations until no assignment changes
  or ``max_iters``; an empty cluster keeps its previous centre. Distances are those of the
  ambient coordinates (``[N, K]`` squared distances held at once).

  Args:
    x: ``[N, D]`` points.
    num_clusters: ``K``, ``1 <= K <= N``.
    seed: seed of the ``jax.random`` key used by the seeding.
    max_iters: most Lloyd iterations.

  Returns:
    ``(centers [K, D], assignment int32 [N], num_iters int)``.
  """
  x = as_points("x", x)
  if not 1 <= num_clusters <= x.shape[0]:
    raise ValueError(f"num_clusters={num_clusters} must lie in [1, N={x.shape[0]}].")
  if max_iters < 1:
    raise ValueError(f"max_iters must be positive, got {max_iters}.")
  centers, assignment, iters = _kmeans(x, jax.random.key(seed), num_clusters=int(num_clusters),
                                       max_iters=int(max_iters))
  return centers, assignment, int(iters)


# ----------------------------------------------------------------------------------------------
# NMI / AMI (NumPy, from the contingency table).


def _contingency(labels_true, labels_pred):
  labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
  if labels_true.ndim != 1 or labels_pred.ndim != 1:
    raise ValueError(f"labels must be 1-D, got shapes {labels_true.shape} and "
                     f"{labels_pred.shape}.")
  if labels_true.shape != labels_pred.shape:
    raise ValueError(f"labels_true has {labels_true.size} entries but labels_pred has "
                     f"{labels_pred.size}.")
  if labels_true.size == 0:
    raise ValueError("labels are empty.")
  _, rows = np.unique(labels_true, return_inverse=True)
  _, cols = np.unique(labels_pred, return_inverse=True)
  table = np.zeros((rows.max() + 1, cols.max() + 1), np.int64)
  np.add.at(table, (rows.reshape(-1), cols.reshape(-1)), 1)
  return table, labels_true.size


def _entropy(counts, n):
  p = counts[counts > 0] / n
  return float(-np.sum(p * np.log(p)))


def _mutual_info(table, n):
  """``(MI(U, V), (H(U) + H(V)) / 2)`` of a contingency table, natural logs."""
  a, b = table.sum(axis=1), table.sum(axis=0)
  i, j = np.nonzero(table)
  nij = table[i, j].astype(np.float64)
  mi = float(np.sum(nij / n * (np.log(nij) + math.log(n) - np.log(a[i]) - np.log(b[j]))))
  return mi, (_entropy(a, n) + _entropy(b, n)) / 2


def _expected_mutual_info(table, n):
  """E[MI] under the hypergeometric model of random labellings with these marginals.

  ``sum_{i,j} sum_{m} (m/N) log(N m / (a_i b_j)) P(m; a_i, b_j, N)``, ``m`` from
  ``max(1, a_i + b_j - N)`` to ``min(a_i, b_j)`` (Vinh et al., JMLR 2010, eq. 24a).
  """
  a, b = table.sum(axis=1), table.sum(axis=0)
  log_fact = np.array([math.lgamma(v + 1) for v in range(n + 1)])
  emi = 0.0
  for ai in a:
    m = np.arange(1, min(ai, b.max()) + 1)[None, :]  # [1, M]
    bb = b[:, None]  # [C, 1]
    valid = (m >= np.maximum(1, ai + bb - n)) & (m <= np.minimum(ai, bb))
    mm = np.where(valid, m, 1)
    log_p = (log_fact[ai] + log_fact[bb] + log_fact[n - ai] + log_fact[n - bb] - log_fact[n]
             - log_fact[mm] - log_fact[np.maximum(ai - mm, 0)]
             - log_fact[np.maximum(bb - mm, 0)] - log_fact[np.maximum(n - ai - bb + mm, 0)])
    term = mm / n * (np.log(mm) + math.log(n) - math.log(ai) - np.log(bb)) * np.exp(log_p)
    emi += float(np.sum(np.where(valid, term, 0.0)))
  return emi


def normalized_mutual_info(labels_true, labels_pred) -> float:
  """NMI with arithmetic-mean normalisation: ``MI(U, V) / ((H(U) + H(V)) / 2)``.

  Natural logs. Two labellings with a single cluster each score 1.0; otherwise ``MI == 0``
  scores 0.0 (scikit-learn's conventions).

  Args:
    labels_true: ``[N]`` class labels (any values ``np.unique`` can sort).
    labels_pred: ``[N]`` cluster labels.

  Returns:
    NMI in ``[0, 1]``.
  """
  table, n = _contingency(labels_true, labels_pred)
  if table.shape == (1, 1):
    return 1.0
  mi, mean_entropy = _mutual_info(table, n)
  return 0.0 if mi == 0 else float(mi / mean_entropy)


def adjusted_mutual_info(labels_true, labels_pred) -> float:
  """AMI: ``(MI - E[MI]) / ((H(U) + H(V)) / 2 - E[MI])`` (Vinh et al., JMLR 2010).

  Arithmetic-mean normalisation; ``E[MI]`` under the hypergeometric (permutation) model. Two
  single-cluster labellings score 1.0; a zero denominator is replaced by ``+-eps`` as in
  scikit-learn. Cost ``O(R C M)`` for ``R`` classes, ``C`` clusters and ``M`` the largest class.

  Args:
    labels_true: ``[N]`` class labels (any values ``np.unique`` can sort).
    labels_pred: ``[N]`` cluster labels.

  Returns:
    AMI: 1 for identical clusterings, about 0 in expectation for independent ones, can be
    negative.
  """
  table, n = _contingency(labels_true, labels_pred)
  if table.shape == (1, 1):
    return 1.0
  mi, mean_entropy = _mutual_info(table, n)
  emi = _expected_mutual_info(table, n)
  denominator = mean_entropy - emi
  eps = np.finfo(np.float64).eps
  denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
  return float((mi - emi) / denominator)


def clustering_metrics(embeddings, labels, *, num_clusters: int | None = None, seed: int = 0,
                       max_iters: int = 300) -> dict:
  """NMI and AMI of k-means clusters of ``embeddings`` against ``labels``.

  The usual metric-learning protocol (e.g. Song et al., CVPR 2016): k-means with as many
  clusters as classes, then NMI of the clustering. k-means runs on the ambient coordinates
  (see :func:`kmeans`); for hyperbolic embeddings map them first (e.g. ``logmap0``) if the
  Euclidean geometry of the chart is not what should be clustered.

  Args:
    embeddings: ``[N, D]`` points.
    labels: ``[N]`` class labels.
    num_clusters: ``K``; default the number of distinct labels.
    seed: k-means++ seed.
    max_iters: most Lloyd iterations.

  Returns:
    ``{"nmi": float, "ami": float, "num_clusters": int, "kmeans_iters": int}``.
  """
  x = as_points("embeddings", embeddings)
  labels = as_labels("labels", labels, x.shape[0], "embeddings")
  k = int(np.unique(labels).size) if num_clusters is None else int(num_clusters)
  _, assignment, iters = kmeans(x, num_clusters=k, seed=seed, max_iters=max_iters)
  assignment = np.asarray(assignment)
  return {"nmi": normalized_mutual_info(labels, assignment),
          "ami": adjusted_mutual_info(labels, assignment),
          "num_clusters": k, "kmeans_iters": iters}
