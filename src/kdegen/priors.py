"""Latent priors: the distributions that drive a generator or decoder.

A prior has ``dim``, ``sample(n, generator=None) -> (n, dim)`` and ``log_prob(z) -> (n,)``;
a fitted prior also has ``fit(codes) -> self``. Any generator can be driven by any prior
(DESIGN.md): the standard normal of a plain GAN, the uniform noise the tutorial mentions,
and the kernel density estimate over recovered codes of Generator Reversal, Sec. 3.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.registry import Registry


@runtime_checkable
class Prior(Protocol):
    """What every prior provides."""

    dim: int

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` codes, shape (n, dim)."""
        ...

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density of each row of ``z`` (n, dim), shape (n,)."""
        ...


def _check_dim(dim: int) -> None:
    if dim < 1:
        raise UsageError(f"latent dimension must be at least 1, got {dim}")


def _check_codes(z: Tensor, dim: int) -> None:
    if z.dim() != 2 or z.shape[1] != dim:
        raise UsageError(f"codes must have shape (n, {dim}), got {tuple(z.shape)}")


class Normal:
    """Isotropic Gaussian N(0, std^2 I) in ``dim`` dimensions.

    Args:
        dim: latent dimension k.
        std: standard deviation of every coordinate.
        device: where samples are returned.
    """

    def __init__(self, dim: int, std: float = 1.0, device: str | torch.device = "cpu") -> None:
        _check_dim(dim)
        if not std > 0:
            raise UsageError(f"the normal prior's std must be positive, got {std}")
        self.dim, self.std, self.device = dim, float(std), torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        gen_device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.dim, generator=generator, device=gen_device)
        return (z * self.std).to(self.device)

    def log_prob(self, z: Tensor) -> Tensor:
        _check_codes(z, self.dim)
        sq = (z / self.std).pow(2).sum(1)
        return -0.5 * sq - self.dim * (math.log(self.std) + 0.5 * math.log(2 * math.pi))

    def __repr__(self) -> str:
        return f"Normal(dim={self.dim}, std={self.std})"


class Uniform:
    """Uniform on the cube [-1, 1]^dim."""

    def __init__(self, dim: int, device: str | torch.device = "cpu") -> None:
        _check_dim(dim)
        self.dim, self.device = dim, torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        gen_device = generator.device if generator is not None else self.device
        u = torch.rand(n, self.dim, generator=generator, device=gen_device)
        return (2 * u - 1).to(self.device)

    def log_prob(self, z: Tensor) -> Tensor:
        _check_codes(z, self.dim)
        inside = (z.abs() <= 1).all(1)
        value = torch.full((z.shape[0],), -self.dim * math.log(2.0), device=z.device)
        return torch.where(inside, value, torch.full_like(value, -math.inf))

    def __repr__(self) -> str:
        return f"Uniform(dim={self.dim})"


BANDWIDTH_RULES = ("scott", "silverman", "ml")


def parse_bandwidth(value: float | str) -> float | str:
    """A positive number, a numeric string, or one of :data:`BANDWIDTH_RULES`."""
    if isinstance(value, str):
        if value in BANDWIDTH_RULES:
            return value
        try:
            value = float(value)
        except ValueError:
            raise UsageError(
                f"bandwidth {value!r} is neither a number nor one of {', '.join(BANDWIDTH_RULES)}"
            ) from None
    if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
        raise UsageError(f"the KDE bandwidth must be positive, got {value}")
    return float(value)


def spread(codes: Tensor) -> float:
    """The codes' scale for rules of thumb: sqrt of the mean per-dimension variance."""
    return float(codes.double().var(0, unbiased=True).mean().sqrt()) if len(codes) > 1 else 1.0


def select_bandwidth(codes: Tensor, rule: float | str, block: int = 2048) -> float:
    """The KDE bandwidth h for ``codes`` (n, d) by ``rule``.

    ``scott``: sigma n^(-1/(d+4)); ``silverman``: sigma (n (d+2) / 4)^(-1/(d+4)), with sigma
    the codes' spread (an isotropic kernel needs one scale); ``ml``: the leave-one-out
    maximum-likelihood fixed point h^2 <- sum_i sum_{j!=i} w_ij ||z_i - z_j||^2 / (d n),
    w_ij the kernel weights of row i normalised over j != i (GENs supplement, Eq. 5).
    """
    rule = parse_bandwidth(rule)
    if isinstance(rule, float):
        return rule
    n, d = codes.shape
    sigma = spread(codes) or 1.0
    if rule == "scott":
        return sigma * n ** (-1.0 / (d + 4))
    if rule == "silverman":
        return sigma * (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    if n < 2:
        raise UsageError("the ml bandwidth needs at least 2 codes")
    return _ml_fixed_point(codes.double(), sigma * n ** (-1.0 / (d + 4)), block)


def _ml_fixed_point(codes: Tensor, h: float, block: int, iters: int = 200) -> float:
    n, d = codes.shape
    for _ in range(iters):
        scale = 1.0 / (2 * h * h)
        mean_d2 = kernels.softmax_mean_sqdist(codes, codes, scale, exclude_self=True, block=block)
        h_new = math.sqrt(float(mean_d2.sum()) / (d * n))
        if abs(h_new - h) <= 1e-9 * h:
            return h_new
        h = h_new
    return h


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
        """log p(z) for each row of z (m, k), computed blockwise."""
        codes = self._fitted()
        _check_codes(z, self.dim)
        h = self.bandwidth
        scale = 1.0 / (2 * h * h)
        lse = kernels.logsumexp_neg_sqdist(z.to(codes.dtype), codes, scale, block=self.block)
        log_kde = lse - math.log(len(codes)) - 0.5 * self.dim * math.log(2 * math.pi * h * h)
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


PRIORS: Registry[Callable[..., Prior]] = Registry("prior")
PRIORS.add("normal", Normal)
PRIORS.add("uniform", Uniform)


def make_prior(name: str, dim: int, device: str | torch.device = "cpu") -> Prior:
    """The fixed prior registered as ``name`` (normal, uniform) in ``dim`` dimensions."""
    return PRIORS.get(name)(dim, device=device)
