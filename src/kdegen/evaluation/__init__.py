"""Evaluating generative models: embeddings of samples, metrics on them, reports.

``kdegen.evaluation.metrics`` holds the metrics themselves: pure functions on feature
arrays (Distribution Divergence Measure, Inception and Mode Score, FID, KID, MMD,
Parzen windows, nearest-neighbour, birthday, precision/recall, density/coverage and
mode counts), registered by name in ``METRICS``. Importing this package loads nothing
heavy; import the submodule you need.
"""
