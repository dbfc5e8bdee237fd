"""Reference values from pytorch-metric-learning for tests/losses/test_proxy.py.

Run with the benchmark venv (torch + PML are never dependencies of embedlab)::

    /work/benchvenv/bin/python benchmarks/pml_reference_proxy.py

The test rebuilds the inputs with the same NumPy calls (its ``_pml_inputs``), so only the
printed numbers are pasted there. Conventions mapped here: PML stores CosFace/ArcFace's ``W``
as ``[D, C]`` (embedlab takes ``[C, D]``: ``W = proxies.T``) and ArcFace's margin in degrees
(embedlab: radians).
"""

import numpy as np

SEEDS = (0, 1)
NCA_SCALES = (1.0, 3.0)
ANCHOR_SETTINGS = ((0.1, 32.0), (0.2, 8.0))  # (margin, alpha)
COSFACE_SETTINGS = ((0.35, 64.0), (0.2, 10.0))  # (margin, scale)
ARCFACE_SETTINGS = ((np.degrees(0.5), 64.0), (28.6, 10.0))  # (margin in degrees, scale)


def proxy_inputs(seed):
  """Unit embeddings [12, 5], labels in [0, 5) (class 5 of 6 never present), raw proxies [6, 5].

  Rows 0 and 1 sit near the antipode of their class vector (ArcFace's ``theta + m > pi`` branch).
  """
  rng = np.random.default_rng(seed)
  proxies = rng.standard_normal((6, 5))
  labels = rng.integers(0, 5, size=12)
  x = rng.standard_normal((12, 5))
  unit = proxies / np.linalg.norm(proxies, axis=1, keepdims=True)
  x[:2] = -unit[labels[:2]] + 0.05 * x[:2]
  return x / np.linalg.norm(x, axis=1, keepdims=True), labels, proxies


def main():
  # Imported here so that the input builder above imports without torch.
  import pytorch_metric_learning  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from pytorch_metric_learning import losses  # pylint: disable=import-outside-toplevel

  print(f"torch {torch.__version__}, pytorch-metric-learning {pytorch_metric_learning.__version__}")

  def run(loss, attr, value, x, labels):
    getattr(loss, attr).data = torch.from_numpy(value)
    return loss(torch.from_numpy(x), torch.from_numpy(labels)).item()

  for seed in SEEDS:
    x, labels, proxies = proxy_inputs(seed)
    print(f"seed {seed} labels {labels.tolist()}")
    for s in NCA_SCALES:
      loss = losses.ProxyNCALoss(6, 5, softmax_scale=s)
      print(f"  proxy_nca softmax_scale={s}: {run(loss, 'proxies', proxies, x, labels)!r}")
    for margin, alpha in ANCHOR_SETTINGS:
      loss = losses.ProxyAnchorLoss(6, 5, margin=margin, alpha=alpha)
      print(f"  proxy_anchor margin={margin} alpha={alpha}: "
            f"{run(loss, 'proxies', proxies, x, labels)!r}")
    for margin, scale in COSFACE_SETTINGS:
      loss = losses.CosFaceLoss(6, 5, margin=margin, scale=scale)
      print(f"  cosface margin={margin} scale={scale}: "
            f"{run(loss, 'W', proxies.T.copy(), x, labels)!r}")
    for margin, scale in ARCFACE_SETTINGS:
      loss = losses.ArcFaceLoss(6, 5, margin=margin, scale=scale)
      print(f"  arcface margin={margin} deg scale={scale}: "
            f"{run(loss, 'W', proxies.T.copy(), x, labels)!r}")


if __name__ == "__main__":
  main()
