"""Placing the training state and batches on a ``jax.sharding.Mesh`` (data parallel).

One mesh axis, ``"data"``, over all devices. Embedding tables (leaves whose leading axis is the
padded row count) are row-sharded, batches are split along their leading axis, everything else
is replicated. Under ``jit`` the SPMD partitioner inserts the collectives, so the computation is
the same function on 1 or 8 devices (tested with ``--xla_force_host_platform_device_count=8``).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# Tables are padded to a multiple of this many rows so they split evenly over any power-of-two
# mesh up to 128 devices, and so that checkpoints do not depend on the device count.
ROW_MULTIPLE = 128


def padded_rows(num_rows: int) -> int:
  """Rows of a padded table: at least one spare (scratch) row, rounded up to ROW_MULTIPLE."""
  return -(-(num_rows + 1) // ROW_MULTIPLE) * ROW_MULTIPLE


def data_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def state_shardings(state, mesh: Mesh, *, table_rows: int):
  """Row-shards leaves with leading axis ``table_rows`` when it divides evenly; replicates rest."""
  size = mesh.devices.size

  def sharding(leaf):
    shape = getattr(leaf, "shape", ())
    if len(shape) >= 1 and shape[0] == table_rows and table_rows % size == 0:
      return NamedSharding(mesh, P("data", *([None] * (len(shape) - 1))))
    return NamedSharding(mesh, P())

  return jax.tree.map(sharding, state)


def constrain_batch(batch, mesh: Mesh | None):
  """Splits a batch's leading axis over ``"data"`` inside ``jit`` when it divides evenly."""
  if mesh is None or mesh.devices.size == 1:
    return batch

  def constrain(leaf):
    if leaf.ndim >= 1 and leaf.shape[0] % mesh.devices.size == 0:
      spec = P("data", *([None] * (leaf.ndim - 1)))
      return jax.lax.with_sharding_constraint(leaf, NamedSharding(mesh, spec))
    return leaf

  return jax.tree.map(constrain, batch)
