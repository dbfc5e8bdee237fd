"""A geometry defined only in a notebook trains in the tasks, with no edit to embedlab.

The Beltrami–Klein model of ``notebooks/klein_model.ipynb`` is built by running the notebook's
own code cells tagged ``geometry`` (nothing of it lives in embedlab), registered with
``geometry.register`` for the test's duration, and trained by ``embedlab.train.run`` through
the experiment files: the hierarchy task, and the metric-learning task with the losses that
read the most from the record (centroid triplet: the weighted midpoint; prototypical: class
prototypes as midpoints; Metrix: mixed embeddings; equiangular basis vectors: the maps at the
origin).
"""

import json
import math
import pathlib

import numpy as np
import pytest

from embedlab import geometry
from embedlab import train
from tests.conftest import load_experiment, logged_losses, quiet_config

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "klein_model.ipynb"


@pytest.fixture(scope="module")
def klein():
  cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"]
           if c["cell_type"] == "code" and "geometry" in c.get("metadata", {}).get("tags", [])]
  assert cells, f"{NOTEBOOK.name}: no code cell tagged 'geometry'"
  namespace = {"__name__": "klein_notebook"}
  for number, cell in enumerate(cells):
    exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}[geometry cell {number}]", "exec"),
         namespace)
  manifold = namespace["KLEIN"]
  assert manifold.name not in geometry.GEOMETRIES  # not shipped: the notebook defines it
  with geometry.registered(manifold):
    yield manifold


def test_the_notebook_geometry_trains_in_the_hierarchy_task(klein, tmp_path):
  config = quiet_config(load_experiment("hierarchy"),
                        "mammals,geometry=klein,epochs=6,eval_every_epochs=6,"
                        "checkpoint_every_epochs=6,epochs_per_call=2,burn_in=1,plot=false")
  outcome = train.run(config, tmp_path)
  losses = logged_losses(tmp_path)
  assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
  table = np.asarray(outcome.params["embeddings"])
  assert np.all(np.asarray(klein.is_on_manifold(table, c=1.0)))
  metrics = outcome.results["metrics"]
  assert 1.0 <= metrics["mean_rank"] < 1182 / 2 and 0.0 < metrics["map"] <= 1.0


# (Multi-similarity's defaults are written for cosine similarities and collapse with the
# negative distances of a hyperbolic model, as in the Poincaré ball: not a test of the record.)
@pytest.mark.parametrize("loss", ["centroid_triplet", "prototypical", "metrix_contrastive",
                                  "ebv"])
def test_the_notebook_geometry_trains_in_metric_learning_losses(klein, tmp_path, loss):
  config = quiet_config(load_experiment("metric_learning"),
                        f"smoke,loss={loss},geometry=klein,epochs=8,steps=25,"
                        "eval_every_epochs=8,checkpoint_every_epochs=8,eval.baselines=true")
  outcome = train.run(config, tmp_path)
  assert all(math.isfinite(v) for v in logged_losses(tmp_path))
  # Trained, it retrieves held-out items of the seen classes better than untrained.
  metrics = outcome.results["metrics"]
  assert metrics["seen_map_at_r"] > metrics["baseline_init_seen_map_at_r"], metrics
  points = np.load(tmp_path / "embeddings.npz")["unseen_embeddings"]
  assert str(np.load(tmp_path / "embeddings.npz")["geometry"]) == "klein"
  assert np.all(np.asarray(klein.is_on_manifold(points, c=1.0, atol=1e-4)))
