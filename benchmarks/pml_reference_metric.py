"""Reference values from pytorch-metric-learning (PML) for tests/losses/test_metric.py.

Run with the benchmark environment (PML and torch are never embedlab dependencies):

    /work/benchvenv/bin/python benchmarks/pml_reference_metric.py

Every input is float64 and rebuilt in the test from the same ``np.random.default_rng`` seeds
(:func:`inputs`), so the printed numbers can be pasted there as constants.
"""

import numpy as np
import pytorch_metric_learning
import torch
from pytorch_metric_learning import distances, losses, miners, reducers, regularizers

LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3, 4, 4])  # label 2 is a singleton.


def inputs(seed):
  """``(sphere points, Euclidean points)``: float64 ``[12, 5]``, labels :data:`LABELS`."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(len(LABELS), 5))
  return x / np.linalg.norm(x, axis=1, keepdims=True), 0.5 * rng.normal(size=(len(LABELS), 5))


def main():
  print(f"torch {torch.__version__}, pytorch-metric-learning {pytorch_metric_learning.__version__}")
  labels = torch.as_tensor(LABELS)
  for seed in (0, 1):
    unit, euclid = (torch.as_tensor(a) for a in inputs(seed))
    ms = losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)
    miner = miners.MultiSimilarityMiner(epsilon=0.1)
    lp = dict(distance=distances.LpDistance(normalize_embeddings=False))
    ms_lp = losses.MultiSimilarityLoss(alpha=2.0, beta=5.0, base=1.0, **lp)
    miner_lp = miners.MultiSimilarityMiner(epsilon=0.1, **lp)
    # PML distances L2-normalise their inputs by default; embedlab's SNR distance does not.
    snr = dict(distance=distances.SNRDistance(normalize_embeddings=False))
    values = {
        "ms_cosine": ms(unit, labels),
        "ms_cosine_mined": ms(unit, labels, miner(unit, labels)),
        "ms_lp": ms_lp(euclid, labels),
        "ms_lp_mined": ms_lp(euclid, labels, miner_lp(euclid, labels)),
        "snr_contrastive": losses.ContrastiveLoss(pos_margin=1.5, neg_margin=2.2, **snr)(
            euclid, labels),
        "snr_triplet": losses.TripletMarginLoss(margin=0.3, **snr)(euclid, labels),
        "zero_mean": regularizers.ZeroMeanRegularizer()(euclid),
        # Geodesic (Euclidean) triplet / contrastive: PML's LpDistance without normalisation.
        "triplet_all": losses.TripletMarginLoss(margin=0.2, **lp)(euclid, labels),
        "triplet_hard": losses.TripletMarginLoss(margin=0.2, reducer=reducers.MeanReducer(), **lp)(
            euclid, labels, miners.BatchHardMiner(**lp)(euclid, labels)),
        "lp_contrastive": losses.ContrastiveLoss(pos_margin=0.2, neg_margin=1.0, **lp)(
            euclid, labels),
    }
    for name, value in values.items():
      print(f"seed {seed} {name}: {float(value)!r}")


if __name__ == "__main__":
  main()
