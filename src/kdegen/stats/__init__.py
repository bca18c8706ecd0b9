"""Statistics on samples: MMD two-sample estimates and tests (and, later, KDE divergences)."""

from kdegen.stats.mmd import MMDTest, median_bandwidth, mmd2, mmd_test

__all__ = ["MMDTest", "median_bandwidth", "mmd2", "mmd_test"]
