"""Kernel MMD metrics: KID (Binkowski et al. 2018) and the Gaussian-kernel MMD test.

The GAN tutorial's kernel MMD,
    MMD^2 = E[k(x_r, x_r')] - 2 E[k(x_r, x_g)] + E[k(x_g, x_g')],
is estimated without bias (Generator Reversal Eq. 2-3; :mod:`kdegen.stats.mmd`, which
this package re-exports rather than copies). KID is the same unbiased estimator with the
polynomial kernel k(x, y) = (gamma x.y + coef0)^degree, gamma = 1/d, averaged over random
subsets as torch-fidelity does: ``subsets`` times, draw ``subset_size`` samples of each set
without replacement and compute

    sum_{i!=j} [k(x_i, x_j) + k(y_i, y_j)] / (m(m-1)) - 2 sum_{ij} k(x_i, y_j) / m^2;

the result is the mean and the (ddof=0) standard deviation over subsets.

Sizes. Both need 4 samples per set: an MMD^2 from fewer cannot be told from 0, since
its own permutation test cannot reach p < 0.05 (:mod:`kdegen.stats.mmd`); KID's subsets
need 2 samples for the unbiased sums and at most the smaller set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.evaluation.metrics.inputs import Array, Minimum, as_pair, at_least, positive
from kdegen.evaluation.metrics.registry import Inputs, register_metric
from kdegen.stats.mmd import TEST_MIN_SAMPLES, MMDTest, mmd2, mmd_test

__all__ = ["KIDResult", "MMDTest", "kid", "mmd2", "mmd_test"]

MINIMUM = Minimum(TEST_MIN_SAMPLES, "with fewer, an MMD^2 cannot be told from 0 at p < 0.05")


@dataclass(frozen=True)
class KIDResult:
    """Mean and standard deviation (ddof=0) of the unbiased polynomial MMD^2 over subsets."""

    mean: float
    std: float
    subsets: int
    subset_size: int


def kid(
    a: Array,
    b: Array,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
    block: int = kernels.DEFAULT_BLOCK,
) -> KIDResult:
    """Kernel Inception Distance between feature sets ``a`` and ``b`` (float64).

    Args:
        a: (n, d) features, e.g. of generated images, n >= 4 (see the module docstring).
        b: (m, d) features of the reference set, m >= 4.
        subsets: number of random subsets.
        subset_size: samples drawn from each set per subset (at most min(n, m)).
        degree: polynomial degree.
        gamma: factor on x.y; None takes 1 / d.
        coef0: constant of the polynomial kernel.
        seed: seed of the subset draws.
        block: tile size of the kernel sums.

    Returns:
        Mean and std of the subset estimates.
    """
    names = ("first feature set", "second feature set")
    x, y = as_pair(a, b, names, dtype=torch.float64)
    MINIMUM.check("kid", dict(zip(names, (x, y), strict=True)))
    subsets = at_least(subsets, 1, "subsets")
    m = at_least(subset_size, 2, "subset_size")
    if m > min(x.shape[0], y.shape[0]):
        raise UsageError(
            f"subset_size {m} exceeds the smaller set ({min(x.shape[0], y.shape[0])} samples); "
            "pass a smaller subset_size"
        )
    g = 1.0 / x.shape[1] if gamma is None else positive(gamma, "gamma")
    rng = torch.Generator().manual_seed(seed)
    values = torch.empty(subsets, dtype=torch.float64)
    for s in range(subsets):
        xs = x[torch.randperm(x.shape[0], generator=rng)[:m].to(x.device)]
        ys = y[torch.randperm(y.shape[0], generator=rng)[:m].to(y.device)]
        k_xx, k_yy = (
            kernels.polynomial_kernel_sum(z, z, degree, g, coef0, True, block) for z in (xs, ys)
        )
        k_xy = kernels.polynomial_kernel_sum(xs, ys, degree, g, coef0, False, block)
        values[s] = (k_xx + k_yy) / (m * (m - 1)) - 2.0 * k_xy / (m * m)
    return KIDResult(float(values.mean()), float(values.std(correction=0)), subsets, m)


@register_metric("kid", ("generated", "test"), "Kernel Inception Distance (mean, std)", MINIMUM)
def _kid_metric(inputs: Inputs) -> dict[str, float]:
    size = min(1000, len(inputs["generated"]), len(inputs["test"]))
    r = kid(inputs["generated"], inputs["test"], subset_size=size)
    return {"mean": r.mean, "std": r.std}


@register_metric(
    "mmd", ("generated", "test"), "Gaussian MMD^2 (median bandwidth), permutation p", MINIMUM
)
def _mmd_metric(inputs: Inputs) -> dict[str, float]:
    r = mmd_test(*as_pair(inputs["generated"], inputs["test"], ("generated", "test")))
    return {"mmd2": r.mmd2, "p_value": r.p_value, "bandwidth": r.bandwidth}
