"""Latent priors: the distributions that drive a generator or decoder.

A prior has ``dim``, ``sample(n, generator=None) -> (n, dim)`` and ``log_prob(z) -> (n,)``;
a fitted prior also has ``fit(codes) -> self``. Any generator can be driven by any prior
(DESIGN.md): the standard normal of a plain GAN, the uniform noise the tutorial mentions,
and the kernel density estimate over recovered codes of Generator Reversal, Sec. 3.2.
GaussianMixture is the mixture-of-Gaussians target of GENs Sec. 5.4; ``converged_prior``
is the distribution GEN codes converge to for a target and a KDE bandwidth (GENs Eq. 8).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
    sigma = spread(codes) or 1.0
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
    if n < 2:
        raise UsageError("the ml bandwidth needs at least 2 codes")
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


CIRCLE_RADIUS = 5.0  # GaussianMixture.on_circle defaults (GENs Fig. 3 gives no numbers)
CIRCLE_STD = 0.5


class GaussianMixture:
    """Mixture of isotropic Gaussians, p(z) = sum_k w_k N(z; mu_k, s_k^2 I).

    The mixture-of-Gaussians target of GENs Sec. 5.4 (one mode per class; labelled codes
    are pulled to their class's mode through :meth:`component_log_prob`).

    Args:
        means: (K, dim) component means.
        stds: (K,) per-component standard deviations s_k, or one number for all.
        weights: (K,) non-negative mixing weights (normalised here); None: all equal.
        device: where samples are returned.
    """

    def __init__(
        self, means: Tensor | Sequence[Sequence[float]],
        stds: Tensor | Sequence[float] | float = 1.0,
        weights: Tensor | Sequence[float] | None = None, device: str | torch.device = "cpu",
    ) -> None:  # fmt: skip
        self.device = torch.device(device)

        def f64(x: object) -> Tensor:  # parameters kept in float64, cast where used
            return torch.as_tensor(x, dtype=torch.float64, device=self.device)

        mu = f64(means)
        if mu.dim() != 2 or 0 in mu.shape:
            raise UsageError(f"mixture means must have shape (K, dim), got {tuple(mu.shape)}")
        k = mu.shape[0]
        s = f64(stds)
        s = s.expand(k).clone() if s.dim() == 0 else s
        w = f64([1.0] * k if weights is None else weights)
        if s.shape != (k,) or w.shape != (k,):
            raise UsageError(f"mixture stds and weights need one entry per mean ({k})")
        if not bool(torch.isfinite(mu).all() and torch.isfinite(s).all() and (s > 0).all()):
            raise UsageError("mixture means must be finite and stds positive")
        if not bool(torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise UsageError("mixture weights must be non-negative with a positive sum")
        self.means, self.stds, self.weights = mu, s, w / w.sum()
        self.dim = int(mu.shape[1])

    @property
    def n_components(self) -> int:
        """K, the number of components."""
        return int(self.means.shape[0])

    @classmethod
    def on_circle(
        cls, k: int, dim: int = 2, radius: float = CIRCLE_RADIUS, std: float = CIRCLE_STD,
        device: str | torch.device = "cpu",
    ) -> GaussianMixture:  # fmt: skip
        """``k`` equally weighted modes evenly spaced on a circle in coordinates 0 and 1.

        The 10-mode target of GENs Sec. 5.4 / Fig. 3 is ``on_circle(10)``. The paper gives
        no radius or std; with the defaults (5, 0.5) neighbouring modes of ten are
        2 * 5 * sin(pi / 10) = 3.1 apart, about 6 stds, so a code's mode is unambiguous.
        Coordinates beyond the first two have mean 0.
        """
        if k < 1:
            raise UsageError(f"a mixture needs at least one mode, got k={k}")
        if dim < 2:
            raise UsageError(f"modes on a circle need a latent dimension of at least 2, got {dim}")
        angle = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
        means = torch.zeros(k, dim, dtype=torch.float64)
        means[:, 0], means[:, 1] = radius * torch.cos(angle), radius * torch.sin(angle)
        return cls(means, std, device=device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` codes (n, dim): a component by weight, then a point of its Gaussian."""
        dev = generator.device if generator is not None else self.device
        if n == 0:
            return torch.empty(0, self.dim, device=self.device)
        pick = torch.multinomial(self.weights.to(dev), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, device=dev, dtype=torch.float64)
        pick, noise = pick.to(self.device), noise.to(self.device)
        z = self.means[pick] + self.stds[pick, None] * noise
        return z.to(torch.get_default_dtype())

    def sample_component(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One code per label, drawn from that label's component: (len(labels), dim).

        Semi-supervised AAE (Makhzani et al.) shows the discriminator the labelled
        examples' own class mode as the target.
        """
        k = self.n_components
        if labels.dim() != 1 or (
            len(labels) and not (int(labels.min()) >= 0 and int(labels.max()) < k)
        ):
            raise UsageError(f"component labels must be a 1-D tensor of values in 0..{k - 1}")
        dev = generator.device if generator is not None else self.device
        noise = torch.randn(len(labels), self.dim, generator=generator, device=dev,
                            dtype=torch.float64).to(self.device)  # fmt: skip
        pick = labels.to(self.device).long()
        return (self.means[pick] + self.stds[pick, None] * noise).to(torch.get_default_dtype())

    def component_log_prob(self, z: Tensor) -> Tensor:
        """log N(z_i; mu_k, s_k^2 I) for every code and component, shape (n, K)."""
        _check_codes(z, self.dim)
        mu, s = self.means.to(z), self.stds.to(z)
        # one column per component: memory n x dim at a time, exact differences
        sq = torch.stack([(z - mu[k]).pow(2).sum(1) for k in range(len(mu))], 1)  # (n, K)
        return -0.5 * sq / s**2 - self.dim * (s.log() + 0.5 * math.log(2 * math.pi))

    def _joint_log_prob(self, z: Tensor) -> Tensor:
        return self.component_log_prob(z) + self.weights.to(z).log()  # (n, K)

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) = logsumexp_k (log w_k + log N(z; mu_k, s_k^2 I)), shape (n,)."""
        return torch.logsumexp(self._joint_log_prob(z), 1)

    def responsibilities(self, z: Tensor) -> Tensor:
        """Posterior probability of each component given each code, shape (n, K)."""
        return torch.softmax(self._joint_log_prob(z), 1)

    def shrunk(self, bandwidth: float) -> GaussianMixture:
        """The mixture with every component's variance reduced by h^2 (GENs Eq. 8).

        A GEN whose KDE has bandwidth h converges to codes whose convolution with the
        kernel G_h is the target; per component that is N(mu_k, (s_k^2 - h^2) I), i.e.
        each std scaled by sqrt(1 - h^2 / s_k^2).
        """
        h2 = float(bandwidth) ** 2
        if not h2 < float(self.stds.min()) ** 2:
            raise UsageError(
                f"bandwidth {bandwidth:.3g} is not below the smallest component std "
                f"{float(self.stds.min()):.3g}; use more KDE samples or wider components"
            )
        return GaussianMixture(self.means, (self.stds**2 - h2).sqrt(), self.weights, self.device)

    def __repr__(self) -> str:
        return f"GaussianMixture(k={self.n_components}, dim={self.dim})"


def converged_prior(target: Prior, bandwidth: float) -> Prior:
    """The code distribution a GEN with KDE bandwidth h converges to (GENs Eq. 8).

    N(0, (s^2 - h^2) I) for the target N(0, s^2 I), i.e. N(0, (1 - h^2) I) for the
    standard normal; a mixture shrunk per component (:meth:`GaussianMixture.shrunk`).
    GEN sampling draws from it.

    Args:
        target: a :class:`Normal` or :class:`GaussianMixture` target.
        bandwidth: the KDE bandwidth h used in training.
    """
    if isinstance(target, GaussianMixture):
        return target.shrunk(bandwidth)
    if isinstance(target, Normal):
        if not bandwidth < target.std:
            raise UsageError(
                f"bandwidth {bandwidth:.3g} is not below the target's std {target.std:.3g}: "
                "the GEN codes would collapse; use more KDE samples m or a smaller latent dimension"
            )
        return Normal(target.dim, math.sqrt(target.std**2 - bandwidth**2), target.device)
    raise UsageError(
        f"no converged form is known for the target {target!r}; use Normal or GaussianMixture"
    )


PRIORS: Registry[Callable[..., Prior]] = Registry("prior")
PRIORS.add("normal", Normal)
PRIORS.add("uniform", Uniform)


def make_prior(name: str, dim: int, device: str | torch.device = "cpu") -> Prior:
    """The fixed prior registered as ``name`` (normal, uniform) in ``dim`` dimensions."""
    return PRIORS.get(name)(dim, device=device)
