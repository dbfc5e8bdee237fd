r"""pytorch-metric-learning ``AccuracyCalculator`` vs embedlab ``retrieval_metrics``: time, memory.

One run builds ``--n`` (20,000) labelled embeddings of ``--dim`` (128), ``--classes`` (100) equal
classes (Gaussian clusters, float32, ``--seed`` 0), lets every point query all the others
(query set == reference set, the query itself excluded) and computes Precision@1, R-precision
and MAP@R with both libraries. Each library runs in its own subprocess, pinned to the same
cores, so that neither's imports, thread pools or allocator state affect the other's memory or
time. Run from the repository root with the benchmark venv (see ``benchmarks/README.md``)::

  /work/benchvenv/bin/python benchmarks/pml_retrieval.py --threads 2

``--reference`` instead prints PML's values on the small example that
``tests/evals/test_retrieval_pml.py`` checks embedlab against.

What is compared
----------------

* embedlab: ``embedlab.evals.retrieval.retrieval_metrics(x, labels, recall_ks=(1,))``
  (Euclidean; ``recall_ks=(1,)`` so that ``k`` is ``R_max`` as in PML, not ``max(R_max, 8)``),
  called on the NumPy arrays: the host-to-device copy is timed.
* PML: ``AccuracyCalculator(include=("precision_at_1", "r_precision",
  "mean_average_precision_at_r"), k="max_bin_count")`` (its default ``FaissKNN``: an exact
  ``faiss.IndexFlatL2``), ``get_accuracy(x, labels)`` with the reference omitted, which means
  query == reference with ``ref_includes_query=True``: faiss searches ``k = R_max + 1``
  neighbours and PML drops the first column (the query itself). Its defaults match embedlab's
  definitions: the mean over queries (``avg_of_avgs=False``), "lone" queries (no other point of
  their label) skipped, ``R`` = the count of the query's label minus one. Both rank by squared
  / plain Euclidean distance, the same order. faiss's dropping of column 0 assumes the query is
  its own nearest neighbour, true here (no duplicate points).

Measurements
------------

Each subprocess pins itself (``gensim_poincare.pin``: ``sched_setaffinity`` to ``--threads``
cores, ``OMP/MKL/OPENBLAS_NUM_THREADS``; torch additionally gets ``torch.set_num_threads``),
imports its library, builds the data, and then:

* **time**: a first call (embedlab: tracing + XLA compilation; PML: faiss's first index), then
  ``--repeats`` timed calls; the subprocess reports their median. ``--rounds`` subprocess pairs
  run, alternating which library goes first; the table shows the median over rounds and the
  spread of the round medians.
* **peak memory**: ``VmHWM`` (peak resident set) from ``/proc/self/status`` minus ``VmRSS``
  just before the call, after imports and data. *first call* is the extra peak of the first
  call (compilation included); *steady* is the extra peak of the timed calls, measured after
  resetting the high-water mark to the current RSS (``echo 5 > /proc/self/clear_refs``).
  Both are the memory the metric computation itself adds on top of the process holding the
  embeddings.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time

import gensim_poincare as common  # stdlib-only helpers: pinning, CPU model, load probes
import pml_losses  # stdlib-only at import: the shared --threads/--cores pinning

METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")
EMBEDLAB_NAMES = {"precision_at_1": "precision_at_1", "r_precision": "r_precision",
                  "mean_average_precision_at_r": "map_at_r"}
# The small example of tests/evals/test_retrieval_pml.py: class sizes (some lone / small
# classes included), dimension, cluster spread, seed.
REFERENCE_SIZES = (1, 2, 5, 13, 21, 28, 34, 40, 46, 50, 60)
REFERENCE_DIM = 16
REFERENCE_SPREAD = 1.2
REFERENCE_SEED = 4


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  pml_losses.add_pinning_args(p)
  p.add_argument("--n", type=int, default=20_000)
  p.add_argument("--dim", type=int, default=128)
  p.add_argument("--classes", type=int, default=100)
  p.add_argument("--spread", type=float, default=1.5,
                 help="within-class standard deviation (class centres have 1)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--repeats", type=int, default=3, help="timed calls per subprocess")
  p.add_argument("--rounds", type=int, default=3, help="subprocess pairs")
  p.add_argument("--chunk-size", type=int, default=None, help="embedlab chunk_size")
  p.add_argument("--reference", action="store_true",
                 help="print PML's values on the test's small example and exit")
  p.add_argument("--worker", choices=("embedlab", "pml"), help=argparse.SUPPRESS)
  return p.parse_args(argv)


def clustered(rng, sizes, dim, spread):
  """Gaussian clusters: centres ``N(0, I)``, points ``centre + spread * N(0, I)``, float32."""
  import numpy as np

  labels = np.repeat(np.arange(len(sizes)), sizes)
  centres = rng.standard_normal((len(sizes), dim))
  points = centres[labels] + spread * rng.standard_normal((labels.size, dim))
  return points.astype(np.float32), labels


def _status_kib(field: str) -> int:
  with open("/proc/self/status") as f:
    return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


def _reset_peak() -> None:
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")


def _library(name: str, threads: int, chunk_size):
  """``(compute(x, labels) -> {metric: value}, versions)`` of one library."""
  if name == "embedlab":
    import jax

    from embedlab.evals import retrieval

    def compute(x, labels):
      out = retrieval.retrieval_metrics(x, labels, recall_ks=(1,), chunk_size=chunk_size)
      return {m: out[EMBEDLAB_NAMES[m]] for m in METRICS}

    return compute, {"jax": jax.__version__}
  import faiss
  import torch

  import pytorch_metric_learning
  from pytorch_metric_learning.utils import accuracy_calculator

  torch.set_num_threads(threads)
  calculator = accuracy_calculator.AccuracyCalculator(include=METRICS, k="max_bin_count")

  def compute(x, labels):
    return {m: float(v) for m, v in calculator.get_accuracy(x, labels).items()}

  return compute, {"torch": torch.__version__, "faiss": faiss.__version__,
                   "pytorch-metric-learning": pytorch_metric_learning.__version__}


def worker(args) -> None:
  """One library in this process: prints one JSON line of times, peaks and values."""
  import numpy as np

  sizes = [args.n // args.classes] * args.classes
  x, labels = clustered(np.random.default_rng(args.seed), sizes, args.dim, args.spread)
  compute, versions = _library(args.worker, args.threads, args.chunk_size)
  base = _status_kib("VmRSS")
  tick = time.perf_counter()
  values = compute(x, labels)
  first = time.perf_counter() - tick
  first_peak = _status_kib("VmHWM") - base
  _reset_peak()
  base = _status_kib("VmRSS")
  times = []
  for _ in range(args.repeats):
    tick = time.perf_counter()
    compute(x, labels)
    times.append(time.perf_counter() - tick)
  steady_peak = _status_kib("VmHWM") - base
  print(json.dumps({"library": args.worker, "first_seconds": first,
                    "seconds": statistics.median(times), "all_seconds": times,
                    "first_peak_mib": first_peak / 1024, "steady_peak_mib": steady_peak / 1024,
                    "values": values, "versions": versions}))


def run_worker(args, library: str) -> dict:
  cmd = [sys.executable, __file__, "--worker", library] + [
      f"--{k}={v}" for k, v in (("threads", args.threads), ("n", args.n), ("dim", args.dim),
                                ("classes", args.classes), ("spread", args.spread),
                                ("seed", args.seed), ("repeats", args.repeats))]
  if args.cores:
    cmd.append(f"--cores={args.cores}")
  if args.chunk_size:
    cmd.append(f"--chunk-size={args.chunk_size}")
  out = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if out.returncode:
    raise SystemExit(f"{library} worker failed:\n{out.stderr}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def exact_metrics(queries, query_labels, reference, reference_labels, exclude_self: bool):
  """``(metrics, gap)``: the three metrics from float64 distances (NumPy brute force), and the
  smallest relative gap between consecutive neighbours of a query that differ in relevance
  (within the ``R_max`` nearest), i.e. the only swaps float32 rounding could make that change a
  metric."""
  import numpy as np

  q, ref = queries.astype(np.float64), reference.astype(np.float64)
  d = np.sqrt(np.sum((q[:, None] - ref[None]) ** 2, axis=-1))
  if exclude_self:
    np.fill_diagonal(d, np.inf)
  r = np.sum(reference_labels[None, :] == query_labels[:, None], axis=1) - int(exclude_self)
  window = r.max()
  order = np.argsort(d, axis=1)[:, :window]
  near = np.take_along_axis(d, order, axis=1)
  relevant = reference_labels[order] == query_labels[:, None]
  flips = relevant[:, 1:] != relevant[:, :-1]
  gap = float(np.min((np.diff(near, axis=1) / near[:, 1:])[flips]))
  scored = r > 0
  within = np.arange(1, window + 1)[None, :] <= r[:, None]
  hits = np.cumsum(relevant, axis=1) / np.arange(1, window + 1)
  rs = np.maximum(r, 1)
  values = {"precision_at_1": relevant[:, 0],
            "r_precision": np.sum(relevant & within, axis=1) / rs,
            "mean_average_precision_at_r": np.sum(hits * (relevant & within), axis=1) / rs}
  return {m: float(np.mean(v[scored])) for m, v in values.items()}, gap


def reference() -> None:
  """PML's values on the small example of ``tests/evals/test_retrieval_pml.py``.

  Two settings: every point queries all the others (``get_accuracy(x, labels)``), and every
  third point (rows 0, 3, 6, ...) queries the other two thirds (``ref_includes_query=False``).
  """
  import numpy as np
  from pytorch_metric_learning.utils import accuracy_calculator

  x, labels = clustered(np.random.default_rng(REFERENCE_SEED), REFERENCE_SIZES, REFERENCE_DIM,
                        REFERENCE_SPREAD)
  calculator = accuracy_calculator.AccuracyCalculator(include=METRICS, k="max_bin_count")
  is_query = np.arange(len(labels)) % 3 == 0
  split = (x[is_query], labels[is_query], x[~is_query], labels[~is_query], False)
  settings = {"SELF": ((x, labels), (x, labels, x, labels, True)), "SPLIT": (split, split)}
  _, versions = _library("pml", 1, None)
  print(f"# {len(labels)} x {REFERENCE_DIM}, class sizes {REFERENCE_SIZES}, spread "
        f"{REFERENCE_SPREAD}, seed {REFERENCE_SEED}; {versions}")
  for setting, (pml_args, exact_args) in settings.items():
    exact, gap = exact_metrics(*exact_args)
    print(f"# {setting}: smallest relative float64 gap between a relevant and an irrelevant "
          f"neighbour adjacent in a query's ranking: {gap:.1e}")
    print(f"PML_{setting} = {{  # |PML - float64 NumPy brute force| in the comments")
    for name, value in calculator.get_accuracy(*pml_args).items():
      print(f"    {name!r}: {float(value)!r},  # {abs(value - exact[name]):.1e}")
    print("}")


def main(argv=None) -> None:
  args = parse_args(argv)
  chosen = pml_losses.pin_threads(args)
  if args.worker:
    worker(args)
    return
  if args.reference:
    reference()
    return
  print(f"CPU {common._cpu_model()}, each library in its own subprocess pinned to cores "
        f"{chosen} ({args.threads} threads)")
  print(f"{args.n} x {args.dim} float32, {args.classes} classes of {args.n // args.classes}, "
        f"spread {args.spread}, seed {args.seed}; query set == reference set; "
        f"{args.rounds} rounds x {args.repeats} timed calls")
  runs = {"embedlab": [], "pml": []}
  before = common.cpu_snapshot()
  for r in range(args.rounds):
    for library in (("embedlab", "pml") if r % 2 == 0 else ("pml", "embedlab")):
      runs[library].append(run_worker(args, library))
  load = common.other_load(before, common.cpu_snapshot())

  def med(library, key):
    return statistics.median(run[key] for run in runs[library])

  e, p = runs["embedlab"][0], runs["pml"][0]
  print(f"versions: {e['versions']} {p['versions']}")
  print()
  print(f"{'':<10} {'seconds':>8} {'spread':>13} {'first call s':>12} "
        f"{'peak MiB first':>14} {'peak MiB steady':>15}")
  for library, name in (("embedlab", "embedlab"), ("pml", "PML")):
    seconds = [run["seconds"] for run in runs[library]]
    print(f"{name:<10} {med(library, 'seconds'):>8.3f} "
          f"{min(seconds):>6.3f}-{max(seconds):<6.3f} {med(library, 'first_seconds'):>12.3f} "
          f"{med(library, 'first_peak_mib'):>14.1f} {med(library, 'steady_peak_mib'):>15.1f}")
  print(f"ratio PML / embedlab: time {med('pml', 'seconds') / med('embedlab', 'seconds'):.2f}x, "
        f"steady peak memory "
        f"{med('pml', 'steady_peak_mib') / max(med('embedlab', 'steady_peak_mib'), 1e-9):.2f}x")
  print()
  print(f"{'metric':<28} {'embedlab':>12} {'PML':>12} {'abs diff':>9}")
  worst = 0.0
  for m in METRICS:
    diff = abs(e["values"][m] - p["values"][m])
    worst = max(worst, diff)
    print(f"{m:<28} {e['values'][m]:>12.8f} {p['values'][m]:>12.8f} {diff:>9.1e}")
  print(f"max abs difference {worst:.1e} ({'<=' if worst <= 1e-6 else '>'} 1e-6)")
  print(f"peak MiB: VmHWM minus VmRSS before the call (imports and data excluded); first = first "
        f"call incl. compilation, steady = the timed calls after a high-water-mark reset")
  print(f"other processes kept {load['other_cores_busy']} cores busy on average over the "
        f"{load['seconds']} s (load average {load['loadavg_1_5_15']})")


if __name__ == "__main__":
  sys.exit(main())
