"""Metrics and evaluators, chunked and jitted.

Modules: ``reconstruction`` (mean rank / MAP of a hierarchy), ``distortion`` (graph distortion
and MAP), ``retrieval`` (Precision@1, Recall@K, R-precision, MAP@R) and ``clustering``
(k-means, NMI, AMI).
"""

from embedlab.evals.clustering import (adjusted_mutual_info, clustering_metrics, kmeans,
                                        normalized_mutual_info)
from embedlab.evals.reconstruction import reconstruction_metrics
from embedlab.evals.retrieval import retrieval_metrics

__all__ = ["adjusted_mutual_info", "clustering_metrics", "kmeans", "normalized_mutual_info",
           "reconstruction_metrics", "retrieval_metrics"]
