"""Command-line entry point.

    python -m embedlab.main --config experiments/hierarchy.py:mammals --workdir runs/mammals
    python -m embedlab.main --config experiments/hierarchy.py:mammals,dim=2 \
        --config.optim.learning_rate=0.5 --workdir runs/mammals2d
"""

from __future__ import annotations

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from embedlab import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/hierarchy.py:mammals.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.mark_flags_as_required(["config", "workdir"])


# (results.json key, label) of the run-level numbers the summary prints when a result has them:
# training runs have epochs and train seconds, one-shot runners (trees) build and eval seconds.
_SUMMARY_KEYS = (("epochs_completed", "epochs"),
                 ("train_seconds_this_run", "train seconds (this run)"),
                 ("build_seconds", "build seconds"),
                 ("eval_seconds", "eval seconds"),
                 ("wall_seconds_this_run", "wall seconds (this run)"))


def _summary(results: dict) -> str:
  """The run's timings, device and metrics, one per line."""
  rows = [(label, results[key]) for key, label in _SUMMARY_KEYS if key in results]
  machine = results["machine"]
  rows.append(("device", f"{machine['device_kind']} x{machine['num_devices']}"))
  rows += list(results.get("metrics", {}).items())
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}"
                   for k, v in rows)


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  config = _CONFIG.value
  if train.needs_x64(config):
    # Process-wide, so set here (never inside a task), before anything is traced.
    jax.config.update("jax_enable_x64", True)
  outcome = train.run(config, _WORKDIR.value)
  print(_summary(outcome.results))
  print(f"results: {_WORKDIR.value}/results.json")


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  run()
