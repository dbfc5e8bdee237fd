r"""gensim ``PoincareModel`` vs embedlab on the WordNet mammal closure, same settings, same cores.

One run trains both models on the closure that ships with embedlab (1,182 nodes, 6,542
``child -> ancestor`` rows), prints seconds per epoch of each, their ratio, and the
reconstruction mean rank / MAP of both embeddings under both libraries' evaluators, and writes
everything as JSON (``--out``). Run from the repository root with the benchmark venv (see
``benchmarks/README.md``)::

  /work/benchvenv/bin/python benchmarks/gensim_poincare.py --out runs/bench/gensim_poincare.json

How the settings map (read from gensim 4.4's ``gensim/models/poincare.py``)
--------------------------------------------------------------------------

* **Batch reduction / learning rate.** gensim applies each pair's gradient as is: a batch's
  updates are the *sum* over its pairs (``_update_vectors_batch``; duplicates summed by
  ``_handle_duplicates``). embedlab's ``hierarchy_loss`` is the batch *mean*. So gensim
  ``alpha`` equals embedlab ``optim.learning_rate / batch_size``: ``--lr`` is gensim's
  ``alpha`` and embedlab runs ``learning_rate = lr * batch``.
* **Update rule.** Both: ``x <- x - alpha (1 - |x|^2)^2 / 4 * grad`` (Riemannian SGD with the
  retraction ``x - v``), then a clip into the ball: gensim rescales rows with ``|x| >= 1 - eps``
  (``epsilon=1e-5``) to ``1 - eps`` and subtracts ``eps * sign(x)``; embedlab
  (``optim.update_rule="retr"``) rescales to ``1 - 1e-5`` (float32; ``1e-10`` in float64).
* **Burn-in.** gensim runs ``burn_in`` epochs at the absolute rate ``burn_in_alpha`` *before*
  ``train(epochs)``; embedlab counts its ``burn_in_epochs`` (rate ``learning_rate *
  burn_in_multiplier``) inside ``epochs``. ``--epochs`` is the total for both: gensim gets
  ``train(epochs - burn_in)``, ``burn_in_alpha = lr * burn_in_multiplier``.
* **Loss.** The same softmax over ``{v} + negatives`` of ``-d``. gensim adds
  ``regularization_coeff * |v|^2`` for the positive ``v`` (default 1.0); embedlab has no such
  term, so it is set to 0 here (``--gensim-regularization`` to change it).
* **Negatives.** gensim draws from node counts in the relation list, ``count / sum(counts)``,
  *without* the ``^0.75`` damping of word2vec and of Nickel & Kiela's code (and of embedlab's
  ``negatives_from="unigram"``). The script therefore builds embedlab's run with
  ``negatives_from="unigram"`` and replaces the task's sampling CDF by ``count ** power``
  (``--unigram-power``, default 1.0 as gensim; 0.75 leaves embedlab's own table). Same
  counts: every closure row counts once for its child and once for its ancestor. Remaining
  differences in *how* negatives are drawn, not from which distribution: gensim redraws the
  whole set of ``K`` until it holds no ancestor of ``u`` and no duplicate (u itself may be
  drawn); embedlab draws ``K`` independently, excludes ``u`` and its ancestors, redraws only
  those, twice, and masks what is still invalid.
* **Negatives per pair, feasibility.** gensim's whole-set rejection accepts with probability
  ``P(no duplicate and no ancestor among K draws)``. On mammals two nodes (mammal.n.01,
  placental.n.01) hold 9% of the count mass each and are ancestors of almost every node, so
  acceptance is ~8% for K=10, ~0.5% for K=20 and ~1e-6 for K=50: gensim does not finish an
  epoch with K=50 (we stopped it after 10 minutes). The default here is gensim's K=10.
* **Init.** gensim: uniform in ``init_range=(-1e-3, 1e-3)`` per coordinate; embedlab:
  ``exp_0(v)``, ``v`` uniform in ``[-init_scale, init_scale]``, which equals ``v`` to a relative
  1e-6 at this scale. ``--init-scale`` sets both.
* **Batches.** Both shuffle the relations each epoch and cut them into batches of ``--batch``;
  gensim also trains the last partial batch (6,542 = 654 x 10 + 2), embedlab drops it.
* **dtype.** ``--dtype`` sets both (gensim's ``dtype=``, embedlab's ``config.dtype``).

Timing
------

Before numpy, jax or gensim are imported the process pins itself to ``--cores`` (default: every
core it may use) with ``os.sched_setaffinity`` and sets ``OMP/MKL/OPENBLAS_NUM_THREADS`` to the
number of those cores and ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=<cores > 1>``; both models
then train one after the other (``--order``) in the same process on the same cores. gensim's
training is a single-threaded Python loop; XLA may use every pinned core.

* gensim: seconds of ``model.train(...)`` (burn-in included) / epochs. Vocabulary building is
  reported separately.
* embedlab: the run is ``embedlab.train.loop.train_and_evaluate`` on a ``HierarchyTask`` built
  from ``experiments/hierarchy.py`` (the CLI's code path). Each jitted call of the loop (``k``
  epochs, ``--epochs-per-call``) is timed by wrapping ``loop.build_epoch_fn`` (the loop itself
  blocks on every call's losses, so this adds no work). The first call holds tracing and XLA
  compilation. Reported: *steady* seconds/epoch = the calls after the first, divided by their
  epochs; *with compile* = all calls / epochs; the compile estimate = first call minus one
  steady call; and the wall time of the whole ``train_and_evaluate`` (init, compile, training,
  checkpoint, its own final evaluation). Importing jax is not counted.

Evaluation
----------

Both tables go through both evaluators: ``embedlab.evals.reconstruction.reconstruction_metrics``
(directed: neighbours of ``u`` are its ancestors, as in the training rows) and gensim's
``ReconstructionEvaluation`` on a TSV of the same rows. gensim's evaluator ranks ``u`` against
*every* node, ``u`` itself included at distance 0, as a non-neighbour, so each of its ranks is
one higher (mean rank exactly +1) and each precision denominator one larger (lower MAP). The
script also runs gensim's own ranking function (``get_positive_relation_ranks_and_avg_prec``)
with ``d(u, u)`` set to ``inf``; that is embedlab's definition and must match embedlab's numbers
up to distance rounding. The two compute distances differently: embedlab's ``pairwise_dist``
through a matmul (``|x|^2 + |y|^2 - 2 x.y``), gensim through ``|x - y|`` directly. In float32 the
matmul form cancels for two points close together near the boundary (seen on seed 0: a true
distance of 0.029 computed as 0.045, next to a non-ancestor at 0.034), which can move a rank by
one; the script prints the differences.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--epochs", type=int, default=100, help="total epochs, burn-in included")
  p.add_argument("--burn-in", type=int, default=10, help="burn-in epochs (gensim burn_in)")
  p.add_argument("--burn-in-multiplier", type=float, default=0.1,
                 help="burn-in rate = lr * this (gensim default burn_in_alpha/alpha = 0.01/0.1)")
  p.add_argument("--lr", type=float, default=0.1,
                 help="gensim alpha (sum over the batch); embedlab gets lr * batch (mean)")
  p.add_argument("--dim", type=int, default=5)
  p.add_argument("--negatives", type=int, default=10)
  p.add_argument("--batch", type=int, default=10)
  p.add_argument("--init-scale", type=float, default=1e-3)
  p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
  p.add_argument("--unigram-power", type=float, default=1.0,
                 help="embedlab negatives ~ count**power; gensim uses 1.0 (fixed)")
  p.add_argument("--gensim-regularization", type=float, default=0.0,
                 help="gensim regularization_coeff (its default 1.0; embedlab has none)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--epochs-per-call", type=int, default=10,
                 help="embedlab epochs per jitted call (config.epochs_per_call)")
  p.add_argument("--cores", default=None,
                 help="CPU ids to pin to, e.g. '0,1' (default: all allowed cores)")
  p.add_argument("--order", choices=("gensim-first", "embedlab-first"), default="gensim-first")
  p.add_argument("--out", type=pathlib.Path, default=None, help="write the results as JSON here")
  args = p.parse_args(argv)
  if not 0 <= args.burn_in < args.epochs:
    p.error(f"--burn-in must lie in [0, --epochs={args.epochs}), got {args.burn_in}")
  return args


# --- pinning (must run before numpy / jax / gensim are imported) ---------------------------------
def pin(cores: str | None) -> list[int]:
  """Pins this process to ``cores`` and sizes every thread pool to match; returns the cores."""
  allowed = sorted(os.sched_getaffinity(0))
  chosen = allowed if cores is None else sorted({int(c) for c in cores.split(",")})
  if not set(chosen) <= set(allowed):
    raise SystemExit(f"--cores {cores}: not all of them are available (allowed: {allowed})")
  os.sched_setaffinity(0, chosen)
  n = str(len(chosen))
  for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS"):
    os.environ[var] = n
  multi = "true" if len(chosen) > 1 else "false"
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_cpu_multi_thread_eigen={multi}").strip()
  os.environ["JAX_PLATFORMS"] = "cpu"
  return chosen


def _cpu_model() -> str:
  for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return platform.processor() or platform.machine()


def cpu_snapshot() -> dict:
  """``{"time": wall, "procs": {pid: (cpu ticks, command)}}`` of every other process."""
  procs = {}
  for proc in pathlib.Path("/proc").iterdir():
    if not proc.name.isdigit() or int(proc.name) == os.getpid():
      continue
    with contextlib.suppress(OSError, IndexError, ValueError):
      fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
      command = " ".join((proc / "cmdline").read_text().split("\0")).strip()
      procs[int(proc.name)] = (int(fields[11]) + int(fields[12]), command[:200])  # utime+stime
  return {"time": time.perf_counter(), "procs": procs}


def other_load(before: dict, after: dict) -> dict:
  """CPU cores other processes used on average between two snapshots, and the busiest ones."""
  seconds = after["time"] - before["time"]
  hz = os.sysconf("SC_CLK_TCK")
  used = []
  for pid, (ticks, command) in after["procs"].items():
    delta = (ticks - before["procs"].get(pid, (0, ""))[0]) / hz / seconds
    if delta > 0:
      used.append((round(delta, 3), command or f"pid {pid}"))
  used.sort(reverse=True)
  return {"seconds": round(seconds, 1), "other_cores_busy": round(sum(u for u, _ in used), 2),
          "busiest": [{"cores": u, "command": c} for u, c in used[:5] if u >= 0.02],
          "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def source_revision(root: pathlib.Path) -> dict:
  """Where embedlab was imported from and, in a git checkout, its commit and local changes."""
  info = {"path": str(root)}
  git = ["git", "-C", str(root)]
  with contextlib.suppress(OSError, subprocess.CalledProcessError):
    info["commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                    check=True).stdout.strip()
    changed = subprocess.run(git + ["status", "--porcelain", "--", "embedlab", "experiments"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    info["uncommitted_changes"] = changed
  return info


# --- data -----------------------------------------------------------------------------------------
def write_tsv(closure, path: pathlib.Path) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f, delimiter="\t", lineterminator="\n")
    writer.writerows((closure.names[a], closure.names[b]) for a, b in closure.edges)


# --- gensim ---------------------------------------------------------------------------------------
def train_gensim(args, closure) -> tuple[object, dict]:
  import numpy as np
  from gensim.models.poincare import PoincareModel

  relations = [(closure.names[a], closure.names[b]) for a, b in closure.edges]
  tick = time.perf_counter()
  model = PoincareModel(
      relations, size=args.dim, alpha=args.lr, negative=args.negatives, workers=1,
      epsilon=1e-5, regularization_coeff=args.gensim_regularization, burn_in=args.burn_in,
      burn_in_alpha=args.lr * args.burn_in_multiplier,
      init_range=(-args.init_scale, args.init_scale), dtype=np.dtype(args.dtype).type,
      seed=args.seed)
  build = time.perf_counter() - tick
  tick = time.perf_counter()
  model.train(epochs=args.epochs - args.burn_in, batch_size=args.batch)
  train = time.perf_counter() - tick
  return model, {
      "build_vocab_seconds": round(build, 3), "train_seconds": round(train, 3),
      "seconds_per_epoch": train / args.epochs,
      "settings": {"size": args.dim, "alpha": args.lr, "negative": args.negatives,
                   "batch_size": args.batch, "burn_in": args.burn_in,
                   "burn_in_alpha": args.lr * args.burn_in_multiplier,
                   "train(epochs=)": args.epochs - args.burn_in,
                   "regularization_coeff": args.gensim_regularization, "epsilon": 1e-5,
                   "init_range": [-args.init_scale, args.init_scale], "dtype": args.dtype,
                   "seed": args.seed, "workers": 1}}


# --- embedlab -------------------------------------------------------------------------------------
def embedlab_config_arg(args) -> str:
  """The ``experiments/hierarchy.py`` argument (also valid on the CLI)."""
  items = {
      "dataset": "mammals", "geometry": "poincare", "curvature": 1.0, "dim": args.dim,
      "dtype": args.dtype, "init_scale": args.init_scale, "batch": args.batch,
      "negatives": args.negatives, "negatives_from": "unigram", "epochs": args.epochs,
      "burn_in": args.burn_in, "burn_in_multiplier": args.burn_in_multiplier,
      "optimizer": "rsgd", "optim.update_rule": "retr", "optim.decay": "none",
      "lr": round(args.lr * args.batch, 12), "seed": args.seed,
      "epochs_per_call": args.epochs_per_call,
      "eval_every_epochs": args.epochs, "checkpoint_every_epochs": args.epochs,
      "plot": False, "progress": False}
  return "paper," + ",".join(f"{k}={v}" for k, v in items.items())


def _load_experiment(name: str):
  # Loaded by path, as the CLI's --config flag does: experiments/ is not a package.
  spec = importlib.util.spec_from_file_location(f"experiments_{name}",
                                                REPO / "experiments" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def train_embedlab(args, workdir: pathlib.Path) -> tuple[object, object, dict]:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from embedlab.train import hierarchy
  from embedlab.train import loop

  config = _load_experiment("hierarchy").get_config(embedlab_config_arg(args))
  task = hierarchy.HierarchyTask(config)
  if args.unigram_power != 0.75:
    # HierarchyTask builds count**0.75; gensim samples count**1. Same counts, other power.
    counts = np.bincount(np.asarray(task.closure.edges).reshape(-1),
                         minlength=task.num_nodes).astype(np.float64)
    weights = counts ** args.unigram_power
    task.data["cdf"] = jnp.asarray(np.cumsum(weights) / weights.sum(), jnp.float32)

  calls = []  # seconds of each jitted call the loop makes, in order
  build_epoch_fn = loop.build_epoch_fn

  def timed_build_epoch_fn(task_, mesh, epochs_per_call):
    run_epochs = build_epoch_fn(task_, mesh, epochs_per_call)

    def timed(*call_args):
      tick = time.perf_counter()
      out = jax.block_until_ready(run_epochs(*call_args))
      calls.append(time.perf_counter() - tick)
      return out

    return timed

  loop.build_epoch_fn = timed_build_epoch_fn
  try:
    tick = time.perf_counter()
    outcome = loop.train_and_evaluate(config, workdir, task)
    wall = time.perf_counter() - tick
  finally:
    loop.build_epoch_fn = build_epoch_fn

  k = loop.chunk_epochs(config)
  if len(calls) < 2:
    raise SystemExit(f"embedlab made {len(calls)} jitted call(s); steady-state timing needs at "
                     f"least 2: raise --epochs or lower --epochs-per-call (now {k}).")
  steady = sum(calls[1:]) / (k * (len(calls) - 1))
  timing = {
      "epochs_per_call": k, "num_calls": len(calls),
      "call_seconds": [round(t, 4) for t in calls],
      "steady_seconds_per_epoch": steady,
      "seconds_per_epoch_with_compile": sum(calls) / (k * len(calls)),
      "first_call_seconds": calls[0],
      "compile_seconds_estimate": calls[0] - statistics.median(calls[1:]),
      "train_seconds_with_compile": sum(calls),
      "train_and_evaluate_wall_seconds": wall,
      "loop_train_seconds": outcome.results["train_seconds_this_run"],
      "row_updates": "sparse" if task.sparse else "dense",
      "config_arg": embedlab_config_arg(args),
      "learning_rate": config.optim.learning_rate,
      "unigram_power": args.unigram_power,
  }
  return task, outcome, timing


# --- evaluation -----------------------------------------------------------------------------------
def gensim_metrics_excluding_self(evaluation) -> dict:
  """gensim's own per-node ranking with ``d(u, u) = inf``: embedlab's definition."""
  import numpy as np
  from gensim.models.poincare import ReconstructionEvaluation

  ranks, average_precisions = [], []
  kv = evaluation.embedding
  for item in evaluation.items:
    if item not in evaluation.relations:
      continue
    distances = np.array(kv.distances(kv.index_to_key[item]), dtype=np.float64)
    distances[item] = np.inf
    r, ap = ReconstructionEvaluation.get_positive_relation_ranks_and_avg_prec(
        distances, list(evaluation.relations[item]))
    ranks += r
    average_precisions.append(ap)
  return {"mean_rank": float(np.mean(ranks)), "map": float(np.mean(average_precisions))}


def evaluate_both(name: str, vectors, closure, tsv: pathlib.Path) -> dict:
  """Both evaluators on a ``[N, D]`` table whose row ``i`` is ``closure.names[i]``."""
  import numpy as np
  from embedlab import geometry
  from embedlab.evals.reconstruction import reconstruction_metrics
  from gensim.models.poincare import PoincareKeyedVectors, ReconstructionEvaluation

  vectors = np.asarray(vectors)
  ours = reconstruction_metrics(vectors, closure.edges, manifold=geometry.get("poincare"),
                                num_nodes=closure.num_nodes)
  kv = PoincareKeyedVectors(vectors.shape[1], 0, dtype=vectors.dtype)
  kv.add_vectors(list(closure.names), vectors)
  evaluation = ReconstructionEvaluation(str(tsv), kv)
  theirs = evaluation.evaluate()
  theirs_no_self = gensim_metrics_excluding_self(evaluation)
  return {
      "table": name,
      "embedlab_evaluator": {"mean_rank": ours["mean_rank"], "map": ours["map"],
                             "num_queries": ours["num_queries"], "num_pairs": ours["num_pairs"]},
      "gensim_evaluator": {"mean_rank": float(theirs["mean_rank"]), "map": float(theirs["MAP"])},
      "gensim_evaluator_excluding_self": theirs_no_self,
      "agreement": {
          "gensim_mean_rank_minus_embedlab": float(theirs["mean_rank"]) - ours["mean_rank"],
          "abs_diff_mean_rank_excluding_self": abs(theirs_no_self["mean_rank"] -
                                                   ours["mean_rank"]),
          "abs_diff_map_excluding_self": abs(theirs_no_self["map"] - ours["map"])},
  }


# --- report ---------------------------------------------------------------------------------------
def _describe_source(info: dict) -> str:
  if "commit" not in info:
    return f"{info['path']} (not a git checkout)"
  changed = len(info["uncommitted_changes"])
  return (f"{info['path']} at {info['commit'][:12]}"
          + (f" with {changed} uncommitted file(s) in embedlab/ or experiments/" if changed
             else ", clean"))


def report(results: dict) -> str:
  g, e = results["gensim"], results["embedlab"]
  r = results["ratio"]
  s = results["settings"]
  lines = [
      f"machine: {results['machine']['cpu_model']}, pinned to cores {results['machine']['cores']}"
      f" of {results['machine']['cpu_count']}; jax {results['versions']['jax']}, gensim "
      f"{results['versions']['gensim']}, numpy {results['versions']['numpy']}",
      *(f"other processes while {name} trained: {run['load_while_training']['other_cores_busy']}"
        f" cores busy on average over {run['load_while_training']['seconds']} s (load average "
        f"{run['load_while_training']['loadavg_1_5_15']})" for name, run in (("gensim", g),
                                                                          ("embedlab", e))),
      f"settings: dim {s['dim']}, {s['negatives']} negatives, batch {s['batch']}, {s['epochs']} "
      f"epochs incl. {s['burn_in']} burn-in at lr x {s['burn_in_multiplier']}, gensim alpha "
      f"{s['lr']} (sum) = embedlab lr {e['timing']['learning_rate']:g} (mean), negatives ~ "
      f"count^{s['unigram_power']}, {s['dtype']}, seed {s['seed']}",
      f"embedlab: {_describe_source(results['embedlab_source'])}",
      f"embedlab config: experiments/hierarchy.py:{e['timing']['config_arg']}",
      "",
      "seconds per epoch",
      f"  gensim                        {g['timing']['seconds_per_epoch']:9.4f}   "
      f"(train {g['timing']['train_seconds']:.1f} s; build_vocab "
      f"{g['timing']['build_vocab_seconds']:.2f} s not included)",
      f"  embedlab steady state         {e['timing']['steady_seconds_per_epoch']:9.4f}   "
      f"({e['timing']['num_calls'] - 1} jitted calls x {e['timing']['epochs_per_call']} epochs"
      f" after the first; {e['timing']['row_updates']} row updates)",
      f"  embedlab incl. compile        {e['timing']['seconds_per_epoch_with_compile']:9.4f}   "
      f"(all calls {e['timing']['train_seconds_with_compile']:.2f} s; compile ~"
      f"{e['timing']['compile_seconds_estimate']:.2f} s)",
      f"  embedlab train_and_evaluate   {e['timing']['train_and_evaluate_wall_seconds']:9.2f} s "
      f"wall (init, compile, train, checkpoint, its final eval)",
      f"ratio gensim / embedlab: {r['steady']:.1f}x steady state, {r['with_compile']:.1f}x "
      f"including compile, {r['end_to_end']:.1f}x gensim train vs embedlab "
      f"train_and_evaluate wall",
      "",
      f"reconstruction after {s['epochs']} epochs (directed: neighbours = ancestors)",
      f"  {'evaluator':<44} {'embedlab table':>22} {'gensim table':>22}",
  ]
  rows = [("embedlab reconstruction_metrics", "embedlab_evaluator"),
          ("gensim ReconstructionEvaluation (as shipped)", "gensim_evaluator"),
          ("gensim ranking with d(u,u)=inf", "gensim_evaluator_excluding_self")]
  for label, key in rows:
    cells = [f"MR {m[key]['mean_rank']:7.4f} MAP {m[key]['map']:.4f}"
             for m in (e["metrics"], g["metrics"])]
    lines.append(f"  {label:<44} {cells[0]:>22} {cells[1]:>22}")
  for m in (e["metrics"], g["metrics"]):
    a = m["agreement"]
    lines.append(
        f"  {m['table']} table: gensim-as-shipped MR - embedlab MR = "
        f"{a['gensim_mean_rank_minus_embedlab']:.6f} (u counted as its own non-neighbour); "
        f"with u excluded |dMR| = {a['abs_diff_mean_rank_excluding_self']:.2e}, |dMAP| = "
        f"{a['abs_diff_map_excluding_self']:.2e}")
  return "\n".join(lines)


def main(argv=None) -> dict:
  args = parse_args(argv)
  cores = pin(args.cores)
  # Benchmark the embedlab of this checkout, even where the venv holds an editable install of
  # another one (its finder comes after sys.path).
  sys.path.insert(0, str(REPO))
  # Heavy imports only after pinning, so every thread pool sees the pinned cores.
  import embedlab
  import gensim
  import jax
  import numpy as np
  from embedlab import data

  if args.dtype == "float64":
    # Process-wide, as embedlab.main does for a float64 config: the task only checks it is on.
    jax.config.update("jax_enable_x64", True)

  closure = data.mammal_closure()
  results = {"settings": {k: (str(v) if isinstance(v, pathlib.Path) else v)
                          for k, v in vars(args).items()},
             "machine": {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
                         "cores": cores, "platform": platform.platform(),
                         "xla_flags": os.environ["XLA_FLAGS"]},
             "versions": {"python": sys.version.split()[0], "jax": jax.__version__,
                          "gensim": gensim.__version__, "numpy": np.__version__},
             "embedlab_source": source_revision(pathlib.Path(embedlab.__file__).parents[1])}
  print(f"mammals closure: {closure.num_nodes} nodes, {closure.num_edges} rows; cores {cores}",
        flush=True)

  with tempfile.TemporaryDirectory(prefix="gensim_poincare_") as tmp:
    tmp = pathlib.Path(tmp)
    tsv = tmp / "mammal_closure.tsv"
    write_tsv(closure, tsv)
    runs = {}
    for which in (("gensim", "embedlab") if args.order == "gensim-first"
                  else ("embedlab", "gensim")):
      print(f"training {which} ...", flush=True)
      before = cpu_snapshot()
      if which == "gensim":
        model, timing = train_gensim(args, closure)
        index = model.kv.key_to_index
        vectors = np.stack([model.kv.vectors[index[n]] for n in closure.names])
      else:
        task, outcome, timing = train_embedlab(args, tmp / "embedlab_workdir")
        vectors = task.embeddings(outcome.params)
        timing["loop_final_eval"] = outcome.results.get("metrics")
      runs[which] = {"timing": timing, "vectors": vectors,
                     "load_while_training": other_load(before, cpu_snapshot())}
    for which, run in runs.items():
      run["metrics"] = evaluate_both(which, run.pop("vectors"), closure, tsv)

  results["gensim"], results["embedlab"] = runs["gensim"], runs["embedlab"]
  g, e = runs["gensim"]["timing"], runs["embedlab"]["timing"]
  results["ratio"] = {
      "steady": g["seconds_per_epoch"] / e["steady_seconds_per_epoch"],
      "with_compile": g["seconds_per_epoch"] / e["seconds_per_epoch_with_compile"],
      "end_to_end": g["train_seconds"] / e["train_and_evaluate_wall_seconds"]}
  print(report(results))
  if args.out is not None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=float))
    print(f"results: {args.out}")
  return results


if __name__ == "__main__":
  main()
