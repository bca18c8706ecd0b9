"""The Gaussian kernel density estimate: one differentiable, blockwise log density.

log p(z) = log (1/m) sum_i N(z; c_i, h^2 I) is what the KDE prior of KDE-GAN (Generator
Reversal Sec. 3.2), the KDE-JSD of GENs (Eq. 1-2) and Parzen windows all evaluate;
:func:`kde_log_prob` is the one implementation they share. Its backward pass is written
by hand (the kernel-weighted mean of the centres, GENs Eq. 4) because the tiles of the
kernel layer are written in place, which autograd cannot trace.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from kdegen.errors import UsageError
from kdegen.kernels.sums import logsumexp_neg_sqdist
from kdegen.kernels.tiles import DEFAULT_BLOCK, _check, _check_block, _spans, sq_dists


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


class _LogKDE(torch.autograd.Function):
    """log sum_i exp(-||z - c_i||^2 / 2h^2) per row of z, and log of the centres counted;
    differentiable in z only.

    With ids, a row's sum and its count leave out the centres of the row's own id.
    """

    @staticmethod
    def forward(
        ctx: Any,
        z: Tensor,
        centres: Tensor,
        h: float,
        block: int,
        ids: tuple[Tensor, Tensor] | None,
        exclude_self: bool,
    ) -> Tensor:
        scale = 1.0 / (2.0 * h * h)
        if ctx.needs_input_grad[0] or ids is not None:  # the backward's means, same pass
            if exclude_self:
                own = torch.arange(z.shape[0], device=z.device)
                ids = (own, own)
            lse, mean = logsumexp_and_softmax_mean(z, centres, scale, block, ids)
            ctx.save_for_backward(z, mean)
        else:
            lse = logsumexp_neg_sqdist(z, centres, scale, exclude_self, block)  # (n,)
        ctx.scale = scale
        return lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:
        z, mean = ctx.saved_tensors  # mean: (n, l) softmax-weighted centres (GENs Eq. 4)
        return grad[:, None] * (mean - z) * (2.0 * ctx.scale), None, None, None, None, None


def _finite(x: Tensor, what: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise UsageError(f"the KDE {what} contain NaN or infinite values; check what produced them")


def kde_log_prob(
    z: Tensor,
    centres: Tensor,
    bandwidth: float,
    block: int = DEFAULT_BLOCK,
    ids: tuple[Tensor, Tensor] | None = None,
    dtype: torch.dtype | None = None,
    exclude_self: bool = False,
) -> Tensor:
    """log (1/m) sum_i N(z; c_i, h^2 I) for each row of ``z``, differentiable w.r.t. ``z``.

    Args:
        z: (n, d) query points.
        centres: (m, d) kernel centres, treated as constants (cast to the dtype of ``z``).
        bandwidth: kernel std h > 0.
        block: tile size of the kernel sums (the values do not depend on it).
        ids: optional (query ids (n,), centre ids (m,)): a query's density then leaves out
            the centres with its own id and averages over the others (leave-one-out; a
            GEN's ids are image indices, so an image's own lagging code is left out).
        dtype: the dtype the normalisation is applied in (default that of ``z``; Parzen
            windows report float64).
        exclude_self: ``z`` and ``centres`` are the same set and each row leaves out its
            own centre (the leave-one-out density of the KDE entropy, GENs Eq. 9).

    Returns:
        (n,) log densities (-inf where every centre is left out).

    Raises:
        UsageError: a non-positive bandwidth, mismatched shapes or ids, or NaN or infinite
            queries or centres.
    """
    if not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise UsageError(f"the KDE bandwidth must be positive and finite, got {bandwidth}")
    if z.dim() != 2 or centres.dim() != 2 or z.shape[1] != centres.shape[1]:
        raise UsageError(
            f"kde_log_prob: need (n, d) queries and (m, d) centres, got {tuple(z.shape)} "
            f"and {tuple(centres.shape)}"
        )
    if centres.shape[0] == 0:
        raise UsageError("the KDE has no centres")
    _finite(z.detach(), "query points")
    _finite(centres, "centres")
    points = centres.detach().to(device=z.device, dtype=z.dtype)
    if exclude_self and (ids is not None or z.shape != points.shape):
        raise UsageError("kde_log_prob: exclude_self needs the queries to be the centres, no ids")
    if ids is not None:
        ids = (ids[0].to(z.device), ids[1].to(z.device))
        if ids[0].shape != z.shape[:1] or ids[1].shape != points.shape[:1]:
            raise UsageError("kde_log_prob: ids must be (n,) and (m,), one per query and centre")
    lse: Tensor = _LogKDE.apply(z, points, float(bandwidth), block, ids, exclude_self)
    if dtype is not None:
        lse = lse.to(dtype)
    log_norm = 0.5 * z.shape[1] * math.log(2 * math.pi * bandwidth * bandwidth)
    if ids is None:
        return lse - (math.log(points.shape[0] - int(exclude_self)) + log_norm)
    ordered = ids[1].sort().values  # how many centres share each row's id:
    same = torch.searchsorted(ordered, ids[0], right=True) - torch.searchsorted(ordered, ids[0])
    kept = points.shape[0] - same  # (n,)
    return lse - kept.to(lse.dtype).log() - log_norm
