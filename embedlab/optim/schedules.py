"""Learning-rate schedules used by embedding experiments (optax schedules: ``count -> value``)."""

from __future__ import annotations

import numbers
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def burn_in_schedule(
    learning_rate: float | jax.Array | Callable[[jax.Array], jax.Array],
    *,
    burn_in_steps: int,
    burn_in_multiplier: float = 0.01,
) -> Callable[[jax.Array], jax.Array]:
  r"""A reduced learning rate for the first ``burn_in_steps`` steps, then the full one.

  Nickel & Kiela, "Poincaré Embeddings for Learning Hierarchical Representations", NeurIPS 2017,
  section 3: the first epochs run at a reduced rate so that the initial, random angular layout
  settles before points are pushed towards the boundary. The paper's text says ``lr / 10``
  (``burn_in_multiplier=0.1``); their reference implementation uses ``lr * 0.01``, the default
  here. Steps count optimizer updates: for a burn-in of ``E`` epochs pass
  ``E * steps_per_epoch``.

  .. math::
    \eta(t) = \eta_0(t) \cdot (\text{burn\_in\_multiplier if } t < \text{burn\_in\_steps}
    \text{ else } 1)

  A scheduled ``learning_rate`` is evaluated at the global count ``t`` (not restarted after
  the burn-in), so e.g. a decay over the whole run keeps its shape.

  Args:
    learning_rate: the full rate ``eta_0``: a number or an optax schedule.
    burn_in_steps: number of steps at the reduced rate, ``>= 0`` (0 disables the burn-in).
    burn_in_multiplier: factor applied during the burn-in, ``>= 0``.

  Returns:
    An optax schedule ``count -> learning rate``.
  """
  if isinstance(burn_in_steps, bool) or not isinstance(burn_in_steps, numbers.Integral):
    raise ValueError(f"burn_in_steps must be an int, got {burn_in_steps!r}.")
  if burn_in_steps < 0:
    raise ValueError(f"burn_in_steps must be >= 0, got {burn_in_steps}.")
  if not isinstance(burn_in_multiplier, jax.core.Tracer) and np.any(
      np.asarray(burn_in_multiplier) < 0):
    raise ValueError(f"burn_in_multiplier must be >= 0, got {burn_in_multiplier}.")

  def schedule(count):
    rate = learning_rate(count) if callable(learning_rate) else learning_rate
    return jnp.where(count < burn_in_steps, burn_in_multiplier * rate, rate)

  return schedule


DECAYS = ("none", "linear", "cosine")


def decay_schedule(
    learning_rate: float,
    *,
    kind: str,
    begin_step: int,
    end_step: int,
    final_multiplier: float = 0.0,
) -> Callable[[jax.Array], jax.Array]:
  r"""Constant until ``begin_step``, then a decay to ``learning_rate * final_multiplier`` at
  ``end_step`` (constant afterwards).

  .. math::
    \eta(t) = \eta_0 \big(m + (1 - m)\, s(\tfrac{t - t_0}{t_1 - t_0})\big), \quad
    s(p) = 1 - p \;(\text{linear}) \text{ or } \tfrac{1}{2}(1 + \cos \pi p) \;(\text{cosine})

  with ``p`` clipped to ``[0, 1]``. ``kind="none"`` returns ``learning_rate`` at every step.
  Combine with :func:`burn_in_schedule` by passing this as its ``learning_rate`` and the
  burn-in length as ``begin_step``.

  Args:
    learning_rate: the peak rate ``eta_0``.
    kind: ``"none"``, ``"linear"`` or ``"cosine"``.
    begin_step: ``t_0``, where the decay starts.
    end_step: ``t_1 > t_0``, where it reaches ``eta_0 * final_multiplier``.
    final_multiplier: ``m``, in ``[0, 1]``.

  Returns:
    An optax schedule ``count -> learning rate``.
  """
  if kind not in DECAYS:
    raise ValueError(f"unknown decay {kind!r}; expected one of {list(DECAYS)}.")
  if not 0.0 <= final_multiplier <= 1.0:
    raise ValueError(f"final_multiplier must be in [0, 1], got {final_multiplier}.")
  if kind == "none":
    return lambda count: jnp.asarray(learning_rate) * jnp.ones_like(count, jnp.float32)
  span = max(int(end_step) - int(begin_step), 1)

  def schedule(count):
    progress = jnp.clip((count - begin_step) / span, 0.0, 1.0)
    shape = 1.0 - progress if kind == "linear" else 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return learning_rate * (final_multiplier + (1.0 - final_multiplier) * shape)

  return schedule
