r"""pytorch-metric-learning vs embedlab: forward + backward of five metric-learning losses.

One run builds one batch (``--batch`` 256 embeddings of ``--dim`` 128, ``--classes`` 32 classes
of equal size, float32, ``--seed`` 0) and one ``[classes, dim]`` proxy / class-weight matrix,
then times, for each loss, one forward + backward pass of each library on the same arrays: the
gradient with respect to the embeddings and, for the proxy losses, the proxies. Run from the
repository root with the benchmark venv (see ``benchmarks/README.md``)::

  /work/benchvenv/bin/python benchmarks/pml_losses.py --threads 2

It prints one row per loss: embedlab and PML milliseconds per step, their ratio (PML /
embedlab: above 1 means embedlab is faster), embedlab's compile time, both loss values with
their relative difference, and the relative difference of the gradients.

What is compared (both sides start from the same raw, unnormalised embeddings)
------------------------------------------------------------------------------

* **triplet_batch_hard**: embedlab ``losses.metric.triplet_loss(mining="batch_hard",
  margin=0.2)`` (Euclidean distances) vs PML ``TripletMarginLoss(margin=0.2)`` fed by
  ``BatchHardMiner``. PML's default distance L2-normalises the embeddings and its default
  reducer averages the non-zero triplets only; here both get ``LpDistance(
  normalize_embeddings=False)`` and the loss gets ``MeanReducer`` (embedlab's mean over anchors
  that have a positive and a negative), so the two compute the same function. The miner runs
  inside the timed PML step, as in training.
* **multi_similarity**, **proxy_anchor**, **ntxent**, **arcface**: PML's ``CosineSimilarity``
  (and ArcFace's own normalisation of ``W``) L2-normalises the embeddings and proxies inside
  the loss. embedlab's cosine losses work on the unit sphere (``manifold=sphere``, points of
  norm 1; its proxy losses project the proxies themselves), so the timed embedlab function is
  ``loss(x / |x|, labels, proxies)``: the normalisation is timed and differentiated on both
  sides, and both gradients are taken w.r.t. the same raw ``x`` and proxies.
  Hyperparameters are PML's defaults: multi-similarity ``alpha=2, beta=50, base=0.5`` (all
  pairs, no miner); Proxy-Anchor ``margin=0.1, alpha=32``; NT-Xent ``temperature=0.07`` with
  label-defined positives; ArcFace ``scale=64`` and a margin of 0.5 rad (PML takes degrees:
  ``degrees(0.5) = 28.65``, PML's default is 28.6). PML's ArcFace stores ``W`` as
  ``[dim, classes]``; it gets the transpose of the shared matrix.
* **ntxent_2views**: NT-Xent again, with SimCLR's labels (``B / 2`` classes of two views, one
  positive per anchor) instead of 32 classes of 8. PML's ``NTXentLoss`` builds a
  ``[positive pairs, negative pairs]`` mask (``GenericPairLoss``): with 8 per class that is
  1,792 x 63,488 entries per step, which is what its time in the ``ntxent`` row measures.

A loss whose embedlab function does not exist yet is skipped ("not yet in embedlab").

Timing
------

Before torch, jax or numpy are imported, the process pins itself to ``--threads`` cores (the
first allowed ones, or ``--cores``) with ``os.sched_setaffinity`` and sets
``OMP/MKL/OPENBLAS_NUM_THREADS`` to that count and ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=
true`` (``gensim_poincare.pin``); torch then gets ``torch.set_num_threads(threads)``. XLA's CPU
client sizes its thread pool from the affinity mask. (jax 0.10 has no XLA flag for the
intra-op thread count: ``--intra_op_parallelism_threads`` in ``XLA_FLAGS`` aborts with "Unknown
flag", and the same text without dashes is silently ignored.)

* embedlab: ``jax.jit(jax.value_and_grad(f, argnums=...))``, each call followed by
  ``jax.block_until_ready``. The first call (tracing + XLA compilation) is reported separately
  as *compile* and is not in the step time.
* PML: ``loss = loss_fn(x, labels[, miner(x, labels)])`` then ``loss.backward()``, the leaf
  gradients reset to ``None`` before each step; two warm-up steps are not timed.
* Rounds: for each of ``--rounds`` rounds, each loss runs ``--repeats`` timed steps of one
  library, then of the other (the order alternates between rounds), each step timed on its
  own. A round's value is the median of its steps; the table shows the median over rounds and
  the spread (min-max of the round medians), so a burst of load from another process shows up
  as spread rather than silently moving the result. The CPU time other processes used during
  the run is printed too.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import statistics
import sys
import time

import gensim_poincare as common  # stdlib-only helpers: pinning, CPU model, load probes

LOSSES = ("triplet_batch_hard", "multi_similarity", "proxy_anchor", "ntxent", "ntxent_2views",
          "arcface")


def add_pinning_args(p: argparse.ArgumentParser) -> None:
  p.add_argument("--threads", type=int, default=2, help="cores pinned and threads per library")
  p.add_argument("--cores", default=None,
                 help="CPU ids to pin to, e.g. '0,1' (default: the first --threads allowed)")


def pin_threads(args) -> list[int]:
  """Pins to ``--cores`` (default the first ``--threads`` allowed cores); before any import."""
  allowed = sorted(os.sched_getaffinity(0))
  cores = args.cores or ",".join(str(c) for c in allowed[:args.threads])
  chosen = common.pin(cores)
  if len(chosen) != args.threads:
    raise SystemExit(f"--cores {cores} gives {len(chosen)} cores but --threads {args.threads}")
  return chosen


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  add_pinning_args(p)
  p.add_argument("--batch", type=int, default=256)
  p.add_argument("--dim", type=int, default=128)
  p.add_argument("--classes", type=int, default=32)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--repeats", type=int, default=30, help="timed steps per library per round")
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--budget", type=float, default=1.0,
                 help="seconds after which a library's round stops early (at least 3 steps)")
  p.add_argument("--losses", default=",".join(LOSSES), help="comma-separated subset")
  args = p.parse_args(argv)
  args.losses = tuple(args.losses.split(","))
  unknown = set(args.losses) - set(LOSSES)
  if unknown:
    p.error(f"unknown losses {sorted(unknown)}; choose from {LOSSES}")
  if args.batch % args.classes:
    p.error("--batch must be a multiple of --classes (equal class sizes)")
  return args


def make_inputs(args):
  """``(embeddings [B, D], labels [B] int32, proxies [C, D])``, float32, from ``--seed``."""
  import numpy as np

  rng = np.random.default_rng(args.seed)
  embeddings = rng.standard_normal((args.batch, args.dim)).astype(np.float32)
  labels = rng.permutation(np.arange(args.batch) % args.classes).astype(np.int32)
  proxies = rng.standard_normal((args.classes, args.dim)).astype(np.float32)
  return embeddings, labels, proxies


# --- the two sides of each loss -------------------------------------------------------------------
def embedlab_loss(name: str, args):
  """``(f(x, proxies), argnums)`` or ``None`` if the embedlab function does not exist yet."""
  import jax.numpy as jnp

  from embedlab.geometry import sphere

  def find(module: str, fn: str):
    try:
      mod = __import__(f"embedlab.losses.{module}", fromlist=[fn])
    except ImportError:
      return None
    return getattr(mod, fn, None)

  def unit(x):
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

  sph = sphere.MANIFOLD
  if name == "triplet_batch_hard":
    fn = find("metric", "triplet_loss")
    return fn and (lambda x, w, y: fn(x, y, margin=0.2, mining="batch_hard"), 0)
  if name == "multi_similarity":
    fn = find("metric", "multi_similarity_loss")
    return fn and (lambda x, w, y: fn(unit(x), y, manifold=sph, alpha=2.0, beta=50.0,
                                      base=0.5), 0)
  if name == "proxy_anchor":
    fn = find("proxy", "proxy_anchor_loss")
    return fn and (lambda x, w, y: fn(unit(x), y, w, manifold=sph, margin=0.1, alpha=32.0),
                   (0, 1))
  if name in ("ntxent", "ntxent_2views"):
    fn = find("contrastive", "ntxent_loss")
    return fn and (lambda x, w, y: fn(unit(x), y, manifold=sph, temperature=0.07), 0)
  if name == "arcface":
    fn = find("proxy", "arcface_loss")
    return fn and (lambda x, w, y: fn(unit(x), y, w, manifold=sph, margin=0.5, scale=64.0),
                   (0, 1))
  raise ValueError(name)


def pml_loss(name: str, args, proxies):
  """``(step(x, labels) -> loss, parameter or None)``: PML's loss, configured as the docstring."""
  import torch
  from pytorch_metric_learning import distances, losses, miners, reducers

  if name == "triplet_batch_hard":
    dist = distances.LpDistance(normalize_embeddings=False)
    loss_fn = losses.TripletMarginLoss(margin=0.2, distance=dist, reducer=reducers.MeanReducer())
    miner = miners.BatchHardMiner(distance=dist)
    return (lambda x, y: loss_fn(x, y, miner(x, y))), None
  if name == "multi_similarity":
    loss_fn = losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)
    return loss_fn, None
  if name in ("ntxent", "ntxent_2views"):
    return losses.NTXentLoss(temperature=0.07), None
  if name == "proxy_anchor":
    loss_fn = losses.ProxyAnchorLoss(args.classes, args.dim, margin=0.1, alpha=32)
    with torch.no_grad():
      loss_fn.proxies.copy_(torch.from_numpy(proxies))
    return loss_fn, loss_fn.proxies
  if name == "arcface":
    loss_fn = losses.ArcFaceLoss(args.classes, args.dim, margin=math.degrees(0.5), scale=64)
    with torch.no_grad():
      loss_fn.W.copy_(torch.from_numpy(proxies.T.copy()))
    return loss_fn, loss_fn.W
  raise ValueError(name)


# --- timing ---------------------------------------------------------------------------------------
def time_steps(step, repeats: int, budget: float) -> float:
  """Median seconds of ``repeats`` calls of ``step`` (fewer, at least 3, past ``budget`` s)."""
  times = []
  while len(times) < repeats and (len(times) < 3 or sum(times) < budget):
    tick = time.perf_counter()
    step()
    times.append(time.perf_counter() - tick)
  return statistics.median(times)


def labels_for(name: str, labels, batch: int):
  """The batch labels, or for ``ntxent_2views`` SimCLR's: ``B / 2`` classes of two views."""
  import numpy as np

  if name == "ntxent_2views":
    return np.tile(np.arange(batch // 2, dtype=np.int32), 2)
  return labels


def rel_diff(a, b) -> float:
  import numpy as np

  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main(argv=None) -> None:
  args = parse_args(argv)
  chosen = pin_threads(args)

  import jax
  import numpy as np
  import torch

  import pytorch_metric_learning

  torch.set_num_threads(args.threads)
  torch.set_num_interop_threads(args.threads)
  x_np, y_np, w_np = make_inputs(args)

  print(f"CPU {common._cpu_model()}, pinned to cores {chosen} ({args.threads} threads each); "
        f"jax {jax.__version__}, torch {torch.__version__}, "
        f"pytorch-metric-learning {pytorch_metric_learning.__version__}")
  print(f"batch {args.batch} x {args.dim}, {args.classes} classes, float32, seed {args.seed}; "
        f"{args.rounds} rounds x {args.repeats} steps per library")

  rows, skipped = {}, []
  benches = {}
  for name in args.losses:
    spec = embedlab_loss(name, args)
    if not spec:
      skipped.append(name)
      continue
    fn, argnums = spec
    labels = labels_for(name, y_np, args.batch)
    x, w, y = (jax.numpy.asarray(a) for a in (x_np, w_np, labels))
    jitted = jax.jit(jax.value_and_grad(fn, argnums=argnums))
    tick = time.perf_counter()
    value, grads = jax.block_until_ready(jitted(x, w, y))
    compile_seconds = time.perf_counter() - tick
    grads = grads if isinstance(grads, tuple) else (grads,)

    pml_fn, param = pml_loss(name, args, w_np)
    xt = torch.from_numpy(x_np.copy()).requires_grad_(True)
    yt = torch.from_numpy(labels.astype(np.int64))

    def pml_step(pml_fn=pml_fn, param=param, xt=xt, yt=yt):
      xt.grad = None
      if param is not None:
        param.grad = None
      loss = pml_fn(xt, yt)
      loss.backward()
      return loss

    pml_value = float(pml_step().detach())
    pml_step()
    pml_grads = [xt.grad.numpy()] + ([] if param is None else [
        param.grad.numpy().T if name == "arcface" else param.grad.numpy()])
    grad_diff = max(rel_diff(g, pg) for g, pg in zip(grads, pml_grads))
    rows[name] = {"compile": compile_seconds, "embedlab_value": float(value),
                  "pml_value": pml_value, "grad_rel_diff": grad_diff, "embedlab": [], "pml": []}
    benches[name] = (lambda jitted=jitted, x=x, w=w, y=y:
                     jax.block_until_ready(jitted(x, w, y))), pml_step

  before = common.cpu_snapshot()
  for r in range(args.rounds):
    for name, (embedlab_step, pml_step) in benches.items():
      order = (("embedlab", embedlab_step), ("pml", pml_step))
      for lib, step in (order if r % 2 == 0 else order[::-1]):
        rows[name][lib].append(time_steps(step, args.repeats, args.budget))
  load = common.other_load(before, common.cpu_snapshot())

  print()
  header = (f"{'loss':<20} {'embedlab ms':>11} {'PML ms':>8} {'PML/embedlab':>12} "
            f"{'compile s':>9}  {'embedlab loss':>13} {'PML loss':>11} {'rel diff':>8} "
            f"{'grad diff':>9}")
  print(header)
  print("-" * len(header))
  for name, row in rows.items():
    e, t = statistics.median(row["embedlab"]), statistics.median(row["pml"])
    diff = abs(row["embedlab_value"] - row["pml_value"]) / max(abs(row["pml_value"]), 1e-30)
    print(f"{name:<20} {e * 1e3:>11.3f} {t * 1e3:>8.3f} {t / e:>11.2f}x "
          f"{row['compile']:>9.2f}  {row['embedlab_value']:>13.6g} {row['pml_value']:>11.6g} "
          f"{diff:>8.1e} {row['grad_rel_diff']:>9.1e}")
  for name in skipped:
    print(f"{name:<20} not yet in embedlab")
  print()
  print("spread over rounds (min-max of the per-round medians, ms):")
  for name, row in rows.items():
    print(f"  {name:<20} embedlab {min(row['embedlab']) * 1e3:.3f}-"
          f"{max(row['embedlab']) * 1e3:.3f}   PML {min(row['pml']) * 1e3:.3f}-"
          f"{max(row['pml']) * 1e3:.3f}")
  print(f"other processes kept {load['other_cores_busy']} cores busy on average over the "
        f"{load['seconds']} s of timing (load average {load['loadavg_1_5_15']})")
  print("grad diff: |g_embedlab - g_PML| / |g_PML| (Frobenius), the larger of the embedding and "
        "proxy gradients")


if __name__ == "__main__":
  sys.exit(main())
