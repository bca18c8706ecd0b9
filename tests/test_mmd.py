"""MMD against a direct O(n^2) NumPy formula; the permutation test's behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist, pdist

from kdegen.errors import UsageError
from kdegen.stats import median_bandwidth, mmd2, mmd_test
from kdegen.stats.mmd import _split_statistics


def direct_mmd2(x: np.ndarray, y: np.ndarray, h: float) -> float:
    k = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * h * h))  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


rng = np.random.default_rng(1)
X = rng.normal(size=(40, 3))
Y = rng.normal(size=(55, 3)) + np.array([0.7, 0, 0])


@pytest.mark.parametrize("block", [3, 16, 2048])
def test_mmd2_matches_direct_formula(block: int) -> None:
    got = mmd2(torch.tensor(X), torch.tensor(Y), bandwidth=0.9, block=block)
    assert got == pytest.approx(direct_mmd2(X, Y, 0.9), rel=1e-10)


def test_median_heuristic() -> None:
    h = median_bandwidth(torch.tensor(X), torch.tensor(Y))
    assert h == pytest.approx(np.median(pdist(np.vstack([X, Y]))), rel=1e-10)
    got = mmd2(torch.tensor(X), torch.tensor(Y))
    assert got == pytest.approx(direct_mmd2(X, Y, h), rel=1e-10)


def test_unbiased_near_zero_for_one_distribution() -> None:
    values = [mmd2(torch.randn(30, 2), torch.randn(30, 2), bandwidth=1.0) for _ in range(200)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))


def test_permutation_statistics_equal_recomputed_mmd() -> None:
    pooled = np.vstack([X, Y])
    g = np.random.default_rng(3)
    e = np.zeros((len(pooled), 4))
    splits = [g.permutation(len(pooled))[: len(X)] for _ in range(4)]
    for p, idx in enumerate(splits):
        e[idx, p] = 1
    k = np.exp(-cdist(pooled, pooled, "sqeuclidean") / (2 * 0.8**2))
    cols = np.hstack([k @ e, k.sum(1, keepdims=True)])
    stats = _split_statistics(torch.tensor(e), torch.tensor(cols), len(X), len(Y))
    for p, idx in enumerate(splits):
        rest = np.setdiff1d(np.arange(len(pooled)), idx)
        assert float(stats[p]) == pytest.approx(direct_mmd2(pooled[idx], pooled[rest], 0.8))


def test_permutation_test_rejects_a_shift_and_not_the_null() -> None:
    shifted = mmd_test(torch.tensor(X), torch.tensor(Y), permutations=200)
    assert shifted.p_value < 0.05 and shifted.mmd2 > 0
    torch.manual_seed(0)
    p_values = [mmd_test(torch.randn(25, 2), torch.randn(25, 2), permutations=50, seed=s).p_value
                for s in range(40)]  # fmt: skip
    assert 0.02 < np.mean(np.array(p_values) < 0.1) < 0.3  # about the level 0.1


def test_bad_inputs() -> None:
    with pytest.raises(UsageError, match="dimensions differ"):
        mmd2(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(UsageError, match="at least 2"):
        mmd2(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(UsageError, match="NaN"):
        mmd2(torch.full((5, 2), float("nan")), torch.zeros(5, 2))
    with pytest.raises(UsageError, match="positive"):
        mmd2(torch.zeros(5, 2), torch.ones(5, 2), bandwidth=0.0)


def test_mmd2_is_float64_and_refuses_an_infinite_bandwidth() -> None:
    """mmd2 on float32 features computed in float32 while mmd_test promoted to float64
    (issue 14, 16); an infinite bandwidth was accepted (17)."""
    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(300, 4, generator=g) * 1e3 + 5e3,
        torch.randn(200, 4, generator=g) * 1e3 + 5e3,
    )
    h = 800.0
    assert mmd2(a, b, bandwidth=h) == mmd2(a.double(), b.double(), bandwidth=h)
    with pytest.raises(UsageError, match="positive and finite"):
        mmd2(a, b, bandwidth=math.inf)
