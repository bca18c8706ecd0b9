"""Gaussian Parzen-window log-likelihood (Parzen 1962) with the protocol of Goodfellow et al.

The generated samples s_1..s_n define a mixture of isotropic Gaussians; a test point's
log-likelihood under it is

    log p(t) = log (1/n) sum_i N(t; s_i, sigma^2 I)
             = logsumexp_i(-||t - s_i||^2 / (2 sigma^2)) - log n - (d/2) log(2 pi sigma^2),

computed blockwise by :func:`kdegen.kernels.logsumexp_neg_sqdist`. Basart's thesis
(Sec. 3.1.2, 3.4.1) uses it as a baseline that fails to track image quality.

Choosing sigma (Goodfellow et al. 2014): the value on a log grid that maximises the mean
log-likelihood of a validation set. Their grid, 10 values in [0.1, 1], suits pixels in
[0, 1]; for arbitrary features the default grid here is 20 values log-spaced over
[0.01, 1] x s, with s the root-mean per-dimension standard deviation of the samples. A
choice at either end of the grid warns (widen it with ``sigmas``). Without a validation
set, a seeded random fifth of the test set (``validation_fraction``, ``seed``) is split
off for the choice and the score is the mean over the remaining test points.

Sizes: 3 per set. The test set gives at least one point to choose sigma and two for the
mean and its standard error; fewer than 3 windows (generated samples) make a mixture
whose default grid rests on a spread of one or two points.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.evaluation.metrics.inputs import (
    Array,
    Minimum,
    as_pair,
    as_sets,
    mean_and_stderr,
    positive,
)
from kdegen.evaluation.metrics.registry import Inputs, register_metric

GRID_DECADES = (-2.0, 0.0)  # default grid: s * 10^linspace(-2, 0, GRID_SIZE)
GRID_SIZE = 20
MINIMUM = Minimum(3, "1 test point chooses sigma, 2 give the mean and its standard error")


@dataclass(frozen=True)
class ParzenResult:
    """Parzen-window log-likelihood of the evaluated test points (nats).

    Attributes:
        mean: mean log-likelihood per test point.
        stderr: its standard error, std(ddof=1) / sqrt(n_evaluated).
        sigma: the window width used.
        sigmas: the grid searched (empty when sigma was given).
        validation: mean validation log-likelihood for each grid value.
        n_evaluated: test points averaged (fewer than given when a validation part was split off).
    """

    mean: float
    stderr: float
    sigma: float
    sigmas: tuple[float, ...]
    validation: tuple[float, ...]
    n_evaluated: int


def parzen_log_density(
    points: Tensor, samples: Tensor, sigma: float, block: int = kernels.DEFAULT_BLOCK
) -> Tensor:
    """log (1/n) sum_i N(x; s_i, sigma^2 I) for each row x of ``points``, float64 (m,).

    Args:
        points: (m, d) where to evaluate.
        samples: (n, d) window centres.
        sigma: window standard deviation.
        block: tile size (the values do not depend on it).
    """
    return kernels.kde_log_prob(points, samples, sigma, block, dtype=torch.float64)


def default_sigmas(samples: Tensor) -> tuple[float, ...]:
    """The default grid: s * 10^linspace(-2, 0, 20), s = root-mean per-dimension std."""
    s = float(samples.double().var(0, correction=0).mean().sqrt()) if len(samples) > 1 else 0.0
    s = s if s > 0 else 1.0
    grid = torch.logspace(*GRID_DECADES, GRID_SIZE, dtype=torch.float64) * s
    return tuple(float(x) for x in grid)


def parzen_log_likelihood(
    samples: Array,
    test: Array,
    sigma: float | None = None,
    validation: Array | None = None,
    sigmas: Sequence[float] | None = None,
    block: int = kernels.DEFAULT_BLOCK,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> ParzenResult:
    """Mean Parzen-window log-likelihood of ``test`` under windows on ``samples``.

    Args:
        samples: generated features (n, d), the window centres, n >= 3.
        test: held-out real features (m, d), m >= 3.
        sigma: window width; None chooses it on a validation set over ``sigmas``.
        validation: features for choosing sigma; None splits a part off ``test``.
        sigmas: the grid (default: see the module docstring).
        block: tile size of the kernel sums (the value does not depend on it).
        validation_fraction: share of ``test`` split off when ``validation`` is None.
        seed: seed of that split.

    Returns:
        Mean and standard error (nats), the chosen sigma and the grid's validation scores.
    """
    if sigma is not None or validation is None:
        s, t = as_pair(samples, test, ("samples", "test"))
        MINIMUM.check("parzen", {"samples": s, "test": t})
        if sigma is not None:
            return _evaluate(s, t, positive(sigma, "sigma"), (), (), block)
        t, v = _split(t, validation_fraction, seed)
    else:
        names = ("samples", "test", "validation")
        s, t, v = as_sets([samples, test, validation], names)
        MINIMUM.check("parzen", {"samples": s, "test": t})
    grid = default_sigmas(s) if sigmas is None else tuple(positive(h, "sigmas") for h in sigmas)
    if not grid:
        raise UsageError("sigmas is empty; pass at least one window width")
    scores = tuple(float(parzen_log_density(v, s, h, block).mean()) for h in grid)
    best = max(range(len(grid)), key=scores.__getitem__)
    if len(grid) > 1 and best in (0, len(grid) - 1):
        warnings.warn(
            f"Parzen sigma {grid[best]:.3g} is at the edge of the grid; widen it with sigmas=",
            RuntimeWarning,
            stacklevel=2,
        )
    return _evaluate(s, t, grid[best], grid, scores, block)


def _split(test: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(evaluation part, validation part) of ``test`` by a seeded permutation."""
    n_val = max(1, round(test.shape[0] * fraction))
    if not 0 < fraction < 1 or test.shape[0] - n_val < 2:
        raise UsageError(
            f"cannot split a validation part ({fraction}) off {test.shape[0]} test points; "
            "pass validation= or more test points"
        )
    order = torch.randperm(test.shape[0], generator=torch.Generator().manual_seed(seed))
    order = order.to(test.device)
    return test[order[n_val:]], test[order[:n_val]]


def _evaluate(
    samples: Tensor,
    test: Tensor,
    sigma: float,
    grid: tuple[float, ...],
    scores: tuple[float, ...],
    block: int,
) -> ParzenResult:
    mean, stderr = mean_and_stderr(parzen_log_density(test, samples, sigma, block))
    return ParzenResult(mean, stderr, sigma, grid, scores, test.shape[0])


@register_metric(
    "parzen", ("generated", "test"), "Parzen-window log-likelihood of test (nats)", MINIMUM
)
def _parzen_metric(inputs: Inputs) -> dict[str, float]:
    r = parzen_log_likelihood(inputs["generated"], inputs["test"])
    return {"mean": r.mean, "stderr": r.stderr, "sigma": r.sigma}
