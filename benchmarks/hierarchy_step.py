r"""Milliseconds per hierarchy training step, generic vs linear sparse path, A/B in one process.

Builds the :class:`embedlab.train.hierarchy.HierarchyTask` of an experiment preset (WordNet
nouns by default: 82,115 nodes, 743,241 closure rows), jits a ``lax.scan`` of ``--steps``
training steps over the first batches of one epoch (the same scan the shared loop runs), once
per variant, and times the variants in alternating rounds so machine noise hits both alike.
Prints the median and best ms per step of each, the ratio to the first variant, and seconds
per epoch (ms/step times ``steps_per_epoch``). Run from the repository root, pinned to one
core::

  EMBEDLAB_DATA_DIR=DATA_DIR taskset -c 0 python benchmarks/hierarchy_step.py \
      --batch 50 --steps 2000 --rounds 5

Variants (config fields of each variant's task; everything else is the preset's):

* ``old``: ``linear_rows=false, negatives.redraw=full``: the generic sparse step of
  :func:`embedlab.optim.sparse_rows` (full-table zero buffer, scatter-add, gather, optimizer
  update on the gathered rows, scatter-set) and the CSR binary-search negative sampler with
  every resample round drawn at full size;
* ``linear``: ``linear_rows=true, negatives.redraw=full``: the scatter-add path of a linear
  step (stateless RSGD with ``update_rule="retr"``), full-size redraws;
* ``new``: ``linear_rows=true, negatives.redraw=pooled``: the defaults.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from embedlab.train import hierarchy  # noqa: E402  (after the path tweak)
from experiments import hierarchy as hierarchy_experiment  # noqa: E402

VARIANTS = {
    "old": "linear_rows=false,negatives.redraw=full",
    "linear": "linear_rows=true,negatives.redraw=full",
    "new": "linear_rows=true,negatives.redraw=pooled",
}


def scan_fn(task, steps: int):
  """Jitted ``(params, opt_state, batches, key) -> (params, opt_state, mean loss)``."""

  def run(params, opt_state, batches, key):
    def one_step(carry, xs):
      params, opt_state = carry
      step, batch = xs
      params, opt_state, loss = task.train_step(params, opt_state, batch,
                                                jax.random.fold_in(key, step), task.data)
      return (params, opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        one_step, (params, opt_state), (jnp.arange(steps), batches))
    return params, opt_state, jnp.mean(losses)

  return jax.jit(run)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="nouns", help="experiments/hierarchy.py arg")
  parser.add_argument("--batch", type=int, default=50)
  parser.add_argument("--negatives", type=int, default=50)
  parser.add_argument("--update", default="retr", choices=("retr", "expmap"))
  parser.add_argument("--geometry", default="poincare")
  parser.add_argument("--row-updates", default="auto", choices=("auto", "dense", "sparse"))
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--variants", default="old,linear,new")
  args = parser.parse_args(argv)

  names = args.variants.split(",")
  tasks = {}
  for name in names:
    config = hierarchy_experiment.get_config(
        f"{args.preset},batch={args.batch},negatives={args.negatives},geometry={args.geometry},"
        f"optim.update_rule={args.update},row_updates={args.row_updates},{VARIANTS[name]}")
    tasks[name] = hierarchy.HierarchyTask(config)
  base = tasks[names[0]]
  steps = min(args.steps, base.steps_per_epoch)
  batches = jax.tree.map(lambda a: a[:steps],
                         base.epoch_batches(jax.random.key(1), base.data))
  params = base.init_params(jax.random.key(0))
  opt_state = base.optimizer.init(params)
  fns = {name: scan_fn(task, steps) for name, task in tasks.items()}
  print(f"{args.preset}: {base.num_nodes} nodes, batch {args.batch}, {args.negatives} "
        f"negatives, {args.geometry} {args.update}, sparse rows {base.sparse}, {steps} steps "
        f"per timing, "
        f"{base.steps_per_epoch} steps per epoch, device {jax.devices()[0].device_kind}")
  for name, fn in fns.items():  # compile and warm up
    jax.block_until_ready(fn(params, opt_state, batches, jax.random.key(2)))
    rows = tasks[name].rows
    print(f"  {name}: linear path {rows is not None and rows.linear}, "
          f"redraw {tasks[name].config.negatives.redraw}")

  times = {name: [] for name in names}
  for r in range(args.rounds):
    for name in (names if r % 2 == 0 else names[::-1]):
      start = time.perf_counter()
      jax.block_until_ready(fns[name](params, opt_state, batches, jax.random.key(3 + r)))
      times[name].append((time.perf_counter() - start) / steps * 1e3)
  reference = statistics.median(times[names[0]])
  print(f"{'variant':8s} {'median ms/step':>15s} {'best':>8s} {'ratio':>7s} {'s/epoch':>8s}")
  for name in names:
    median = statistics.median(times[name])
    print(f"{name:8s} {median:15.4f} {min(times[name]):8.4f} {reference / median:7.2f}x "
          f"{median * base.steps_per_epoch / 1e3:8.1f}")


if __name__ == "__main__":
  main()
