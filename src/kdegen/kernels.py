"""Blockwise pairwise distances and reductions over them, in bounded memory.

Every kernel sum in kdegen goes through here: KDE log densities (Generator Reversal
Sec. 3.2; GENs Eq. 2 and 9), MMD (Generator Reversal Eq. 3), the Distribution
Divergence Measure (Basart, Eq. 3.4), Parzen windows and nearest-neighbour tests.
Nothing else builds an N x M matrix: rows of the query set are taken ``block`` at a
time against column blocks of the reference set, so memory is O(block^2) whatever
N and M are, and results do not depend on the block size (up to rounding).

Each tile's exponent comes out of one matrix product with no further pass. Both sets
are first centred on the mean of the reference set (distances do not change; the norms,
and the rounding of ||q||^2 + ||p||^2 - 2 q.p, shrink). For the Gaussian exponent
-s ||q_i - p_j||^2, ``addmm(-s ||p_j||^2, 2s q_i, p_j)`` gives all but the row term
-s ||q_i||^2, which is constant along a row and added to the row's log-sum-exp afterwards.
Where the distance itself is needed, two extra columns, Q_i = [-2 q_i, ||q_i||^2, 1] and
P_j = [p_j, 1, ||p_j||^2], make Q_i . P_j = ||q_i - p_j||^2. A row's log-sum-exp over a
tile is read off PyTorch's fused log-softmax kernel (row max, sum of exponentials, one
write: stable, and faster than ``exp`` + ``sum``) and tiles are merged in float64. Tiles
of float32 inputs stay float32; what is accumulated across tiles is float64.
"""

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
    A: Tensor, B: Tensor, block: int, col: Tensor | None = None, exclude_self: bool = False,
    upper: bool = False, to_exponent: Callable[[Tensor], None] | None = None,
) -> Iterator[tuple[int, Tensor]]:  # fmt: skip
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


def _logsumexp_rows(
    A: Tensor, B: Tensor, exclude_self: bool, block: int, col: Tensor | None = None,
    to_exponent: Callable[[Tensor], None] | None = None,
) -> Tensor:  # fmt: skip
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


def gaussian_kernel_sum(
    a: Tensor, b: Tensor, bandwidth: float, exclude_diagonal: bool = False,
    block: int = DEFAULT_BLOCK,
) -> float:  # fmt: skip
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
    n = query.shape[0]
    Q, P = _augment(query, points)  # tiles of ||q - p||^2
    best_v = torch.full((n, k), torch.inf, dtype=Q.dtype, device=Q.device)
    best_i = torch.full((n, k), -1, dtype=torch.long, device=Q.device)
    for i0, j0, d2 in _tiles(Q, P, block):
        if exclude_self:
            _mask_self(d2, i0, j0, torch.inf)
        rows = slice(i0, i0 + d2.shape[0])
        v, idx = d2.topk(min(k, d2.shape[1]), dim=1, largest=False)
        merged_v, order = torch.cat([best_v[rows], v], 1).topk(k, 1, largest=False)
        best_i[rows] = torch.cat([best_i[rows], idx + j0], 1).gather(1, order)
        best_v[rows] = merged_v
    return best_v.clamp_(min=0).to(query.dtype), best_i


def count_within(
    query: Tensor, points: Tensor, radii_sq: Tensor, block: int = DEFAULT_BLOCK
) -> Tensor:
    """For each query row, how many points p_j have ||q_i - p_j||^2 <= radii_sq[j]: (n,).

    The k-NN-ball membership counts of precision/recall and density (radii_sq: (m,)).
    """
    _check(query, points)
    Q, P = _augment(query, points)  # tiles of ||q - p||^2
    radii = radii_sq.to(device=Q.device, dtype=Q.dtype)
    counts = torch.zeros(query.shape[0], dtype=torch.long, device=Q.device)
    for i0, j0, d2 in _tiles(Q, P, block):
        r, c = d2.shape
        counts[i0 : i0 + r] += (d2 <= radii[j0 : j0 + c]).sum(1)
    return counts


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
    a: Tensor, b: Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0,
    exclude_diagonal: bool = False, block: int = DEFAULT_BLOCK,
) -> float:  # fmt: skip
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
    query: Tensor, points: Tensor, scale: float, exclude_self: bool = False,
    block: int = DEFAULT_BLOCK,
) -> Tensor:  # fmt: skip
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


def softmax_mean_points(
    query: Tensor, points: Tensor, scale: float, block: int = DEFAULT_BLOCK
) -> Tensor:
    """sum_j w_ij p_j with w_ij = softmax_j(-scale ||q_i - p_j||^2), shape (n, d).

    The kernel-weighted mean of the points seen from each query: the gradient of a
    Gaussian KDE's log density is grad_q log sum_j exp(-scale ||q - p_j||^2) =
    2 scale (this - q) (GENs Eq. 4), which the KDE-JSD loss back-propagates through.
    Both sets are centred on the points' mean first (smaller norms, less rounding).
    """
    return logsumexp_and_softmax_mean(query, points, scale, block)[1]


def _equal_pairs_by_tile(
    query_ids: Tensor, sorted_ids: Tensor, order: Tensor, block: int
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The (row, column) pairs of equal ids, split by column tile of width ``block``.

    Found by searching each query id in the sorted point ids (``sorted_ids``, with
    ``order`` their positions; no r x m comparison), so that masking them costs each tile
    an index write of its few pairs rather than a pass over its r x c entries.
    """
    first = torch.searchsorted(sorted_ids, query_ids)
    counts = torch.searchsorted(sorted_ids, query_ids, right=True) - first  # (r,)
    rows = torch.repeat_interleave(torch.arange(len(query_ids), device=query_ids.device), counts)
    starts = torch.cumsum(counts, 0) - counts  # where each row's pairs begin
    rank = torch.arange(len(rows), device=rows.device) - starts[rows]  # 0, 1, ... per row
    cols = order[first[rows] + rank]
    tiles = cols // block
    per_tile = torch.bincount(tiles, minlength=-(-order.shape[0] // block)).tolist()
    by_tile = tiles.argsort()
    return rows[by_tile].split(per_tile), cols[by_tile].split(per_tile)


def logsumexp_and_softmax_mean(
    query: Tensor,
    points: Tensor,
    scale: float,
    block: int = DEFAULT_BLOCK,
    ids: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Both log sum_j exp(-scale ||q_i - p_j||^2), shape (n,), and the softmax-weighted mean
    of the points, shape (n, d), from one pass over the distances.

    A differentiable KDE log density needs the first in its forward pass and the second in
    its backward pass; computing them together halves the distance work of a training step.
    With ``ids`` = (query ids (n,), point ids (m,)), the pairs of equal ids are left out of
    both (a row that leaves out every point gets -inf and NaN).
    """
    _check(query, points)
    _check_block(block)
    centre = points.mean(0, keepdim=True)
    q_all, p_all = query - centre, points - centre
    out = torch.empty_like(q_all)
    lse = torch.empty(query.shape[0], dtype=q_all.dtype, device=q_all.device)
    sorted_ids = None if ids is None else ids[1].sort()  # once, for every row block
    for i0, i1 in _spans(query.shape[0], block):
        q = q_all[i0:i1]
        run_max = torch.full((i1 - i0,), -torch.inf, dtype=q.dtype, device=q.device)
        mass = torch.zeros_like(run_max)  # sum_j exp(u_ij - max): (r,)
        moment = torch.zeros_like(q)  # sum_j exp(u_ij - max) p_j: (r, d)
        pairs = None
        if ids is not None and sorted_ids is not None:
            pairs = _equal_pairs_by_tile(ids[0][i0:i1], *sorted_ids, block)
        for k, (j0, j1) in enumerate(_spans(points.shape[0], block)):
            u = sq_dists(q, p_all[j0:j1]).mul_(-scale)  # (r, c)
            if pairs is not None:
                u[pairs[0][k], pairs[1][k] - j0] = -torch.inf
            new_max = torch.maximum(run_max, u.amax(1))
            shift = torch.where(new_max.isfinite(), new_max, torch.zeros_like(new_max))
            decay = torch.exp(run_max - shift)  # run_max = -inf at first: decay 0
            w = u.sub_(shift[:, None]).exp_()
            mass.mul_(decay).add_(w.sum(1))
            moment.mul_(decay[:, None]).addmm_(w, p_all[j0:j1])
            run_max = new_max
        out[i0:i1] = moment / mass[:, None]
        lse[i0:i1] = run_max + mass.log()
    return lse, out + centre
