"""The shared training loop and the tasks it runs (``TASKS`` maps ``config.task`` to a builder).

Tasks that train nothing (a one-shot construction, then evaluation) run outside the loop:
``RUNNERS`` maps their ``config.task`` to a ``run(config, workdir) -> Outcome`` function.
"""

from __future__ import annotations

import ml_collections

from embedlab.train import hierarchy
from embedlab.train import hierarchy_settings
from embedlab.train import metric_learning
from embedlab.train import trees
from embedlab.train.loop import Outcome, train_and_evaluate

TASKS = {"hierarchy": hierarchy.HierarchyTask,
         "metric_learning": metric_learning.MetricLearningTask}
RUNNERS = {"trees": trees.run}
# Families whose configs can ask for float64 say when: JAX's x64 mode is process-wide, so
# embedlab.main turns it on before the run (see needs_x64); a task only checks it is on.
X64 = {"hierarchy": hierarchy_settings.needs_x64}


def needs_x64(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config``'s run computes in float64 (its family's function in :data:`X64`)."""
  return config.task in X64 and X64[config.task](config)


def run(config: ml_collections.ConfigDict, workdir) -> Outcome:
  """Builds ``config.task`` and trains it in ``workdir`` (resuming if it holds a checkpoint)."""
  if config.task in RUNNERS:
    return RUNNERS[config.task](config, workdir)
  if config.task not in TASKS:
    raise ValueError(f"unknown task {config.task!r}; expected one of "
                     f"{sorted(TASKS) + sorted(RUNNERS)}")
  return train_and_evaluate(config, workdir, TASKS[config.task](config))


__all__ = ["RUNNERS", "TASKS", "X64", "Outcome", "needs_x64", "run", "train_and_evaluate"]
