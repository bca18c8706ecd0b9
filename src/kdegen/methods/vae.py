"""Variational autoencoder (Kingma & Welling 2014), the GENs paper's first baseline.

The encoder emits a mean and a log-variance per latent dimension; codes are drawn with
the reparameterisation z = mu + sigma * eps, and the loss is the negative ELBO with a
Gaussian decoder of fixed variance: sum over pixels of (x - D(z))^2 (sigma_x^2 = 1/2)
plus beta * KL(q(z|x) || N(0, I)), both per example and averaged over the batch.
Deterministic codes (``encode``) are the means.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kdegen.config import option
from kdegen.errors import UsageError
from kdegen.methods.autoencoder import AEConfig, AutoEncoder
from kdegen.methods.base import METHODS, Batch


@dataclass(frozen=True)
class VAEConfig(AEConfig):
    """Options of ``vae``."""

    beta: float = option(1.0, "weight of the KL term (beta-VAE when != 1)", ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target != "normal":
            raise UsageError("the vae's prior is the standard normal; use --target normal")


@METHODS.register("vae")
class VAE(AutoEncoder[VAEConfig]):
    """q(z|x) = N(mu(x), diag sigma(x)^2), p(z) = N(0, I)."""

    Config = VAEConfig
    encoder_outputs = 2

    def codes(self, x: Tensor) -> Tensor:
        stats = self.E(x)  # (B, 2l): mean and log-variance
        mu, logvar = stats.chunk(2, dim=1)
        self._last = (mu, logvar.clamp(-20, 20))
        return mu + torch.exp(0.5 * self._last[1]) * torch.randn_like(mu)

    def reconstruction(self, x: Tensor, z: Tensor) -> Tensor:
        return (self.D(z) - x).pow(2).flatten(1).sum(1).mean()

    def latent_loss(self, z: Tensor, batch: Batch) -> dict[str, Tensor]:
        mu, logvar = self._last
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return {"kl_loss": self.config.beta * kl}
