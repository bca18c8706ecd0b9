"""Distribution Divergence Measure (Basart, MSc thesis, Ch. 3.2): Eq. 3.4 and Eq. 3.5.

Test and generated sets are each read as an equal-weight Gaussian mixture centred on
their samples; the variational approximation of KL(test || generated) (Goldberger et
al., thesis Eq. 3.3) with its constant numerator dropped is Eq. 3.4:

    DDM(T, G) = -(1/|T|) sum_t log[ (1/|G|) sum_g exp(-D(t, g)) ],

with D the distance between mixture centres: ``scale * ||t - g||^2`` ("sqeuclidean",
the default) or ``scale * ||t - g||`` ("euclidean"). Lower is better. Having dropped
a constant it is no longer a KL divergence, but it cannot be negative: D >= 0 makes
every exp(-D) at most 1, so every log is at most 0 (up to rounding). The thesis
computes it on classifier logits (hypercolumns and prelogits work as well, Sec. 3.4.3).

Eq. 3.5, the relative form, compares train R with test T and with generated G:

    DDM_rel = (1/|R|) sum_r log[ (sum_t exp(-D(r, t)) / |T|) / (sum_g exp(-D(r, g)) / |G|) ]
            = DDM(R, G) - DDM(R, T).

Sign convention (as Eq. 3.5 is written): positive when the generated samples lie
farther from the training points than held-out data does (an imperfect generator),
about 0 when G is distributed like T, negative when G sits closer to the training
points than T does (memorisation). The thesis found that it misses dropped modes.

Both sums run blockwise through :mod:`kdegen.kernels`; values are in nats (bits =
nats / ln 2) with the standard error of the mean over the per-point terms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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

LOG_SUMS: dict[str, Callable[..., Tensor]] = {
    "sqeuclidean": kernels.logsumexp_neg_sqdist,  # D = scale * ||t - g||^2
    "euclidean": kernels.logsumexp_neg_dist,  # D = scale * ||t - g||
}
# the standard error is a std (ddof=1) over the points averaged; a mixture of one sample
# is a single Gaussian: every set is held to 2
MINIMUM = Minimum(2, "the standard error is a std over the points averaged")


@dataclass(frozen=True)
class DDMResult:
    """Distribution Divergence Measure of Eq. 3.4 (nats, bits) and its standard error.

    The standard error is std(ddof=1) / sqrt(n_test) of the per-test-point terms.
    """

    nats: float
    bits: float
    stderr_nats: float
    stderr_bits: float
    n_test: int
    n_generated: int


@dataclass(frozen=True)
class DDMRelativeResult:
    """Relative measure of Eq. 3.5 (nats, bits); standard error over the training points."""

    nats: float
    bits: float
    stderr_nats: float
    stderr_bits: float
    n_train: int
    n_test: int
    n_generated: int


def neg_log_mean_exp(
    query: Tensor, points: Tensor, distance: str, scale: float, block: int
) -> Tensor:
    """-log((1/|P|) sum_p exp(-D(q, p))) for each query row, float64 (n,)."""
    if distance not in LOG_SUMS:
        raise UsageError(f"unknown distance {distance!r}; choose one of: {', '.join(LOG_SUMS)}")
    lse = LOG_SUMS[distance](query, points, scale, block=block)
    return math.log(points.shape[0]) - lse.double()


def _summary(terms: Tensor) -> tuple[float, float, float, float]:
    """(nats, bits, stderr in nats, stderr in bits) of per-point terms."""
    mean, stderr = mean_and_stderr(terms)
    return mean, mean / math.log(2), stderr, stderr / math.log(2)


def ddm(
    test: Array,
    generated: Array,
    distance: str = "sqeuclidean",
    scale: float = 1.0,
    block: int = kernels.DEFAULT_BLOCK,
) -> DDMResult:
    """Distribution Divergence Measure of Eq. 3.4: how badly G's mixture explains T.

    Args:
        test: held-out real features (n_test, d), at least 2 (for the standard error).
        generated: generated features (n_generated, d), at least 2.
        distance: "sqeuclidean" (D = scale ||t-g||^2) or "euclidean" (D = scale ||t-g||).
        scale: positive factor on the distance.
        block: tile size of the kernel sums (the value does not depend on it).

    Returns:
        The value in nats and bits with its standard error, and the set sizes.
        float32 features are computed in float32 tiles; pass float64 for full precision.
    """
    t, g = as_pair(test, generated, ("test", "generated"))
    MINIMUM.check("ddm", {"test": t, "generated": g})
    terms = neg_log_mean_exp(t, g, distance, positive(scale, "scale"), block)
    return DDMResult(*_summary(terms), t.shape[0], g.shape[0])


def ddm_relative(
    train: Array,
    test: Array,
    generated: Array,
    distance: str = "sqeuclidean",
    scale: float = 1.0,
    block: int = kernels.DEFAULT_BLOCK,
) -> DDMRelativeResult:
    """Relative Distribution Divergence Measure of Eq. 3.5, DDM(R, G) - DDM(R, T).

    Args:
        train: training features R (n_train, d), at least 2 (as are the others).
        test: held-out real features T (n_test, d).
        generated: generated features G (n_generated, d).
        distance, scale, block: as for :func:`ddm`.

    Returns:
        Positive when G is farther from the training points than T is, negative when
        closer (see the module docstring); the standard error is over training points.
    """
    names = ("train", "test", "generated")
    r, t, g = as_sets([train, test, generated], names)
    MINIMUM.check("ddm_relative", dict(zip(names, (r, t, g), strict=True)))
    scale = positive(scale, "scale")
    terms = neg_log_mean_exp(r, g, distance, scale, block)
    terms -= neg_log_mean_exp(r, t, distance, scale, block)
    return DDMRelativeResult(*_summary(terms), r.shape[0], t.shape[0], g.shape[0])


def _as_numbers(result: DDMResult | DDMRelativeResult) -> dict[str, float]:
    return {"nats": result.nats, "bits": result.bits, "stderr_nats": result.stderr_nats}


@register_metric("ddm", ("test", "generated"), "Distribution Divergence Measure (Eq. 3.4)", MINIMUM)
def _ddm_metric(inputs: Inputs) -> dict[str, float]:
    return _as_numbers(ddm(inputs["test"], inputs["generated"]))


@register_metric(
    "ddm_relative",
    ("train", "test", "generated"),
    "relative DDM (Eq. 3.5), > 0: worse than test",
    MINIMUM,
)
def _ddm_relative_metric(inputs: Inputs) -> dict[str, float]:
    return _as_numbers(ddm_relative(inputs["train"], inputs["test"], inputs["generated"]))
