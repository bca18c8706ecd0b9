"""Statistics on samples: MMD two-sample estimates and tests, KDE divergences and entropy."""

from kdegen.stats.jsd import (
    entropy_bandwidth,
    kde_entropy,
    kde_jsd,
    kde_jsd_terms,
    kde_log_prob,
    optimal_jsd_bandwidth,
)
from kdegen.stats.mmd import MMDTest, median_bandwidth, mmd2, mmd_test

__all__ = [
    "MMDTest",
    "entropy_bandwidth",
    "kde_entropy",
    "kde_jsd",
    "kde_jsd_terms",
    "kde_log_prob",
    "median_bandwidth",
    "mmd2",
    "mmd_test",
    "optimal_jsd_bandwidth",
]
