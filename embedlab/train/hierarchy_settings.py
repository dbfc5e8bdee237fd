"""The hierarchy task's config: its checks in one place, and what is built from it.

:func:`check_config` validates a config of ``experiments/hierarchy.py`` before anything is
loaded or built (checks that need the graph live with the part that uses it: the negative
sampler). :func:`negative_settings` and :func:`learning_rate_schedule` turn config fields into
the objects the task composes; :func:`needs_x64` tells ``embedlab.main`` whether the run needs
JAX's process-wide x64 mode.
"""

from __future__ import annotations

import jax
import ml_collections

from embedlab import optim
from embedlab.geometry import poincare
from embedlab.geometry.base import Manifold
from embedlab.losses.negatives import NegativeSettings
from embedlab.models import cap_refinement
from embedlab.train import hierarchy_init

OPTIMIZERS = {"rsgd": optim.riemannian_sgd, "radam": optim.riemannian_adam}
ROW_UPDATES = ("auto", "dense", "sparse")
# "distance": d(u, v) in the geometry; "translational": d(u + r, v) (N&K's baseline).
MODELS = ("distance", "translational")
DTYPES = ("float32", "float64")


def _choice(value: str, valid, what: str) -> str:
  if value not in valid:
    raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(valid)}")
  return value


def needs_x64(config: ml_collections.ConfigDict) -> bool:
  """Whether the run computes in float64 (JAX's x64 mode must be on before it starts)."""
  return config.dtype == "float64"


def negative_settings(config: ml_collections.ConfigDict) -> NegativeSettings:
  """The ``negatives`` sub-config as sampler settings (validated)."""
  return NegativeSettings(**config.negatives.to_dict())


def check_config(config: ml_collections.ConfigDict, manifold: Manifold) -> None:
  """Raises ``ValueError`` naming the field(s) for a config the task cannot run."""
  _choice(config.optim.name, OPTIMIZERS, "optimizer")
  _choice(config.row_updates, ROW_UPDATES, "row_updates")
  _choice(config.model, MODELS, "model")
  _choice(config.dtype, DTYPES, "dtype")
  negative_settings(config)
  if config.dim < 1 or config.batch_size < 1:
    raise ValueError(f"dim and batch_size must be positive; got {config.dim} and "
                     f"{config.batch_size}")
  if config.model == "translational" and manifold.curvature_sign != 0:
    raise ValueError(f"model='translational' adds a vector to points, so it needs a flat "
                     f"geometry (e.g. geometry='euclidean'); got {config.geometry!r}.")
  _check_init(config, manifold)
  _check_schedule(config)
  reseat = config.reseat
  if reseat.every_epochs:
    # The loop calls refresh_params once per jitted call of epochs_per_call epochs, so the
    # schedule must land on those boundaries (a resumed run then repeats it exactly).
    per_call = config.epochs_per_call
    if (reseat.every_epochs < 0 or reseat.from_epoch < 0
        or reseat.every_epochs % per_call or reseat.from_epoch % per_call):
      raise ValueError(f"reseat.every_epochs and reseat.from_epoch must be non-negative "
                       f"multiples of epochs_per_call={per_call}; got "
                       f"{reseat.every_epochs} and {reseat.from_epoch}")
  if needs_x64(config) and not jax.config.jax_enable_x64:
    raise ValueError("dtype='float64' needs JAX's x64 mode, which is process-wide: "
                     "`python -m embedlab.main` turns it on for such a config; elsewhere run "
                     "inside `with jax.enable_x64(True):` or set JAX_ENABLE_X64=1 before "
                     "importing jax.")


def _check_init(config: ml_collections.ConfigDict, manifold: Manifold) -> None:
  init = _choice(config.init, hierarchy_init.INIT_CHOICES, "init")
  refine = config.nested_caps.refine
  cap_refinement.check_settings(**refine.to_dict())  # before the construction: fail at once
  if init != "nested_caps":
    if refine.steps > 0:
      raise ValueError(f"nested_caps.refine.steps={refine.steps} bends the nested caps; it needs "
                       f"init='nested_caps' (got init={init!r}).")
    return
  if config.init_from is not None:
    raise ValueError("init='nested_caps' builds the table; init_from loads one: set only one.")
  # The construction writes Poincaré-ball coordinates: another model of hyperbolic space (the
  # hyperboloid, a Klein model) would read them as other points, so the requirement is the
  # registered Poincaré ball itself, not a property such as the sign of the curvature.
  if manifold is not poincare.MANIFOLD or config.model != "distance" or config.dtype != "float64":
    raise ValueError(f"init='nested_caps' builds Poincaré points up to ~37 from the origin, so it "
                     f"needs geometry='poincare', model='distance' and dtype='float64'; got "
                     f"{config.geometry!r}, {config.model!r}, {config.dtype!r}.")
  if config.dim < 3:
    raise ValueError(f"init='nested_caps' needs dim >= 3; got dim={config.dim}")
  if config.link_prediction.test_fraction > 0:
    # The held-out rows are implied by the training rows, so closing the training rows again
    # (which the construction needs) would hand it the answers.
    raise ValueError("init='nested_caps' needs the whole transitive closure; it cannot build "
                     "from a link-prediction split (link_prediction.test_fraction > 0).")


def _decay_begin_epoch(config: ml_collections.ConfigDict) -> int:
  # The decay starts after the burn-in, or later at optim.decay_begin_epoch: a long run at
  # constant rate can then end annealed (the rate, not the epoch count, sets SGD's noise floor).
  begin = config.optim.decay_begin_epoch
  return config.burn_in_epochs if begin is None else begin


def _check_schedule(config: ml_collections.ConfigDict) -> None:
  begin = config.optim.decay_begin_epoch
  if begin is not None and not config.burn_in_epochs <= begin < config.epochs:
    raise ValueError(f"optim.decay_begin_epoch must be in [burn_in_epochs, epochs) = "
                     f"[{config.burn_in_epochs}, {config.epochs}); got {begin}")


def learning_rate_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """``count -> learning rate``: ``burn_in_epochs`` at ``lr * burn_in_multiplier``, then
  ``optim.learning_rate`` decaying (``optim.decay``) from the burn-in's end or
  ``optim.decay_begin_epoch`` to ``lr * optim.final_multiplier`` at the last epoch."""
  decayed = optim.decay_schedule(
      config.optim.learning_rate, kind=config.optim.decay,
      begin_step=_decay_begin_epoch(config) * steps_per_epoch,
      end_step=config.epochs * steps_per_epoch,
      final_multiplier=config.optim.final_multiplier)
  return optim.burn_in_schedule(decayed, burn_in_steps=config.burn_in_epochs * steps_per_epoch,
                                burn_in_multiplier=config.burn_in_multiplier)
