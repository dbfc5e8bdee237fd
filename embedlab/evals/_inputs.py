"""Input checks shared by the evaluators: labelled point sets, with clear ``ValueError``s."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def as_points(name: str, x):
  """``x`` as a ``[N, D]`` array of at least float32, ``N >= 1``, every entry finite."""
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must be [N, D], got shape {x.shape}.")
  if x.shape[0] == 0:
    raise ValueError(f"{name} is empty.")
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  if not bool(jnp.all(jnp.isfinite(x))):
    raise ValueError(f"{name} hold NaN or inf; neighbours would be meaningless.")
  return x


def as_labels(name: str, labels, n: int, points_name: str) -> np.ndarray:
  """``labels`` as a 1-D NumPy array with one entry per row of ``points_name`` (``n``)."""
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"{name} must be 1-D, got shape {labels.shape}.")
  if labels.shape[0] != n:
    raise ValueError(f"{name} has {labels.shape[0]} entries but {points_name} has {n} rows.")
  return labels
