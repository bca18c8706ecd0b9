"""Statistics on samples: MMD two-sample estimates and tests, KDE divergences and entropy,
and annealed importance sampling of a decoder's log-likelihood."""

from kdegen.stats.ais import AISEstimate, ais_log_likelihood
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
    "AISEstimate",
    "MMDTest",
    "ais_log_likelihood",
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
