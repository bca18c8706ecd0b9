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

Nearest neighbours and k-NN ball counts (:mod:`.neighbours`) use these tiles only to
screen: the distances they report and compare are direct float64 sums, so exact ties in
the data (copies, quantised or integer features) stay exact.
"""

from __future__ import annotations

from kdegen.kernels.density import (
    kde_log_prob,
    logsumexp_and_softmax_mean,
    softmax_mean_points,
)
from kdegen.kernels.neighbours import count_within, nearest, pair_sq_dists
from kdegen.kernels.sums import (
    gaussian_kernel_matmul,
    gaussian_kernel_sum,
    logsumexp_neg_dist,
    logsumexp_neg_sqdist,
    polynomial_kernel_sum,
    softmax_mean_sqdist,
)
from kdegen.kernels.tiles import DEFAULT_BLOCK, sq_dists

__all__ = [
    "DEFAULT_BLOCK",
    "count_within",
    "gaussian_kernel_matmul",
    "gaussian_kernel_sum",
    "kde_log_prob",
    "logsumexp_and_softmax_mean",
    "logsumexp_neg_dist",
    "logsumexp_neg_sqdist",
    "nearest",
    "pair_sq_dists",
    "polynomial_kernel_sum",
    "softmax_mean_points",
    "softmax_mean_sqdist",
    "sq_dists",
]
