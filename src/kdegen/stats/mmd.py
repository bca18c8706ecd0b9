"""Maximum mean discrepancy with a Gaussian kernel: estimator, bandwidth, permutation test.

Generator Reversal, Eq. 2-3 (after Gretton et al. 2012): the squared population MMD and
its unbiased quadratic estimator, with k(a, b) = exp(-||a - b||^2 / (2 h^2)). The same
function serves the reversal's stopping rule (Claim 4) and evaluation.

Estimator. For samples X (n) and Y (m),
    MMD^2_u = sum_{i!=j} k(x_i,x_j) / (n(n-1)) + sum_{i!=j} k(y_i,y_j) / (m(m-1))
              - 2 sum_{i,j} k(x_i,y_j) / (n m).
It is unbiased for any n, m >= 2. For n = m, Eq. 3 of the paper is the U-statistic that
also leaves out the m cross terms k(x_i, y_i); both are unbiased, but Eq. 3 depends on
how the two samples happen to be paired and needs n = m, so kdegen uses the form above
(as Gretton et al.'s Eq. 5 and the KID literature do).

Sizes. The estimator needs 2 samples per set; the permutation test needs 4. With n = m
the statistic does not change when the two sets swap labels, so 3 against 3 has only
C(6, 3) / 2 = 10 distinct values and a p-value of about 0.1 at best; 4 against 4 has
35 (p down to about 0.03, below the usual 0.05).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from kdegen import kernels
from kdegen.errors import UsageError

MEDIAN_SUBSET = 1000  # points used by the median heuristic (pairwise distances: ~500k)
TEST_MIN_SAMPLES = 4  # per set: the least n = m whose permutation test can reach p < 0.05


def _as_features(x: Tensor | object, name: str) -> Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 2:
        raise UsageError(f"{name} must be a 2-D array (samples x features), got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise UsageError(f"{name} contains NaN or infinite values; clean the features first")
    return t if t.is_floating_point() else t.double()


def _check_pair(a: Tensor, b: Tensor, minimum: int = 2, what: str = "MMD") -> None:
    if a.shape[1] != b.shape[1]:
        raise UsageError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if min(a.shape[0], b.shape[0]) < minimum:
        raise UsageError(
            f"{what} needs at least {minimum} samples on each side, got "
            f"{a.shape[0]} and {b.shape[0]}; pass more samples"
        )


def median_bandwidth(a: Tensor, b: Tensor, seed: int = 0) -> float:
    """Median heuristic: the median Euclidean distance between points of the pooled sample.

    At most :data:`MEDIAN_SUBSET` points (a seeded random subset) are used.
    """
    pooled = torch.cat([a, b])
    if pooled.shape[0] > MEDIAN_SUBSET:
        g = torch.Generator().manual_seed(seed)
        pooled = pooled[torch.randperm(pooled.shape[0], generator=g)[:MEDIAN_SUBSET]]
    d2 = kernels.sq_dists(pooled, pooled)
    iu = torch.triu_indices(d2.shape[0], d2.shape[0], offset=1)
    h = float(d2[iu[0], iu[1]].median().sqrt())
    return h if h > 0 else 1.0


def mmd2(
    a: Tensor, b: Tensor, bandwidth: float | None = None, block: int = kernels.DEFAULT_BLOCK
) -> float:
    """Unbiased MMD^2 between samples ``a`` (n, d) and ``b`` (m, d), Gaussian kernel.

    Args:
        a: first sample.
        b: second sample.
        bandwidth: kernel bandwidth h; None takes the median heuristic.
        block: tile size of the kernel sums (the value does not depend on it).

    Returns:
        The estimate (may be slightly negative when the distributions are equal),
        computed in float64 whatever the input's precision.
    """
    a, b = _as_features(a, "first sample"), _as_features(b, "second sample")
    _check_pair(a, b)
    a, b = a.double(), b.double()  # the precision of mmd_test's statistic
    h = median_bandwidth(a, b) if bandwidth is None else _check_bandwidth(bandwidth)
    n, m = a.shape[0], b.shape[0]
    s_aa = kernels.gaussian_kernel_sum(a, a, h, exclude_diagonal=True, block=block)
    s_bb = kernels.gaussian_kernel_sum(b, b, h, exclude_diagonal=True, block=block)
    s_ab = kernels.gaussian_kernel_sum(a, b, h, block=block)
    return s_aa / (n * (n - 1)) + s_bb / (m * (m - 1)) - 2 * s_ab / (n * m)


def _check_bandwidth(h: float) -> float:
    if not (h > 0 and math.isfinite(h)):
        raise UsageError(f"kernel bandwidth must be positive and finite, got {h}")
    return float(h)


@dataclass(frozen=True)
class MMDTest:
    """Result of a permutation two-sample test."""

    mmd2: float  # the observed unbiased MMD^2
    p_value: float  # (1 + #{permuted >= observed}) / (1 + permutations)
    bandwidth: float
    permutations: int


def mmd_test(
    a: Tensor,
    b: Tensor,
    bandwidth: float | None = None,
    permutations: int = 200,
    seed: int = 0,
    block: int = kernels.DEFAULT_BLOCK,
) -> MMDTest:
    """Permutation test of H0: ``a`` and ``b`` come from the same distribution.

    The pooled sample's labels are shuffled ``permutations`` times; each permuted MMD^2
    comes from one blockwise product K @ [indicators], so K is never held whole. Each
    sample needs at least :data:`TEST_MIN_SAMPLES` points (see the module docstring).

    Returns:
        The observed MMD^2, the permutation p-value, the bandwidth and the count.
    """
    a, b = _as_features(a, "first sample"), _as_features(b, "second sample")
    _check_pair(a, b, TEST_MIN_SAMPLES, "the MMD test (to reach p < 0.05)")
    if permutations < 1:
        raise UsageError(f"permutations must be at least 1, got {permutations}")
    h = median_bandwidth(a, b, seed) if bandwidth is None else _check_bandwidth(bandwidth)
    pooled = torch.cat([a, b]).double()
    n, total = a.shape[0], pooled.shape[0]
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(total, permutations + 1, dtype=torch.float64)
    labels[:n, 0] = 1.0  # column 0: the observed split
    for p in range(1, permutations + 1):
        labels[torch.randperm(total, generator=g)[:n], p] = 1.0
    cols = torch.cat([labels, torch.ones(total, 1, dtype=torch.float64)], 1)
    k_cols = kernels.gaussian_kernel_matmul(pooled, pooled, cols, h, block=block)
    stats = _split_statistics(labels, k_cols, n, total - n)
    observed = float(stats[0])
    exceed = int((stats[1:] >= observed).sum())
    return MMDTest(observed, (1 + exceed) / (1 + permutations), h, permutations)


def _split_statistics(e: Tensor, k_cols: Tensor, n: int, m: int) -> Tensor:
    """MMD^2_u for each indicator column e of the pooled sample, from K @ [e, 1]."""
    ke, k1 = k_cols[:, :-1], k_cols[:, -1:]  # (N, P), (N, 1)
    total = float(k1.sum())  # 1' K 1
    xx = (e * ke).sum(0)  # e' K e
    x1 = (e * k1).sum(0)  # e' K 1
    s_xx = xx - n  # k(x, x) = 1 on the diagonal
    s_yy = total - 2 * x1 + xx - m
    s_xy = x1 - xx
    return s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2 * s_xy / (n * m)
