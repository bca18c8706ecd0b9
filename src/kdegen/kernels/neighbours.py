"""Nearest neighbours and ball counts whose ties are exact (k-NN radii, closed balls).

The squared distance of two rows here is the direct sum d(a, b) = sum_k (a_k - b_k)^2 in
float64, added left to right (:func:`pair_sq_dists`). That value is 0 for identical
rows, the same whichever of the two sets is the query (a_k - b_k and b_k - a_k square
to the same number) and exact for integer coordinates (while the sums stay below 2^53),
so ties in the data are ties in the distances: a copy lies in every closed ball its
original lies in.

Computing it for every pair would cost O(n m d) without a matrix product. So the tiles
of :mod:`.tiles` (||q||^2 + ||p||^2 - 2 q.p after centring, in the inputs' precision)
screen: with u the unit roundoff, their rounding is within
(5 d + 14) u (||q'||^2 + ||p'||^2) of the direct sum (q', p' the centred rows; the dot
product's |fl(x.y) - x.y| <= gamma_n |x|.|y| of Higham, Accuracy and Stability of
Numerical Algorithms, Sec. 3.1, plus the centring and the direct sum's own rounding),
and twice that is the ``slack`` used here. A pair whose screened value is farther than
the slack from the threshold is decided by it; the few others are recomputed directly.
Memory stays O(block^2).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from kdegen.kernels.tiles import DEFAULT_BLOCK, _augment, _check, _mask_self, _tiles

PAIR_CHUNK = 1 << 22  # float64 differences held at once by pair_sq_dists (32 MiB)
# reduced-precision float32 products (torch.set_float32_matmul_precision): TF32, bfloat16
_MATMUL_ROUNDOFF = {"highest": 0.0, "high": 2.0**-11, "medium": 2.0**-8}


def pair_sq_dists(a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """sum_k (a[rows[t], k] - b[cols[t], k])^2 for each t, in float64: shape (len(rows),).

    The sum runs left to right (a cumulative sum), so it depends on nothing but the two
    rows: the same pair gives the same value in any call, in either order.
    """
    out = torch.empty(rows.shape[0], dtype=torch.float64, device=a.device)
    step = max(1, PAIR_CHUNK // max(1, a.shape[1]))
    for s in range(0, rows.shape[0], step):
        diff = a[rows[s : s + step]].double()  # (c, d)
        diff -= b[cols[s : s + step]]  # float32 rows widen exactly
        out[s : s + step] = diff.square_().cumsum(1)[:, -1]
    return out


def _slack(Q: Tensor, P: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row parts (n,), (m,) of the screening bound: slack_ij <= sq_i + sp_j."""
    d = Q.shape[1] - 2
    u = torch.finfo(Q.dtype).eps / 2
    if Q.dtype == torch.float32:
        u = max(u, _MATMUL_ROUNDOFF.get(torch.get_float32_matmul_precision(), 2.0**-8))
    factor = 2 * (5 * d + 14) * u  # the bounds are float64: they add no rounding of note
    return Q[:, d].double() * factor, P[:, d + 1].double() * factor  # centred squared norms


def _screened(
    query: Tensor, points: Tensor, block: int, exclude_self: bool
) -> Iterator[tuple[int, int, Tensor, Tensor, float]]:
    """Yield (i0, j0, tile, sq, sp): tile - sq_i - sp <= d(q_i, p_j) <= tile + sq_i + sp.

    ``sq`` (r,) is the rows' slack, ``sp`` the largest slack of the tile's columns (one
    number keeps every test a comparison with a row or column vector). The tile is
    reused by the next step; with ``exclude_self`` its diagonal is inf.
    """
    Q, P = _augment(query, points)  # tiles of ||q - p||^2 (see kdegen.kernels)
    sq, sp = _slack(Q, P)
    for i0, j0, tile in _tiles(Q, P, block):
        r, c = tile.shape
        if exclude_self:
            _mask_self(tile, i0, j0, torch.inf)
        yield i0, j0, tile, sq[i0 : i0 + r], float(sp[j0 : j0 + c].max())


def _merge(
    best_v: Tensor, best_i: Tensor, rows: Tensor, cols: Tensor, values: Tensor
) -> tuple[Tensor, Tensor]:
    """Each row's k smallest of its best (r, k) and of the (row, col, value) candidates."""
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(rows[order], stable=True)]  # by row, then by value
    rows, cols, values = rows[order], cols[order], values[order]
    rank = torch.arange(rows.shape[0], device=rows.device) - torch.searchsorted(rows, rows)
    keep = rank < best_v.shape[1]  # a row's k smallest candidates
    new_v, new_i = torch.full_like(best_v, torch.inf), torch.full_like(best_i, -1)
    new_v[rows[keep], rank[keep]] = values[keep]
    new_i[rows[keep], rank[keep]] = cols[keep]
    merged_v, order = torch.cat([best_v, new_v], 1).topk(best_v.shape[1], 1, largest=False)
    return merged_v, torch.cat([best_i, new_i], 1).gather(1, order)


def nearest(
    query: Tensor,
    points: Tensor,
    k: int = 1,
    exclude_self: bool = False,
    block: int = DEFAULT_BLOCK,
) -> tuple[Tensor, Tensor]:
    """The k smallest squared distances from each query row to ``points``, and their indices.

    Distances are the direct sums of :func:`pair_sq_dists` (exactly 0 for a copy). A
    pair can be among the k nearest only if its lower bound is at most the k-th smallest
    upper bound seen so far, which only falls as tiles go by; only those are recomputed.

    Returns:
        (values (n, k) ascending, float64; indices (n, k)); ties in any order.
    """
    _check(query, points)
    if k > points.shape[0] - int(exclude_self):
        raise ValueError(f"k={k} exceeds the number of candidate points")
    n = query.shape[0]
    best_v = torch.full((n, k), torch.inf, dtype=torch.float64, device=query.device)
    best_i = torch.full((n, k), -1, dtype=torch.long, device=query.device)
    upper = torch.full((n, k), torch.inf, dtype=torch.float64, device=query.device)
    for i0, j0, tile, sq, sp in _screened(query, points, block, exclude_self):
        rows = slice(i0, i0 + tile.shape[0])
        top = tile.topk(min(k, tile.shape[1]), dim=1, largest=False).values.double()
        top += (sq + sp)[:, None]  # upper bounds of the tile's k smallest
        upper[rows] = torch.cat([upper[rows], top], 1).topk(k, 1, largest=False).values
        # lower bound <= k-th upper bound (inf until k points are seen; not the diagonal)
        candidates = tile <= (upper[rows, k - 1] + sq + sp)[:, None]
        if exclude_self:
            candidates &= tile.isfinite()
        r, c = torch.nonzero(candidates, as_tuple=True)
        exact = pair_sq_dists(query, points, r + i0, c + j0)
        best_v[rows], best_i[rows] = _merge(best_v[rows], best_i[rows], r, c + j0, exact)
    return best_v, best_i


def count_within(
    query: Tensor, points: Tensor, radii_sq: Tensor, block: int = DEFAULT_BLOCK
) -> Tensor:
    """For each query row, how many points p_j have d(q_i, p_j) <= radii_sq[j]: (n,).

    The closed k-NN balls of precision/recall and density (radii_sq: (m,), e.g. from
    :func:`nearest`); d is the direct sum of :func:`pair_sq_dists`, so a point on a
    ball's sphere, such as a copy of the centre's k-th neighbour, is inside.
    """
    _check(query, points)
    radii = radii_sq.to(device=query.device, dtype=torch.float64)
    counts = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    for i0, j0, tile, sq, sp in _screened(query, points, block, exclude_self=False):
        r = radii[j0 : j0 + tile.shape[1]]
        slack = float(sq.max()) + sp
        sure = tile <= r - slack  # even the upper bound is inside (compared in float64)
        rows, cols = torch.nonzero((tile <= r + slack) & ~sure, as_tuple=True)
        inside = pair_sq_dists(query, points, rows + i0, cols + j0) <= r[cols]
        counts[i0 : i0 + tile.shape[0]] += sure.sum(1)
        counts.index_add_(0, rows[inside] + i0, torch.ones_like(rows[inside]))
    return counts
