"""Blockwise pairwise distances and reductions over them, in bounded memory.

Every kernel sum in kdegen goes through here: KDE log densities (Generator Reversal
Sec. 3.2; GENs Eq. 2 and 9), MMD (Generator Reversal Eq. 3), the Distribution
Divergence Measure (Basart, Eq. 3.4), Parzen windows and nearest-neighbour tests.
Nothing else builds an N x M matrix: rows of the query set are taken ``block`` at a
time against column blocks of the reference set, so memory is O(block^2) whatever
N and M are, and results do not depend on the block size (up to rounding).

Squared distances are computed as ||a||^2 + ||b||^2 - 2 a.b with one matrix product
per tile. Inside a log-sum-exp the row term ||a_i||^2 is constant along the row, so a
tile only needs the product and the column norms, which ``addmm`` fuses.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

DEFAULT_BLOCK = 2048


def _spans(n: int, block: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, block):
        yield start, min(start + block, n)


def _check(a: Tensor, b: Tensor) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (n, d) and (m, d) arrays, got {tuple(a.shape)}, {tuple(b.shape)}")


def sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances (n, m) of one tile (clamped at 0 against rounding)."""
    d2 = torch.addmm((b * b).sum(1)[None, :], a, b.T, alpha=-2.0)
    d2.add_((a * a).sum(1)[:, None])
    return d2.clamp_(min=0)


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
    out = torch.empty(query.shape[0], dtype=query.dtype, device=query.device)
    col_norms = (points * points).sum(1)
    for i0, i1 in _spans(query.shape[0], block):
        q = query[i0:i1]
        run_max = torch.full((i1 - i0,), -torch.inf, dtype=q.dtype, device=q.device)
        run_sum = torch.zeros_like(run_max)
        for j0, j1 in _spans(points.shape[0], block):
            # u_ij = -scale * (||p_j||^2 - 2 q_i.p_j); the row's ||q_i||^2 is added at the end
            u = torch.addmm(col_norms[j0:j1][None, :], q, points[j0:j1].T, alpha=-2.0)
            u.mul_(-scale)
            if exclude_self and j0 < i1 and i0 < j1:
                _fill_diagonal(u, i0, j0, -torch.inf)
            tile_max = u.max(1).values
            new_max = torch.maximum(run_max, tile_max)
            safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
            run_sum.mul_(torch.exp(run_max - safe)).add_(u.sub_(safe[:, None]).exp_().sum(1))
            run_max = new_max
        safe = torch.where(torch.isfinite(run_max), run_max, torch.zeros_like(run_max))
        out[i0:i1] = safe + torch.log(run_sum) - scale * (q * q).sum(1)
    return out


def _fill_diagonal(tile: Tensor, i0: int, j0: int, value: float) -> None:
    """Set tile[r, c] = value where global row i0 + r equals global column j0 + c."""
    rows = torch.arange(tile.shape[0], device=tile.device)
    cols = rows + i0 - j0
    ok = (cols >= 0) & (cols < tile.shape[1])
    tile[rows[ok], cols[ok]] = value


def gaussian_kernel_sum(
    a: Tensor, b: Tensor, bandwidth: float, exclude_diagonal: bool = False,
    block: int = DEFAULT_BLOCK,
) -> float:  # fmt: skip
    """sum_ij exp(-||a_i - b_j||^2 / (2 h^2)) accumulated in float64.

    Args:
        a: (n, d).
        b: (m, d).
        bandwidth: kernel bandwidth h > 0.
        exclude_diagonal: leave out i == j (``a`` and ``b`` are the same set).
        block: rows / columns per tile.
    """
    _check(a, b)
    scale = 1.0 / (2.0 * bandwidth * bandwidth)
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i0, i1 in _spans(a.shape[0], block):
        for j0, j1 in _spans(b.shape[0], block):
            k = sq_dists(a[i0:i1], b[j0:j1]).mul_(-scale).exp_()
            if exclude_diagonal and j0 < i1 and i0 < j1:
                _fill_diagonal(k, i0, j0, 0.0)
            total += k.sum(dtype=torch.float64)
    return float(total)


def nearest(
    query: Tensor, points: Tensor, k: int = 1, exclude_self: bool = False,
    block: int = DEFAULT_BLOCK,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The k smallest squared distances from each query row to ``points``, and their indices.

    Returns:
        (values (n, k) ascending, indices (n, k)).
    """
    _check(query, points)
    if k > points.shape[0] - int(exclude_self):
        raise ValueError(f"k={k} exceeds the number of candidate points")
    values, indices = [], []
    for i0, i1 in _spans(query.shape[0], block):
        best_v = torch.empty(i1 - i0, 0, dtype=query.dtype, device=query.device)
        best_i = torch.empty(i1 - i0, 0, dtype=torch.long, device=query.device)
        for j0, j1 in _spans(points.shape[0], block):
            d2 = sq_dists(query[i0:i1], points[j0:j1])
            if exclude_self and j0 < i1 and i0 < j1:
                _fill_diagonal(d2, i0, j0, torch.inf)
            kk = min(k, j1 - j0)
            v, idx = d2.topk(kk, dim=1, largest=False)
            best_v, order = torch.cat([best_v, v], 1).topk(min(k, best_v.shape[1] + kk), 1, False)
            best_i = torch.cat([best_i, idx + j0], 1).gather(1, order)
        values.append(best_v)
        indices.append(best_i)
    return torch.cat(values), torch.cat(indices)


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
    out = torch.zeros(a.shape[0], v.shape[1], dtype=v.dtype, device=v.device)
    for i0, i1 in _spans(a.shape[0], block):
        for j0, j1 in _spans(b.shape[0], block):
            k = sq_dists(a[i0:i1], b[j0:j1]).mul_(-scale).exp_()
            out[i0:i1] += k.to(v.dtype) @ v[j0:j1]
    return out
