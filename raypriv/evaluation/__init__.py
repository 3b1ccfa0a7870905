"""Evaluation: fitting classifiers on (degraded) clips and measuring their accuracy."""
