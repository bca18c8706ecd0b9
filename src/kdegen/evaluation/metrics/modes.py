"""Mode counts: 2-D Gaussian mixtures and the 1,000 modes of MNIST1000.

Mixtures (ring8, grid25; Metz et al. 2017, Srivastava et al. 2017, Lin et al. 2018): a
sample is *high quality* when it lies within ``within`` (3) standard deviations of its
nearest centre; a mode is *hit* when at least ``min_count`` high-quality samples are
nearest to it. The spread over modes is KL(q || uniform), q the histogram of the
high-quality samples over the modes (0 log 0 = 0; NaN when no sample is high quality).

MNIST1000 (Generator Reversal, Appendix D): three digits side by side make 1,000 modes.
Recognising the digits is a classifier's job, done before this function; it takes
either the predicted digits, (n, 3) integers 0-9 from left (hundreds) to right, or the
3-digit numbers (n,) in 0-999, or per-position class probabilities (n, 3, 10), read by
their argmax. With probabilities, ``min_confidence`` leaves out samples whose least
confident position is below it ("not recognised"). Reported: distinct numbers among
the recognised samples and KL(histogram || uniform over 1,000).

Sizes: one sample per mode at least (8 for ring8, 25 for grid25, 1,000 for MNIST1000).
With fewer, modes are missed and the histogram is far from uniform by construction,
which reads as mode collapse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.evaluation.metrics.inputs import Array, Minimum, as_pair, at_least, positive
from kdegen.evaluation.metrics.registry import Inputs, register_metric

DIGIT_MODES = 1000
PER_MODE = "one per mode; fewer miss modes by construction"
# the registry's floor is the smallest mixture's (ring8); mode_count checks its own centres
MIXTURE_MINIMUM = Minimum(8, "one per mode of ring8; grid25 needs 25")
DIGIT_MINIMUM = Minimum(DIGIT_MODES, PER_MODE)


@dataclass(frozen=True)
class ModeCount:
    """Mode coverage of samples from a Gaussian mixture.

    Attributes:
        modes_hit: modes with at least ``min_count`` high-quality samples.
        modes: number of modes.
        high_quality: share of samples within ``within`` std of their nearest centre.
        kl_to_uniform: KL(q || uniform) of the high-quality histogram q (nats).
        counts: (modes,) high-quality samples per mode.
    """

    modes_hit: int
    modes: int
    high_quality: float
    kl_to_uniform: float
    counts: Tensor


def kl_to_uniform(counts: Tensor) -> float:
    """KL(q || uniform) in nats of the histogram ``counts`` (NaN when it is empty)."""
    total = float(counts.sum())
    if total == 0:
        return math.nan
    q = counts.double() / total
    return float(torch.special.xlogy(q, q * counts.numel()).sum())


def mode_count(
    samples: Array,
    centres: Array,
    std: float,
    within: float = 3.0,
    min_count: int = 1,
    block: int = kernels.DEFAULT_BLOCK,
) -> ModeCount:
    """Modes hit, share of high-quality samples and KL to uniform for mixture samples.

    Args:
        samples: (n, d) generated points, at least one per mode (n >= k).
        centres: (k, d) mode centres.
        std: the components' standard deviation.
        within: high quality = within this many std of the nearest centre.
        min_count: high-quality samples a mode needs to count as hit.
        block: tile size.
    """
    x, c = as_pair(samples, centres, ("samples", "centres"))
    Minimum(c.shape[0], PER_MODE).check("mode_count", {"samples": x})
    radius = positive(within, "within") * positive(std, "std")
    d2, idx = kernels.nearest(x, c, k=1, block=block)
    good = d2[:, 0] <= radius * radius
    counts = torch.bincount(idx[good, 0], minlength=c.shape[0]).cpu()
    hit = int((counts >= at_least(min_count, 1, "min_count")).sum())
    share = float(good.double().mean())
    return ModeCount(hit, c.shape[0], share, kl_to_uniform(counts), counts)


@dataclass(frozen=True)
class DigitModes:
    """MNIST1000 mode coverage.

    Attributes:
        distinct: distinct 3-digit numbers among the recognised samples.
        recognised: samples counted (all unless ``min_confidence`` left some out).
        kl_to_uniform: KL(histogram || uniform over 1,000) in nats.
        counts: (1000,) samples per number.
    """

    distinct: int
    recognised: int
    kl_to_uniform: float
    counts: Tensor


def digit_numbers(predicted: Array, min_confidence: float = 0.0) -> Tensor:
    """3-digit numbers (r,) from (n,), (n, 3) or (n, 3, 10) predictions (see the module)."""
    t = torch.as_tensor(predicted).detach().cpu()
    if t.dim() == 3 and t.shape[1:] == (3, 10) and t.is_floating_point():
        if not bool(torch.isfinite(t).all()):
            raise UsageError("digit probabilities contain NaN or infinite values")
        confidence, t = t.max(2)  # (n, 3) each
        t = t[confidence.min(1).values >= min_confidence]
    if t.is_floating_point() or t.dim() not in (1, 2) or (t.dim() == 2 and t.shape[1] != 3):
        raise UsageError(
            "pass digit predictions as (n, 3) integers, (n,) numbers 0-999 or (n, 3, 10) "
            f"probabilities, got {tuple(t.shape)} {t.dtype}"
        )
    if t.dim() == 2:
        if bool(((t < 0) | (t > 9)).any()):
            raise UsageError("predicted digits must lie in 0-9")
        t = t[:, 0] * 100 + t[:, 1] * 10 + t[:, 2]
    if bool(((t < 0) | (t >= DIGIT_MODES)).any()):
        raise UsageError("predicted numbers must lie in 0-999")
    return t.long()


def digit_mode_count(predicted: Array, min_confidence: float = 0.0) -> DigitModes:
    """Distinct numbers and KL to uniform of MNIST1000 samples' predicted digits.

    Args:
        predicted: (n, 3) digits, (n,) numbers or (n, 3, 10) per-position probabilities;
            n >= 1,000 (one per mode; those left unrecognised still count here).
        min_confidence: with probabilities, the least confident position must reach this.
    """
    predicted = torch.as_tensor(predicted)
    numbers = digit_numbers(predicted, min_confidence)  # checks the layout first
    DIGIT_MINIMUM.check("digit_mode_count", {"predicted": predicted})
    counts = torch.bincount(numbers, minlength=DIGIT_MODES)
    distinct = int((counts > 0).sum())
    return DigitModes(distinct, numbers.numel(), kl_to_uniform(counts), counts)


@register_metric(
    "mode_count",
    ("generated", "mode_centres", "mode_std"),
    "mixture modes hit, quality, KL",
    MIXTURE_MINIMUM,
)
def _mode_count_metric(inputs: Inputs) -> dict[str, float]:
    std = float(torch.as_tensor(inputs["mode_std"]))
    r = mode_count(inputs["generated"], inputs["mode_centres"], std)
    return {"modes_hit": r.modes_hit, "high_quality": r.high_quality, "kl": r.kl_to_uniform}


@register_metric(
    "digit_modes", ("generated_digits",), "MNIST1000 numbers recognised, KL", DIGIT_MINIMUM
)
def _digit_modes_metric(inputs: Inputs) -> dict[str, float]:
    r = digit_mode_count(inputs["generated_digits"])
    return {"distinct": r.distinct, "kl": r.kl_to_uniform}
