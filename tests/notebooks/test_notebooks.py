"""Every notebook runs top to bottom (its code cells, in order, in a fresh namespace).

No Jupyter needed: the cells are read from the .ipynb JSON and executed with ``exec``.
``EMBEDLAB_NOTEBOOK_SMOKE=1`` asks the notebooks for their seconds-long settings; their own
assertions (conformance checks, closed forms) still run in full.
"""

import json
import pathlib

import pytest

from embedlab import geometry

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
  assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
  notebook = json.loads(path.read_text())
  cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
  assert cells, f"{path.name} has no code cells"
  monkeypatch.setenv("EMBEDLAB_NOTEBOOK_SMOKE", "1")
  monkeypatch.chdir(path.parent)
  namespace = {"__name__": "__main__"}
  before = dict(geometry.GEOMETRIES)
  try:
    for number, cell in enumerate(cells):
      source = "".join(cell["source"])
      exec(compile(source, f"{path.name}[code cell {number}]", "exec"), namespace)
  finally:
    # Notebooks may register geometries (geometry.register); keep them out of later tests.
    for name in set(geometry.GEOMETRIES) - set(before):
      geometry.unregister(name)
    for name, manifold in before.items():
      if geometry.GEOMETRIES[name] is not manifold:
        geometry.register(manifold, replace=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_executed(path):
  # The repository keeps the outputs of a full run, so readers see results without running.
  cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
  assert all(c.get("execution_count") for c in cells), f"{path.name}: run it before committing"
