"""Reference values from pytorch-metric-learning for tests/losses/test_contrastive.py.

Run with the benchmark venv (torch + PML are never dependencies of embedlab)::

    /work/benchvenv/bin/python benchmarks/pml_reference_contrastive.py

The inputs are rebuilt with the same NumPy calls in the test (``_pml_inputs``), so only the
printed numbers are pasted there.
"""

import numpy as np

TEMPERATURES = (0.07, 0.1, 0.5)


def labelled_inputs(seed, num_classes):
  """float64 unit vectors [12, 5] and labels in [0, num_classes) (7 classes: singletons)."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((12, 5))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  labels = rng.integers(0, num_classes, size=12)
  return x, labels


def npair_inputs(seed):
  """float64 anchors and positives [6, 4] (not normalised: Euclidean inner products)."""
  rng = np.random.default_rng(seed)
  anchors = rng.standard_normal((6, 4))
  positives = anchors + 0.5 * rng.standard_normal((6, 4))
  return anchors, positives


def main():
  # Imported here so that the input builders above import without torch.
  import pytorch_metric_learning  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from pytorch_metric_learning import losses  # pylint: disable=import-outside-toplevel
  from pytorch_metric_learning.distances import (  # pylint: disable=import-outside-toplevel
      DotProductSimilarity)

  print(f"torch {torch.__version__}, pytorch-metric-learning {pytorch_metric_learning.__version__}")
  for seed, num_classes in ((0, 4), (1, 4), (2, 7)):
    x, labels = labelled_inputs(seed, num_classes)
    emb, lab = torch.from_numpy(x), torch.from_numpy(labels)
    print(f"seed {seed} num_classes {num_classes} labels {labels.tolist()}")
    for t in TEMPERATURES:
      ntxent = losses.NTXentLoss(temperature=t)(emb, lab).item()
      supcon = losses.SupConLoss(temperature=t)(emb, lab).item()
      print(f"  temperature {t}: ntxent {ntxent!r} supcon {supcon!r}")
  for seed in (0, 1):
    anchors, positives = npair_inputs(seed)
    emb = torch.from_numpy(np.concatenate([anchors, positives]))
    lab = torch.from_numpy(np.concatenate([np.arange(6), np.arange(6)]))
    # PML's default DotProductSimilarity L2-normalises the embeddings first (cosine: embedlab's
    # sphere); normalize_embeddings=False gives Sohn's raw inner product (embedlab's Euclidean).
    cosine = losses.NPairsLoss()(emb, lab).item()
    inner = losses.NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))
    print(f"npair seed {seed}: default (cosine) {cosine!r} "
          f"inner product {inner(emb, lab).item()!r}")


if __name__ == "__main__":
  main()
