"""Metrics and evaluators, chunked and jitted."""

from embedlab.evals.reconstruction import reconstruction_metrics
from embedlab.evals.retrieval import (adjusted_mutual_info, clustering_metrics, kmeans,
                                       normalized_mutual_info, retrieval_metrics)

__all__ = ["reconstruction_metrics"]
__all__ += ["adjusted_mutual_info", "clustering_metrics", "kmeans", "normalized_mutual_info",
            "retrieval_metrics"]
