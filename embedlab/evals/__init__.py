"""Metrics and evaluators, chunked and jitted."""

from embedlab.evals.reconstruction import reconstruction_metrics

__all__ = ["reconstruction_metrics"]
