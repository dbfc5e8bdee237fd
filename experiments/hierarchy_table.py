r"""Nickel & Kiela (2017) Table 1 style sweep: models x dims, reconstruction and link prediction.

Every cell is one ordinary run of ``experiments/hierarchy.py`` (the exact CLI command is written
next to it), so any cell can be rerun on its own. This script only loops and tabulates:

  python experiments/hierarchy_table.py --preset mammals --dims 5,10,50 --workdir runs/table_mammals
  # nouns (needs EMBEDLAB_DATA_DIR; hours on a CPU, one cell at a time is fine):
  python experiments/hierarchy_table.py --preset nouns --dims 10 --models poincare \
      --tasks reconstruction --workdir runs/table_nouns

Output: ``<workdir>/<cell>/`` (each run's own workdir, resumable), ``<workdir>/table.json`` and
``<workdir>/table.md`` (mean rank / MAP per cell and wall seconds).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import runpy
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
# model name -> preset arg fragment
MODELS = {
    "poincare": "geometry=poincare",
    "lorentz": "geometry=lorentz",
    "euclidean": "geometry=euclidean",
    "translational": "geometry=euclidean,model=translational",
}
TASKS = {"reconstruction": "", "link_prediction": "link=0.1"}


def cell_arg(preset: str, model: str, dim: int, task: str) -> str:
  parts = [preset, MODELS[model], f"dim={dim}", TASKS[task], "plot=false"]
  return ",".join(p for p in parts if p)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="mammals")
  parser.add_argument("--dims", default="5,10,50")
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--tasks", default=",".join(TASKS))
  parser.add_argument("--workdir", required=True)
  args = parser.parse_args(argv)

  # Imported here so `--help` is instant.
  from embedlab import train
  get_config = runpy.run_path(str(HERE / "hierarchy.py"))["get_config"]

  root = pathlib.Path(args.workdir)
  root.mkdir(parents=True, exist_ok=True)
  cells = []
  for task in args.tasks.split(","):
    for model in args.models.split(","):
      for dim in (int(d) for d in args.dims.split(",")):
        arg = cell_arg(args.preset, model, dim, task)
        workdir = root / f"{task}_{model}_dim{dim}"
        command = (f"python -m embedlab.main --config experiments/hierarchy.py:{arg} "
                   f"--workdir {workdir}")
        print(f"== {command}", flush=True)
        config = get_config(arg)
        config.progress = False
        tick = time.perf_counter()
        results = train.run(config, workdir).results
        metrics = results["metrics"]
        prefix = "link_" if task == "link_prediction" else ""
        cells.append({"task": task, "model": model, "dim": dim, "command": command,
                      "mean_rank": metrics[prefix + "mean_rank"], "map": metrics[prefix + "map"],
                      "wall_seconds": round(time.perf_counter() - tick, 1),
                      "machine": results["machine"]})
        print(f"   mean rank {cells[-1]['mean_rank']:.3f}  MAP {cells[-1]['map']:.3f}", flush=True)
        (root / "table.json").write_text(json.dumps(cells, indent=2))
  (root / "table.md").write_text(_markdown(cells, args.preset))
  print(_markdown(cells, args.preset))


def _markdown(cells, preset: str) -> str:
  dims = sorted({c["dim"] for c in cells})
  lines = []
  for task in dict.fromkeys(c["task"] for c in cells):
    lines += [f"**{preset} — {task.replace('_', ' ')}** (mean rank / MAP)", "",
              "| model | " + " | ".join(f"dim {d}" for d in dims) + " |",
              "| --- |" + " --- |" * len(dims)]
    for model in dict.fromkeys(c["model"] for c in cells if c["task"] == task):
      row = {c["dim"]: c for c in cells if c["task"] == task and c["model"] == model}
      lines.append(f"| {model} | " + " | ".join(
          f"{row[d]['mean_rank']:.2f} / {row[d]['map']:.3f}" if d in row else "—"
          for d in dims) + " |")
    lines.append("")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
