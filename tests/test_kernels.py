"""The blockwise kernel layer against direct O(n^2) formulas, for every block size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from kdegen.kernels import (
    gaussian_kernel_sum,
    logsumexp_and_softmax_mean,
    logsumexp_neg_sqdist,
    nearest,
    softmax_mean_points,
    sq_dists,
)

rng = np.random.default_rng(0)
A = rng.normal(size=(37, 5))
B = rng.normal(size=(53, 5)) + 0.5
D2 = cdist(A, B, "sqeuclidean")
D2_AA = cdist(A, A, "sqeuclidean")


def t(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def test_sq_dists() -> None:
    np.testing.assert_allclose(sq_dists(t(A), t(B)).numpy(), D2, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("block", [1, 7, 16, 64, 4096])
def test_logsumexp_matches_direct_formula(block: int) -> None:
    got = logsumexp_neg_sqdist(t(A), t(B), scale=0.7, block=block).numpy()
    np.testing.assert_allclose(got, logsumexp(-0.7 * D2, axis=1), rtol=1e-10)
    loo = logsumexp_neg_sqdist(t(A), t(A), scale=0.7, exclude_self=True, block=block).numpy()
    masked = np.where(np.eye(len(A), dtype=bool), -np.inf, -0.7 * D2_AA)
    np.testing.assert_allclose(loo, logsumexp(masked, axis=1), rtol=1e-10)


def test_logsumexp_survives_large_scales() -> None:
    """Far points underflow exp() naively; the running maximum keeps the result exact."""
    got = logsumexp_neg_sqdist(t(A), t(B), scale=500.0, block=8).numpy()
    np.testing.assert_allclose(got, logsumexp(-500.0 * D2, axis=1), rtol=1e-10)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("block", [1, 10, 4096])
def test_gaussian_kernel_sum(block: int) -> None:
    h = 1.3
    full = np.exp(-D2 / (2 * h * h)).sum()
    assert gaussian_kernel_sum(t(A), t(B), h, block=block) == pytest.approx(full, rel=1e-12)
    k_aa = np.exp(-D2_AA / (2 * h * h))
    off = k_aa.sum() - np.trace(k_aa)
    got = gaussian_kernel_sum(t(A), t(A), h, exclude_diagonal=True, block=block)
    assert got == pytest.approx(off, rel=1e-12)


@pytest.mark.parametrize("block", [1, 9, 4096])
def test_nearest(block: int) -> None:
    v, i = nearest(t(A), t(B), k=3, block=block)
    order = np.argsort(D2, axis=1)[:, :3]
    np.testing.assert_array_equal(i.numpy(), order)
    np.testing.assert_allclose(v.numpy(), np.take_along_axis(D2, order, 1), rtol=1e-10)
    v, i = nearest(t(A), t(A), k=2, exclude_self=True, block=block)
    masked = D2_AA + np.diag(np.full(len(A), np.inf))
    np.testing.assert_array_equal(i.numpy(), np.argsort(masked, axis=1)[:, :2])


@pytest.mark.parametrize("block", [7, 1024])
def test_logsumexp_and_softmax_mean_match_direct_formulas(block: int) -> None:
    g = torch.Generator().manual_seed(3)
    q = torch.randn(50, 4, generator=g, dtype=torch.float64)
    p = torch.randn(90, 4, generator=g, dtype=torch.float64)
    scale = 0.7
    u = -scale * cdist(q.numpy(), p.numpy(), "sqeuclidean")  # (50, 90)
    w = np.exp(u - logsumexp(u, axis=1, keepdims=True))
    lse, mean = logsumexp_and_softmax_mean(q, p, scale, block=block)
    np.testing.assert_allclose(lse.numpy(), logsumexp(u, axis=1), rtol=1e-12)
    np.testing.assert_allclose(mean.numpy(), w @ p.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(softmax_mean_points(q, p, scale, block).numpy(), w @ p.numpy(),
                               rtol=1e-10, atol=1e-12)  # fmt: skip
