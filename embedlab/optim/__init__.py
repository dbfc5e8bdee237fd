"""Riemannian optimizers as optax gradient transformations, and schedules for them.

>>> import optax
>>> from embedlab import geometry, optim
>>> ball = geometry.get("poincare")
>>> lr = optim.burn_in_schedule(0.3, burn_in_steps=1000)
>>> opt = optim.riemannian_sgd(lr, manifold=ball, update="retr")   # Nickel & Kiela 2017
>>> opt = optim.riemannian_adam(1e-2, manifold=ball)               # Bécigneul & Ganea 2019
>>> # updates, state = opt.update(grads, state, params)
>>> # params = optim.apply_updates(params, updates, manifold=ball)

The transforms return Euclidean deltas, so they compose with the rest of optax
(``optax.partition`` to mix them with ``optax.adam`` on Euclidean params, ``optax.chain``,
``optax.inject_hyperparams``). :func:`sparse_rows` wraps any of them (or a plain optax one) so
that a step updates only the rows of an embedding table it touched.
"""

from embedlab.optim.riemannian import (UPDATE_RULES, LinearStepTransformation,
                                       RiemannianAdamState, RiemannianSGDState, apply_updates,
                                       riemannian_adam, riemannian_sgd)
from embedlab.optim.schedules import DECAYS, burn_in_schedule, decay_schedule
from embedlab.optim.sparse import SparseRowsTransformation, gather_rows, sparse_rows

__all__ = ["UPDATE_RULES", "LinearStepTransformation", "RiemannianAdamState",
           "RiemannianSGDState", "SparseRowsTransformation", "apply_updates", "burn_in_schedule",
           "DECAYS", "decay_schedule", "gather_rows", "riemannian_adam", "riemannian_sgd",
           "sparse_rows"]
