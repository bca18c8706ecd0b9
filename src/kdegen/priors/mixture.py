"""The mixture-of-Gaussians target of GENs Sec. 5.4 and the distribution GEN codes
converge to (GENs Eq. 8)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from kdegen.errors import UsageError
from kdegen.priors.base import Normal, Prior, _check_codes

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
        self,
        means: Tensor | Sequence[Sequence[float]],
        stds: Tensor | Sequence[float] | float = 1.0,
        weights: Tensor | Sequence[float] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
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
        cls,
        k: int,
        dim: int = 2,
        radius: float = CIRCLE_RADIUS,
        std: float = CIRCLE_STD,
        device: str | torch.device = "cpu",
    ) -> GaussianMixture:
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
        noise = torch.randn(
            len(labels), self.dim, generator=generator, device=dev, dtype=torch.float64
        ).to(self.device)
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
