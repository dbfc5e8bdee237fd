"""embedlab's retrieval metrics agree with pytorch-metric-learning's AccuracyCalculator.

The PML values are constants printed by (pytorch-metric-learning 2.9.0, torch 2.13.0+cpu,
faiss-cpu 1.15.1)::

  python benchmarks/pml_retrieval.py --reference   # with the bench extra installed

with ``AccuracyCalculator(include=("precision_at_1", "r_precision",
"mean_average_precision_at_r"), k="max_bin_count")`` on the example rebuilt by :func:`_example`
(300 points in 16-D, 11 Gaussian classes of 1 to 60 points, so a lone query and R from 1 to 59).
The same command checks that PML's float32 faiss ranking gives the values of an exact float64
brute force on this example (differences <= 2.2e-16), so embedlab, run in float64 here, must
match them to rounding. No torch import.
"""

import jax
import numpy as np
import pytest

from embedlab.evals import retrieval_metrics

SIZES = (1, 2, 5, 13, 21, 28, 34, 40, 46, 50, 60)
DIM, SPREAD, SEED = 16, 1.2, 4

# get_accuracy(x, labels): every point queries all the others (ref_includes_query=True).
PML_SELF = {
    "mean_average_precision_at_r": 0.4260507628092705,
    "precision_at_1": 0.7759197324414716,
    "r_precision": 0.5489191293292129,
}
# Rows 0, 3, 6, ... query the other rows: get_accuracy(q, q_labels, ref, ref_labels, False).
PML_SPLIT = {
    "mean_average_precision_at_r": 0.4265034046033648,
    "precision_at_1": 0.797979797979798,
    "r_precision": 0.5458204557380458,
}
EMBEDLAB_NAMES = {"precision_at_1": "precision_at_1", "r_precision": "r_precision",
                  "mean_average_precision_at_r": "map_at_r"}


def _example():
  """benchmarks/pml_retrieval.py ``clustered``: centres N(0, I), points centre + SPREAD N(0, I)."""
  rng = np.random.default_rng(SEED)
  labels = np.repeat(np.arange(len(SIZES)), SIZES)
  centres = rng.standard_normal((len(SIZES), DIM))
  points = centres[labels] + SPREAD * rng.standard_normal((labels.size, DIM))
  return points.astype(np.float32), labels


@pytest.mark.parametrize("setting", ["self", "split"])
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_matches_pml_accuracy_calculator(setting, chunk_size):
  x, labels = _example()
  with jax.enable_x64(True):
    x = x.astype(np.float64)
    if setting == "self":
      out = retrieval_metrics(x, labels, recall_ks=(1,), chunk_size=chunk_size)
      expected, skipped = PML_SELF, 1  # the class of one point has no other reference
    else:
      is_query = np.arange(labels.size) % 3 == 0
      out = retrieval_metrics(x[~is_query], labels[~is_query], queries=x[is_query],
                              query_labels=labels[is_query], recall_ks=(1,),
                              chunk_size=chunk_size)
      expected, skipped = PML_SPLIT, 1  # the lone point is a query: no reference has its label
  assert out["num_skipped"] == skipped
  for pml_name, value in expected.items():
    np.testing.assert_allclose(out[EMBEDLAB_NAMES[pml_name]], value, rtol=0, atol=1e-6,
                               err_msg=pml_name)
