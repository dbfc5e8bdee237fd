r"""Grids of ordinary runs, tabulated: every cell is one ``python -m embedlab.main`` command.

Launch (from the repository root):

  # Nickel & Kiela (2017) Table 1: models x dims, reconstruction and link prediction.
  python experiments/sweep.py hierarchy --preset mammals --dims 5,10,50 \
      --workdir runs/table_mammals
  # nouns (needs EMBEDLAB_DATA_DIR; hours on a CPU, one cell at a time is fine):
  python experiments/sweep.py hierarchy --preset nouns --dims 10 --models poincare \
      --tasks reconstruction --workdir runs/table_nouns
  # Every metric-learning loss x geometry, zero-shot retrieval on unseen classes:
  python experiments/sweep.py metric_learning --preset digits --workdir runs/ml_table_digits
  python experiments/sweep.py metric_learning --losses triplet --geometries euclidean,sphere \
      --workdir runs/ml_table_check
  # WordNet glosses (needs EMBEDLAB_DATA_DIR; a few minutes per cell on a CPU):
  python experiments/sweep.py metric_learning --preset wordnet_gloss --workdir runs/ml_table_wn
  # Any extra override for every cell (either family):
  python experiments/sweep.py metric_learning --extra dim=64,lr=3e-4 --workdir runs/ml_dim64

Each cell runs ``python -m embedlab.main --config experiments/<family>.py:<arg> --workdir
<workdir>/<cell>`` in a fresh process from the repository root, so a cell is exactly its
recorded command (rerun it on its own to get the same numbers) and no process-wide setting of
one cell reaches the next; its terminal output goes to ``<workdir>/<cell>.log``. A cell whose
workdir already holds a finished run of the same config is read, not rerun, so an interrupted
sweep resumes where it stopped (an unfinished cell resumes from its checkpoint). A cell that
fails (a config its loss rejects, a non-finite loss) is recorded with its error and the sweep
goes on.

Output: ``<workdir>/table.json`` (every cell: its command, metrics and machine, or its error)
and ``<workdir>/table.md``: the command of the sweep and the machine its cells ran on, then the
family's table: for ``hierarchy``, mean rank / MAP per model x dim, one table per task; for
``metric_learning``, unseen-class Precision@1 / MAP@R / NMI per loss x geometry ("—" where the
loss does not support the geometry) and the raw-feature and untrained-encoder baselines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import runpy
import shlex
import subprocess
import sys
import time
from typing import Callable

REPO = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = "experiments/sweep.py"
# The cells run `python -m embedlab.main` from the repository root, which imports this
# checkout's embedlab; the sweep reads configs with the same one.
sys.path.insert(0, str(REPO))


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run of the grid: ``keys`` name it in the table, ``arg`` is its config argument."""

  name: str
  arg: str
  keys: dict


@dataclasses.dataclass(frozen=True)
class Family:
  """How one experiment family's grid is built and tabulated."""

  experiment: str                                   # experiments/<experiment>.py
  add_arguments: Callable[[argparse.ArgumentParser], None]
  cells: Callable[[argparse.Namespace], list[Cell]]
  markdown: Callable[[list[dict], argparse.Namespace], str]


def _join(*parts: str) -> str:
  return ",".join(p for p in parts if p)


def _split(text: str) -> list[str]:
  return [item.strip() for item in text.split(",") if item.strip()]


# ----------------------------------------------------------------------------------------------
# hierarchy: models x dims x tasks.

HIERARCHY_MODELS = {  # model name -> config arg fragment
    "poincare": "geometry=poincare",
    "lorentz": "geometry=lorentz",
    "euclidean": "geometry=euclidean",
    "translational": "geometry=euclidean,model=translational",
}
HIERARCHY_TASKS = {"reconstruction": "", "link_prediction": "link=0.1"}


def _hierarchy_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--preset", default="mammals",
                      help="preset of experiments/hierarchy.py (default: mammals)")
  parser.add_argument("--dims", default="5,10,50", help="comma-separated dims (default: 5,10,50)")
  parser.add_argument("--models", default=",".join(HIERARCHY_MODELS),
                      help=f"comma-separated, of {', '.join(HIERARCHY_MODELS)} (default: all)")
  parser.add_argument("--tasks", default=",".join(HIERARCHY_TASKS),
                      help=f"comma-separated, of {', '.join(HIERARCHY_TASKS)} (default: both)")


def _known(flag: str, text: str, known: dict) -> list[str]:
  values = _split(text)
  unknown = [v for v in values if v not in known]
  if unknown:
    raise SystemExit(f"{flag}: unknown {unknown}; expected some of {list(known)}")
  return values


def _hierarchy_cells(args: argparse.Namespace) -> list[Cell]:
  tasks = _known("--tasks", args.tasks, HIERARCHY_TASKS)
  models = _known("--models", args.models, HIERARCHY_MODELS)
  try:
    dims = [int(d) for d in _split(args.dims)]
  except ValueError:
    raise SystemExit(f"--dims={args.dims!r}: expected comma-separated ints") from None
  return [Cell(name=f"{task}_{model}_dim{dim}",
               arg=_join(args.preset, HIERARCHY_MODELS[model], f"dim={dim}",
                         HIERARCHY_TASKS[task], "plot=false", args.extra),
               keys={"task": task, "model": model, "dim": dim})
          for task in tasks for model in models for dim in dims]


def _hierarchy_markdown(cells: list[dict], args: argparse.Namespace) -> str:
  dims = sorted({c["dim"] for c in cells})
  lines = []
  for task in dict.fromkeys(c["task"] for c in cells):
    prefix = "link_" if task == "link_prediction" else ""
    lines += [f"**{args.preset} — {task.replace('_', ' ')}** (mean rank / MAP)", "",
              "| model | " + " | ".join(f"dim {d}" for d in dims) + " |",
              "| --- |" + " --- |" * len(dims)]
    for model in dict.fromkeys(c["model"] for c in cells if c["task"] == task):
      row = {c["dim"]: c for c in cells if c["task"] == task and c["model"] == model}

      def text(cell):
        if "error" in cell:
          return "error"
        m = cell["metrics"]
        return f"{m[prefix + 'mean_rank']:.2f} / {m[prefix + 'map']:.3f}"

      lines.append(f"| {model} | " + " | ".join(text(row[d]) if d in row else "—"
                                                for d in dims) + " |")
    lines.append("")
  return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# metric_learning: losses x geometries.

ML_GEOMETRIES = "euclidean,sphere,poincare"
ML_TABLE_KEYS = ("precision_at_1", "map_at_r", "nmi")


def _ml_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--preset", default="digits",
                      help="preset of experiments/metric_learning.py (default: digits)")
  parser.add_argument("--losses", default="",
                      help="comma-separated loss names (default: every registered loss)")
  parser.add_argument("--geometries", default=ML_GEOMETRIES,
                      help=f"comma-separated geometries (default: {ML_GEOMETRIES})")


def _ml_cells(args: argparse.Namespace) -> list[Cell]:
  from embedlab import losses as losses_lib  # here, so that --help is instant
  from embedlab import geometry as geometry_lib

  names = _split(args.losses) or list(losses_lib.LOSSES)
  for name in names:
    try:
      losses_lib.loss_spec(name)  # unknown names fail before any cell runs
    except ValueError as e:
      raise SystemExit(str(e)) from None
  return [Cell(name=f"{loss}_{geometry}",
               arg=_join(args.preset, f"loss={loss}", f"geometry={geometry}", args.extra),
               keys={"loss": loss, "geometry": geometry})
          for loss in names for geometry in _split(args.geometries)
          if losses_lib.LOSSES[loss].supports(geometry_lib.get(geometry))]


def _ml_text(metrics: dict, prefix: str) -> str:
  return " / ".join(f"{metrics[f'{prefix}{k}']:.3f}" for k in ML_TABLE_KEYS)


def _ml_markdown(cells: list[dict], args: argparse.Namespace) -> str:
  geometries = _split(args.geometries)
  lines = [f"**{args.preset} — unseen classes** (Precision@1 / MAP@R / NMI)", "",
           "| loss | " + " | ".join(geometries) + " |", "| --- |" + " --- |" * len(geometries)]
  for loss in dict.fromkeys(c["loss"] for c in cells):
    row = {c["geometry"]: c for c in cells if c["loss"] == loss}
    lines.append(f"| {loss} | " + " | ".join(
        ("error" if "error" in row[g] else _ml_text(row[g]["metrics"], "unseen_"))
        if g in row else "—" for g in geometries) + " |")
  baseline = next((c for c in cells
                   if "baseline_raw_unseen_map_at_r" in c.get("metrics", {})), None)
  if baseline is not None:
    m = baseline["metrics"]
    lines += ["", f"Raw input features (Euclidean): {_ml_text(m, 'baseline_raw_unseen_')}. "
              f"Untrained encoder ({baseline['geometry']}): "
              f"{_ml_text(m, 'baseline_init_unseen_')}."]
  lines.append("")
  return "\n".join(lines)


FAMILIES = {
    "hierarchy": Family("hierarchy", _hierarchy_arguments, _hierarchy_cells,
                        _hierarchy_markdown),
    "metric_learning": Family("metric_learning", _ml_arguments, _ml_cells, _ml_markdown),
}


# ----------------------------------------------------------------------------------------------
# The engine: run or resume each cell, then tabulate.


def _finished_results(workdir: pathlib.Path, config: dict) -> dict | None:
  """The results of a finished run of ``config`` in ``workdir``, else ``None``."""
  try:
    results = json.loads((workdir / "results.json").read_text())
    stored = json.loads((workdir / "config.json").read_text())
  except (OSError, json.JSONDecodeError):
    return None
  return results if results.get("finished") and stored == config else None


def _last_line(path: pathlib.Path) -> str:
  lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
  return lines[-1].strip() if lines else "no output"


def run_cell(family: Family, cell: Cell, root: pathlib.Path, get_config) -> dict:
  """Runs (or reads) one cell; returns its row of ``table.json``."""
  from embedlab.train import outputs  # here, so that --help is instant

  workdir = root / cell.name
  command = ["python", "-m", "embedlab.main", "--config",
             f"experiments/{family.experiment}.py:{cell.arg}", "--workdir", str(workdir)]
  row = {**cell.keys, "command": shlex.join(command)}
  print(f"== {row['command']}", flush=True)
  try:
    config = outputs.config_dict(get_config(cell.arg))
  except ValueError as e:  # a bad override: every cell would fail the same way
    raise SystemExit(f"config {cell.arg!r}: {e}") from None
  results = _finished_results(workdir, config)
  if results is not None:
    print("   finished before: read, not rerun", flush=True)
  else:
    log = root / f"{cell.name}.log"
    tick = time.perf_counter()
    with open(log, "w") as out:
      proc = subprocess.run([sys.executable, *command[1:]], cwd=REPO, stdout=out,
                            stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
      row["error"] = _last_line(log)
      print(f"   error: {row['error']} (log: {log})", flush=True)
      return row
    print(f"   done in {time.perf_counter() - tick:.1f} s (log: {log})", flush=True)
    results = json.loads((workdir / "results.json").read_text())
  row.update(metrics=results["metrics"], machine=results["machine"],
             wall_seconds_this_run=results["wall_seconds_this_run"])
  return row


def _machines(cells: list[dict]) -> str:
  """The machines the finished cells ran on, one phrase each."""
  seen = {}
  for cell in cells:
    m = cell.get("machine")
    if m:
      text = (f"{m['processor']} ({m['cpu_count']} cores), jax {m['jax']}, "
              f"{m['device_kind']} x{m['num_devices']}")
      seen[text] = None
  return "; ".join(seen) or "no finished cell"


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=__doc__.split("\n\n", 1)[1])
  sub = parser.add_subparsers(dest="family", required=True)
  for name, family in FAMILIES.items():
    child = sub.add_parser(name, help=f"the grid of experiments/{family.experiment}.py")
    family.add_arguments(child)
    child.add_argument("--extra", default="",
                       help="overrides added to every cell, e.g. 'dim=64,lr=3e-4'")
    child.add_argument("--workdir", required=True, help="root folder of the cells' workdirs")
  args = parser.parse_args(argv)
  family = FAMILIES[args.family]

  root = pathlib.Path(args.workdir)
  if not root.is_absolute() and pathlib.Path.cwd().resolve() != REPO:
    root = root.resolve()  # cells run from the repository root
  root.mkdir(parents=True, exist_ok=True)
  get_config = runpy.run_path(str(REPO / "experiments" / f"{family.experiment}.py"))[
      "get_config"]
  cells = family.cells(args)
  rows = []
  for cell in cells:
    rows.append(run_cell(family, cell, root, get_config))
    (root / "table.json").write_text(json.dumps(rows, indent=2, default=float))
  sweep = shlex.join(["python", SCRIPT, *argv])
  table = (f"Produced by `{sweep}` on {_machines(rows)}.\n\n"
           + family.markdown(rows, args))
  (root / "table.md").write_text(table)
  print(table)


if __name__ == "__main__":
  sys.exit(main())
