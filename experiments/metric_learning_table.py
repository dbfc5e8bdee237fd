r"""Issue #4 grid: every metric-learning loss x geometry, zero-shot retrieval on unseen classes.

Every cell is one ordinary run of ``experiments/metric_learning.py`` (the exact CLI command is
printed and stored next to it), so any cell can be rerun on its own; finished cells are
resumed, not retrained. This script only loops and tabulates:

  python experiments/metric_learning_table.py --preset digits --workdir runs/ml_table_digits
  # two cells, e.g. to check the script:
  python experiments/metric_learning_table.py --losses triplet --geometries euclidean,sphere \
      --workdir runs/ml_table_check
  # WordNet glosses (needs EMBEDLAB_DATA_DIR; a few minutes per cell on a CPU):
  python experiments/metric_learning_table.py --preset wordnet_gloss --workdir runs/ml_table_wn
  # any extra override for every cell:
  python experiments/metric_learning_table.py --extra dim=64,lr=3e-4 --workdir runs/ml_dim64

A (loss, geometry) pair the loss does not support is left out ("—" in the table); a cell whose
config is rejected, or whose loss turns non-finite, is recorded with its error. Output:
``<workdir>/<loss>_<geometry>/`` (each run's workdir), ``<workdir>/table.json`` (every cell:
command, unseen and seen metrics, wall seconds, machine) and ``<workdir>/table.md``:
unseen-class Precision@1 / MAP@R / NMI per cell, and the raw-feature and untrained-encoder
baselines.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import runpy
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_GEOMETRIES = "euclidean,sphere,poincare"
KEYS = ("precision_at_1", "map_at_r", "r_precision", "nmi")


def cell_arg(preset: str, loss: str, geometry: str, extra: str) -> str:
  parts = [preset, f"loss={loss}", f"geometry={geometry}", extra]
  return ",".join(p for p in parts if p)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n")[0],
      epilog="Each cell runs: python -m embedlab.main --config "
             "experiments/metric_learning.py:<preset>,loss=L,geometry=G[,extra] "
             "--workdir <workdir>/L_G",
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--preset", default="digits",
                      help="preset of experiments/metric_learning.py (default: digits)")
  parser.add_argument("--losses", default="",
                      help="comma-separated loss names (default: every registered loss)")
  parser.add_argument("--geometries", default=DEFAULT_GEOMETRIES,
                      help=f"comma-separated geometries (default: {DEFAULT_GEOMETRIES})")
  parser.add_argument("--extra", default="",
                      help="overrides added to every cell, e.g. 'dim=64,lr=3e-4'")
  parser.add_argument("--workdir", required=True, help="root folder of the cells' workdirs")
  args = parser.parse_args(argv)

  # Imported here so `--help` is instant.
  from embedlab import train
  from embedlab.train import metric_learning
  get_config = runpy.run_path(str(HERE / "metric_learning.py"))["get_config"]

  losses = [l for l in args.losses.split(",") if l] or list(metric_learning.LOSSES)
  geometries = [g for g in args.geometries.split(",") if g]
  for loss in losses:
    metric_learning.loss_spec(loss)  # Unknown names fail before any cell runs.
  root = pathlib.Path(args.workdir)
  root.mkdir(parents=True, exist_ok=True)
  cells = []
  for loss in losses:
    for geometry in geometries:
      if geometry not in metric_learning.LOSSES[loss].geometries:
        continue
      arg = cell_arg(args.preset, loss, geometry, args.extra)
      workdir = root / f"{loss}_{geometry}"
      command = (f"python -m embedlab.main --config experiments/metric_learning.py:{arg} "
                 f"--workdir {workdir}")
      print(f"== {command}", flush=True)
      cell = {"loss": loss, "geometry": geometry, "command": command}
      tick = time.perf_counter()
      try:
        config = get_config(arg)
        config.progress = False
        results = train.run(config, workdir).results
      except (ValueError, FloatingPointError) as e:
        cell["error"] = str(e)
        print(f"   error: {e}", flush=True)
      else:
        cell["metrics"] = results["metrics"]
        cell["machine"] = results["machine"]
        m = results["metrics"]
        print("   unseen " + "  ".join(f"{k} {m[f'unseen_{k}']:.3f}" for k in KEYS), flush=True)
      cell["wall_seconds"] = round(time.perf_counter() - tick, 1)
      cells.append(cell)
      (root / "table.json").write_text(json.dumps(cells, indent=2, default=float))
  table = _markdown(cells, args.preset, geometries)
  (root / "table.md").write_text(table)
  print(table)


def _cell_text(metrics: dict, prefix: str) -> str:
  return " / ".join(f"{metrics[f'{prefix}{k}']:.3f}" for k in ("precision_at_1", "map_at_r",
                                                                 "nmi"))


def _markdown(cells, preset: str, geometries) -> str:
  lines = [f"**{preset} — unseen classes** (Precision@1 / MAP@R / NMI)", "",
           "| loss | " + " | ".join(geometries) + " |", "| --- |" + " --- |" * len(geometries)]
  for loss in dict.fromkeys(c["loss"] for c in cells):
    row = {c["geometry"]: c for c in cells if c["loss"] == loss}
    lines.append(f"| {loss} | " + " | ".join(
        ("error" if "error" in row[g] else _cell_text(row[g]["metrics"], "unseen_"))
        if g in row else "—" for g in geometries) + " |")
  finished = [c for c in cells if "metrics" in c]
  baseline = next((c for c in finished if "baseline_raw_unseen_map_at_r" in c["metrics"]), None)
  if baseline is not None:
    m = baseline["metrics"]
    lines += ["", f"Raw input features (Euclidean): {_cell_text(m, 'baseline_raw_unseen_')}. "
              f"Untrained encoder ({baseline['geometry']}): "
              f"{_cell_text(m, 'baseline_init_unseen_')}."]
  lines.append("")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
