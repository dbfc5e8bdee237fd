"""The shared training loop and the tasks it runs (``TASKS`` maps ``config.task`` to a builder)."""

from __future__ import annotations

import ml_collections

from embedlab.train import hierarchy
from embedlab.train.loop import Outcome, train_and_evaluate

TASKS = {"hierarchy": hierarchy.HierarchyTask}


def run(config: ml_collections.ConfigDict, workdir) -> Outcome:
  """Builds ``config.task`` and trains it in ``workdir`` (resuming if it holds a checkpoint)."""
  if config.task not in TASKS:
    raise ValueError(f"unknown task {config.task!r}; expected one of {sorted(TASKS)}")
  return train_and_evaluate(config, workdir, TASKS[config.task](config))


__all__ = ["TASKS", "Outcome", "run", "train_and_evaluate"]
