"""Orbax checkpointing of the training state, always restored against an abstract target.

Orbax writes each step to a temporary directory and renames it when complete, so a run killed
mid-save never leaves a half-written checkpoint that resume would pick up.
"""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves/restores a state pytree under ``workdir/checkpoints`` keyed by epoch."""

  def __init__(self, workdir: pathlib.Path, *, max_to_keep: int = 2):
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    self._manager = ocp.CheckpointManager(
        (pathlib.Path(workdir) / "checkpoints").absolute(), options=options)

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def save(self, epoch: int, state) -> None:
    self._manager.save(epoch, args=ocp.args.StandardSave(state))
    self._manager.wait_until_finished()

  def restore(self, epoch: int, abstract_state):
    """Restores ``epoch`` into arrays shaped, typed and sharded like ``abstract_state``."""
    return self._manager.restore(epoch, args=ocp.args.StandardRestore(abstract_state))

  def close(self) -> None:
    self._manager.close()


def abstract_like(state):
  """``ShapeDtypeStruct`` tree (keeping shardings) for an orbax restore target."""
  return jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=getattr(a, "sharding", None)),
      state)
