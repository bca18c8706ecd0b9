"""The kernel density estimate over recovered codes (Generator Reversal Sec. 3.2) and
its bandwidth rules."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.priors.base import Normal, _check_codes

BANDWIDTH_RULES = ("std", "nn", "scott", "silverman", "ml")
# KDE-GAN's bandwidth and the default of `kdegen sample --prior kde` (see methods/kdegan.py)
DEFAULT_KDE_BANDWIDTH = "0.3*nn"


def parse_bandwidth(value: float | str) -> float | str:
    """A positive number, or a rule ``[factor*]name`` with a name of :data:`BANDWIDTH_RULES`.

    ``0.3*std`` is 0.3 times the codes' spread (sqrt of the mean per-dimension variance),
    ``0.5*scott`` half Scott's bandwidth. Numeric strings become numbers.
    """
    if isinstance(value, str):
        text = value.strip()
        factor, _, name = text.rpartition("*")
        if name.strip() in BANDWIDTH_RULES:
            if factor:
                _positive(_number(factor, text), text)
            return text.replace(" ", "")
        value = _number(text, text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"the KDE bandwidth must be a number or a rule, got {value!r}")
    return _positive(float(value), value)


def _number(text: str, whole: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(
            f"bandwidth {whole!r} is neither a number nor a rule [factor*]name with a name of "
            f"{', '.join(BANDWIDTH_RULES)} (e.g. 0.3*std)"
        ) from None


def _positive(value: float, shown: object) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"the KDE bandwidth must be positive and finite, got {shown}")
    return value


def spread(codes: Tensor) -> float:
    """The codes' scale for rules of thumb: sqrt of the mean per-dimension variance."""
    return float(codes.double().var(0, unbiased=True).mean().sqrt()) if len(codes) > 1 else 1.0


def select_bandwidth(codes: Tensor, rule: float | str, block: int = 2048) -> float:
    """The KDE bandwidth h for ``codes`` (n, d) by ``rule`` (a number is returned as it is).

    ``std``: sigma, the codes' spread; ``nn``: the median distance from a code to its
    nearest other code over sqrt(d), copies counted once (it follows the codes' local
    scale: within clusters in few dimensions, near sigma in many); ``scott``:
    sigma n^(-1/(d+4)); ``silverman``: sigma (n (d+2) / 4)^(-1/(d+4)) (an isotropic
    kernel needs one scale); ``ml``: the
    leave-one-out maximum-likelihood fixed point h^2 <- sum_i sum_{j!=i} w_ij ||z_i -
    z_j||^2 / (d n), w_ij the kernel weights of row i normalised over j != i (GENs
    supplement, Eq. 5). ``f*rule`` multiplies the rule's h by f.
    """
    rule = parse_bandwidth(rule)
    if isinstance(rule, float):
        return rule
    factor, _, name = rule.rpartition("*")
    if factor:
        return float(factor) * select_bandwidth(codes, name, block)
    n, d = codes.shape
    sigma = spread(codes)
    if n < 2 or sigma == 0:
        raise UsageError(
            f"the {name} bandwidth rule needs at least 2 codes that are not all equal, got "
            f"{n} with spread {sigma:g}; give the bandwidth as a number"
        )
    if name == "std":
        return sigma
    if name == "nn":
        distinct = torch.unique(codes.double(), dim=0)  # copies of a code are one point
        if len(distinct) < 2:
            return sigma
        d2, _ = kernels.nearest(distinct, distinct, 1, exclude_self=True, block=block)
        return float(d2[:, 0].median().sqrt()) / math.sqrt(d)
    if name == "scott":
        return sigma * n ** (-1.0 / (d + 4))
    if name == "silverman":
        return sigma * (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    return _ml_fixed_point(codes.double(), sigma * n ** (-1.0 / (d + 4)), block)


def _ml_fixed_point(codes: Tensor, h0: float, block: int) -> float:
    """Solve h = F(h), F(h)^2 = sum_i sum_{j!=i} w_ij(h) ||z_i - z_j||^2 / (d n) (Eq. 5).

    Iterating h <- F(h) converges linearly and slowly (in 2-D about 3% of the gap per
    step), so the root of log F(h) - log h is bracketed from Scott's h by factors of 1.5
    and then found by Brent's method (about 10-15 blockwise passes).
    """
    from scipy.optimize import brentq

    n, d = codes.shape

    def gap(log_h: float) -> float:
        scale = 0.5 * math.exp(-2 * log_h)
        mean_d2 = kernels.softmax_mean_sqdist(codes, codes, scale, exclude_self=True, block=block)
        return 0.5 * math.log(float(mean_d2.sum()) / (d * n)) - log_h

    lo = hi = math.log(h0)
    g_lo = g_hi = gap(lo)
    step = math.log(1.5) if g_lo > 0 else -math.log(1.5)  # F(h) > h: the root lies above
    for _ in range(80):
        if g_lo * g_hi < 0 or g_hi == 0:
            break
        lo, g_lo = hi, g_hi
        hi = hi + step
        g_hi = gap(hi)
    else:
        raise UsageError("the ml bandwidth did not converge; give a number or use scott")
    if g_hi == 0:
        return math.exp(hi)
    a, b = sorted((lo, hi))
    return math.exp(float(brentq(gap, a, b, xtol=1e-12, rtol=1e-10)))


class KDE:
    """Gaussian kernel density estimate over codes, optionally mixed with N(0, I).

    p(z) = (1 - b) (1/n) sum_i N(z; z_i, h^2 I) + b N(z; 0, I)   (Generator Reversal Sec. 3.2)

    Args:
        bandwidth: h > 0, or a rule: "scott", "silverman", "ml" (see :func:`select_bandwidth`).
        background: mixing weight b in [0, 1] of the broad N(0, I) background that keeps
            samples from only retracing the training codes.
        block: tile size of the blockwise log-density.
    """

    def __init__(
        self, bandwidth: float | str = "scott", background: float = 0.0, block: int = 2048
    ) -> None:
        self.rule = parse_bandwidth(bandwidth)
        if not 0.0 <= background <= 1.0:
            raise UsageError(f"the KDE background weight must lie in [0, 1], got {background}")
        self.background, self.block = float(background), block
        self.codes: Tensor | None = None
        self.bandwidth = self.rule if isinstance(self.rule, float) else math.nan
        self.dim = 0

    def fit(self, codes: Tensor) -> KDE:
        """Store ``codes`` (n, k) and choose the bandwidth; returns self."""
        if codes.dim() != 2 or codes.shape[0] == 0:
            raise UsageError(f"the KDE needs a non-empty (n, k) code set, got {tuple(codes.shape)}")
        if not bool(torch.isfinite(codes).all()):
            raise UsageError("the codes contain NaN or infinite values")
        self.codes = codes.detach()
        self.dim = codes.shape[1]
        self.bandwidth = select_bandwidth(self.codes, self.rule, self.block)
        return self

    def _fitted(self) -> Tensor:
        if self.codes is None:
            raise UsageError("the KDE is not fitted: call fit(codes) first")
        return self.codes

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Stored codes picked uniformly plus N(0, h^2 I) noise; N(0, I) with prob. b."""
        codes = self._fitted()
        dev = generator.device if generator is not None else codes.device
        pick = torch.randint(len(codes), (n,), generator=generator, device=dev)
        noise = torch.randn(n, self.dim, generator=generator, device=dev)
        z = codes[pick.to(codes.device)] + self.bandwidth * noise.to(codes.device)
        if self.background > 0:
            broad = torch.rand(n, generator=generator, device=dev).to(codes.device)
            z = torch.where((broad < self.background)[:, None], noise.to(codes.device), z)
        return z

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) for each row of z (m, k), computed blockwise; differentiable in z."""
        codes = self._fitted()
        _check_codes(z, self.dim)
        log_kde = kernels.kde_log_prob(z.to(codes.dtype), codes, self.bandwidth, self.block)
        if self.background == 0:
            return log_kde
        log_bg = Normal(self.dim, device=z.device).log_prob(z).to(log_kde.dtype)
        if self.background == 1:
            return log_bg
        return torch.logaddexp(
            log_kde + math.log1p(-self.background), log_bg + math.log(self.background)
        )

    def __repr__(self) -> str:
        n = 0 if self.codes is None else len(self.codes)
        return f"KDE(n={n}, dim={self.dim}, bandwidth={self.bandwidth:.4g}, b={self.background})"
