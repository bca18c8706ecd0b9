"""Reductions over all pairs of two sets: log-sum-exps, kernel sums and products
(see :mod:`kdegen.kernels`; nearest neighbours are in :mod:`.neighbours`)."""

from __future__ import annotations

import torch
from torch import Tensor

from kdegen.kernels.tiles import (
    DEFAULT_BLOCK,
    _augment,
    _check,
    _fill_diagonal,
    _logsumexp_rows,
    _mask_self,
    _neg_sqdist_parts,
    _spans,
    _tile_logsumexps,
    _tiles,
    sq_dists,
)


def logsumexp_neg_sqdist(
    query: Tensor,
    points: Tensor,
    scale: float,
    exclude_self: bool = False,
    block: int = DEFAULT_BLOCK,
) -> Tensor:
    """log sum_j exp(-scale * ||q_i - p_j||^2) for each query row, shape (n,).

    Args:
        query: (n, d).
        points: (m, d).
        scale: positive factor, e.g. 1 / (2 h^2) for a Gaussian kernel of bandwidth h.
        exclude_self: leave out j == i (``query`` and ``points`` are the same set):
            the leave-one-out sums of KDE bandwidth selection and entropy.
        block: rows / columns per tile.

    Returns:
        The log-sums, in the dtype of the inputs.
    """
    _check(query, points)
    A, B, col, row = _neg_sqdist_parts(query, points, scale)
    lse = _logsumexp_rows(A, B, exclude_self, block, col=col)
    return (lse + row).to(query.dtype)


def logsumexp_neg_dist(
    query: Tensor,
    points: Tensor,
    scale: float,
    exclude_self: bool = False,
    block: int = DEFAULT_BLOCK,
) -> Tensor:
    """log sum_j exp(-scale * ||q_i - p_j||) (Euclidean, not squared), shape (n,).

    The sibling of :func:`logsumexp_neg_sqdist` for exponentials of plain distances
    (a Laplace-like kernel; the Distribution Divergence Measure with D = scale * ||.||).

    Args:
        query: (n, d).
        points: (m, d).
        scale: positive factor on the distance.
        exclude_self: leave out j == i (``query`` and ``points`` are the same set).
        block: rows / columns per tile.

    Returns:
        The log-sums, in the dtype of the inputs.
    """
    _check(query, points)
    Q, P = _augment(query, points)  # tiles of ||q - p||^2

    def to_exponent(tile: Tensor) -> None:
        tile.clamp_(min=0).sqrt_().mul_(-scale)

    return _logsumexp_rows(Q, P, exclude_self, block, to_exponent=to_exponent).to(query.dtype)


def gaussian_kernel_sum(
    a: Tensor,
    b: Tensor,
    bandwidth: float,
    exclude_diagonal: bool = False,
    block: int = DEFAULT_BLOCK,
) -> float:
    """sum_ij exp(-||a_i - b_j||^2 / (2 h^2)) accumulated in float64.

    When ``exclude_diagonal`` is set and ``b`` is ``a`` (the same tensor object), the
    kernel matrix is symmetric: only tiles on and above the diagonal are computed and the
    others counted twice, which halves the work.

    Args:
        a: (n, d).
        b: (m, d).
        bandwidth: kernel bandwidth h > 0.
        exclude_diagonal: leave out i == j (``a`` and ``b`` are the same set).
        block: rows / columns per tile.
    """
    _check(a, b)
    scale = 1.0 / (2.0 * bandwidth * bandwidth)
    symmetric = exclude_diagonal and a is b
    A, B, col, row = _neg_sqdist_parts(a, b, scale)
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i0, lse in _tile_logsumexps(A, B, block, col, exclude_diagonal, upper=symmetric):
        # sum_j k_ij = exp(the row's log-sum-exp + its row term); sums: (tiles,)
        sums = (lse + row[i0 : i0 + lse.shape[1]]).exp().sum(1)
        # symmetric: tile 0 is on the diagonal, the others stand for their mirror images too
        total += 2.0 * sums.sum() - sums[0] if symmetric else sums.sum()
    return float(total)


def gaussian_kernel_matmul(
    a: Tensor, b: Tensor, v: Tensor, bandwidth: float, block: int = DEFAULT_BLOCK
) -> Tensor:
    """K(a, b) @ v for the Gaussian kernel, without holding K: shape (n, p).

    Args:
        a: (n, d).
        b: (m, d).
        v: (m, p) weights (e.g. one indicator column per permutation of a test).
        bandwidth: kernel bandwidth h > 0.
        block: rows / columns per tile.
    """
    _check(a, b)
    scale = 1.0 / (2.0 * bandwidth * bandwidth)
    A, B = _augment(a, b)  # tiles of ||a_i - b_j||^2
    out = torch.zeros(a.shape[0], v.shape[1], dtype=v.dtype, device=v.device)
    for i0, j0, tile in _tiles(A, B, block):
        k = tile.clamp_(min=0).mul_(-scale).exp_()  # clamp: k <= 1 exactly, as on the diagonal
        out[i0 : i0 + k.shape[0]] += k.to(v.dtype) @ v[j0 : j0 + k.shape[1]]
    return out


def polynomial_kernel_sum(
    a: Tensor,
    b: Tensor,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    exclude_diagonal: bool = False,
    block: int = DEFAULT_BLOCK,
) -> float:
    """sum_ij (gamma a_i.b_j + coef0)^degree accumulated in float64 (KID's kernel).

    Args:
        a: (n, d).
        b: (m, d).
        degree: integer power.
        gamma: factor on the inner product; None takes 1 / d.
        coef0: constant added before the power.
        exclude_diagonal: leave out i == j (``a`` and ``b`` are the same set); when ``b``
            is ``a`` only tiles on and above the diagonal are computed.
        block: rows / columns per tile.
    """
    _check(a, b)
    g = 1.0 / a.shape[1] if gamma is None else gamma
    symmetric = exclude_diagonal and a is b
    ones = torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)
    A = torch.cat([a * g, ones], 1)  # A_i . B_j = gamma a_i.b_j + coef0
    B = torch.cat([b, torch.full((b.shape[0], 1), coef0, dtype=b.dtype, device=b.device)], 1)
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i0, j0, tile in _tiles(A, B, block, upper=symmetric):
        tile.pow_(degree)
        if exclude_diagonal:
            _mask_self(tile, i0, j0, 0.0)
        tile_sum = tile.sum(dtype=torch.float64)
        total += 2.0 * tile_sum if symmetric and j0 > i0 else tile_sum
    return float(total)


def softmax_mean_sqdist(
    query: Tensor,
    points: Tensor,
    scale: float,
    exclude_self: bool = False,
    block: int = DEFAULT_BLOCK,
) -> Tensor:
    """sum_j w_ij ||q_i - p_j||^2 with w_ij = softmax_j(-scale ||q_i - p_j||^2), shape (n,).

    The weighted mean squared distance of the maximum-likelihood bandwidth fixed point
    (GENs supplement, Eq. 5); ``exclude_self`` leaves out j == i.
    """
    _check(query, points)
    out = torch.empty(query.shape[0], dtype=query.dtype, device=query.device)
    for i0, i1 in _spans(query.shape[0], block):
        q = query[i0:i1]
        run_max = torch.full((i1 - i0,), -torch.inf, dtype=q.dtype, device=q.device)
        mass = torch.zeros_like(run_max)  # sum_j exp(u_ij - max)
        moment = torch.zeros_like(run_max)  # sum_j exp(u_ij - max) d2_ij
        for j0, j1 in _spans(points.shape[0], block):
            d2 = sq_dists(q, points[j0:j1])
            u = d2 * -scale
            if exclude_self and j0 < i1 and i0 < j1:
                _fill_diagonal(u, i0, j0, -torch.inf)
            new_max = torch.maximum(run_max, u.amax(1))
            safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
            decay = torch.exp(run_max - safe)
            w = u.sub_(safe[:, None]).exp_()
            mass.mul_(decay).add_(w.sum(1))
            moment.mul_(decay).add_((w * d2).sum(1))
            run_max = new_max
        out[i0:i1] = moment / mass
    return out
