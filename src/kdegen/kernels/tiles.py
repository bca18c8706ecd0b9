"""The tile machinery under every kernel reduction: centring, augmented products,
reused tile buffers and per-tile log-sum-exps (see :mod:`kdegen.kernels`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

DEFAULT_BLOCK = 1024  # float32 tiles of 4 MiB: fast on CPUs with 1-2 MiB of L2 per core


def _spans(n: int, block: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, block):
        yield start, min(start + block, n)


def _check(a: Tensor, b: Tensor) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (n, d) and (m, d) arrays, got {tuple(a.shape)}, {tuple(b.shape)}")


def _check_block(block: int) -> None:
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")


def _augment(query: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
    """Q (n, d+2) and P (m, d+2) with Q @ P.T = ||q_i - p_j||^2 (see the top)."""
    centre = points.mean(0, keepdim=True)
    q, p = query - centre, points - centre
    q_norm = (q * q).sum(1, keepdim=True)  # (n, 1)
    p_norm = (p * p).sum(1, keepdim=True)  # (m, 1)
    Q = torch.cat([q * -2.0, q_norm, torch.ones_like(q_norm)], 1)
    P = torch.cat([p, torch.ones_like(p_norm), p_norm], 1)
    return Q, P


def _neg_sqdist_parts(
    query: Tensor, points: Tensor, scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(A, B, col, row): A_i . B_j + col_j + row_i = -scale ||q_i - p_j||^2 (see the top).

    Shapes (n, d), (m, d), (m,), and row (n,) in float64.
    """
    centre = points.mean(0, keepdim=True)
    q, p = query - centre, points - centre
    row = (q * q).sum(1).double() * -scale
    return q * (2.0 * scale), p, (p * p).sum(1) * -scale, row


def _tiles(
    A: Tensor, B: Tensor, block: int, upper: bool = False, col: Tensor | None = None
) -> Iterator[tuple[int, int, Tensor]]:
    """Yield (i0, j0, tile) with tile = A[i0:i0+r] @ B[j0:j0+c].T (+ col[j0:j0+c]).

    Every tile lives in one buffer allocated once and reused (a fresh tensor per tile
    costs page faults), so a consumer must be done with it before the next step.
    ``upper`` yields only tiles with j0 >= i0 (symmetric sums over one set).
    """
    _check_block(block)
    buf = torch.empty(
        min(block, A.shape[0]) * min(block, B.shape[0]), dtype=A.dtype, device=A.device
    )
    for i0, i1 in _spans(A.shape[0], block):
        for j0, j1 in _spans(B.shape[0], block):
            if upper and j0 < i0:
                continue
            tile = buf[: (i1 - i0) * (j1 - j0)].view(i1 - i0, j1 - j0)
            if col is None:
                torch.mm(A[i0:i1], B[j0:j1].T, out=tile)
            else:  # the same product as the bare distances need: addmm fuses the column term
                torch.addmm(col[None, j0:j1], A[i0:i1], B[j0:j1].T, out=tile)
            yield i0, j0, tile


def _tile_logsumexps(
    A: Tensor,
    B: Tensor,
    block: int,
    col: Tensor | None = None,
    exclude_self: bool = False,
    upper: bool = False,
    to_exponent: Callable[[Tensor], None] | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """Per row block, the log-sum-exp of each row over each column tile of the products.

    Yields (i0, lse) with lse (tiles, r) float64: lse[t, i] = log sum_j exp(u_ij) over
    the t-th column tile computed for this row block (with ``upper``, the first one is
    the diagonal tile); u is the tile of :func:`_tiles`, mapped in place by ``to_exponent``.

    Per tile: the product, the row maximum, PyTorch's fused log_softmax and the maximum
    of that. log_softmax writes u - lse, which at the row maximum is max - lse up to
    rounding, so lse = max(u) - max(log_softmax(u)). It writes over the tile itself: the
    kernel reads a whole row (max, then sum of exponentials) before writing any of it,
    and skipping a second buffer keeps the tile in cache (~10% faster). Rows that are all
    -inf give -inf.
    """
    _check_block(block)
    m = B.shape[0]
    maxima = torch.empty(2, -(-m // block), min(block, A.shape[0]), dtype=A.dtype, device=A.device)
    for i0, j0, tile in _tiles(A, B, block, upper, col):
        r, c = tile.shape[0], j0 // block
        if to_exponent is not None:
            to_exponent(tile)
        if exclude_self:
            _mask_self(tile, i0, j0, -torch.inf)
        torch.amax(tile, 1, out=maxima[0, c, :r])
        torch.log_softmax(tile, 1, out=tile)
        torch.amax(tile, 1, out=maxima[1, c, :r])
        if j0 + tile.shape[1] == m:  # the row block is complete
            first = i0 // block if upper else 0
            top, soft = maxima[0, first : c + 1, :r].double(), maxima[1, first : c + 1, :r].double()
            yield i0, torch.where(torch.isneginf(top), top, top - soft)


def _mask_self(tile: Tensor, i0: int, j0: int, value: float) -> None:
    """Set the entries of a tile whose global row and column indices are equal."""
    r, c = tile.shape
    if j0 < i0 + r and i0 < j0 + c:
        _fill_diagonal(tile, i0, j0, value)


def sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances (n, m) of one tile (clamped at 0 against rounding)."""
    d2 = torch.addmm((b * b).sum(1)[None, :], a, b.T, alpha=-2.0)
    d2.add_((a * a).sum(1)[:, None])
    return d2.clamp_(min=0)


def _logsumexp_rows(
    A: Tensor,
    B: Tensor,
    exclude_self: bool,
    block: int,
    col: Tensor | None = None,
    to_exponent: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Row log-sum-exp over all tiles of :func:`_tile_logsumexps`, float64 (n,)."""
    out = torch.full((A.shape[0],), -torch.inf, dtype=torch.float64, device=A.device)
    for i0, lse in _tile_logsumexps(A, B, block, col, exclude_self, to_exponent=to_exponent):
        out[i0 : i0 + lse.shape[1]] = torch.logsumexp(lse, 0)
    return out


def _fill_diagonal(tile: Tensor, i0: int, j0: int, value: float) -> None:
    """Set tile[r, c] = value where global row i0 + r equals global column j0 + c."""
    rows = torch.arange(tile.shape[0], device=tile.device)
    cols = rows + i0 - j0
    ok = (cols >= 0) & (cols < tile.shape[1])
    tile[rows[ok], cols[ok]] = value
