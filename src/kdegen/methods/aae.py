"""Adversarial autoencoder (Makhzani et al. 2016), the GENs paper's second baseline.

Three phases per step: reconstruction (encoder and decoder), the latent discriminator
telling target samples from codes, and the encoder fooling it (non-saturating loss).
Labelled examples (``--labeled`` with a mixture target) are pulled towards their class's
mode by drawing the discriminator's "real" samples for them from that mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdegen import distributed
from kdegen.config import option
from kdegen.methods.autoencoder import AEConfig, AutoEncoder
from kdegen.methods.base import METHODS, Batch, DataSpec, Losses
from kdegen.nets.mlp import MLPDiscriminator
from kdegen.nets.modes import frozen
from kdegen.priors import GaussianMixture


@dataclass(frozen=True)
class AAEConfig(AEConfig):
    """Options of ``aae``."""

    d_hidden: int = option(256, "hidden units of the latent discriminator", ge=1)
    lr_d: float = option(2e-4, "latent discriminator learning rate", gt=0)


@METHODS.register("aae")
class AAE(AutoEncoder[AAEConfig]):
    """Autoencoder whose codes are matched to the target by a latent discriminator."""

    Config = AAEConfig

    def __init__(self, config: AAEConfig, spec: DataSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.Dz: nn.Module = MLPDiscriminator(config.latent, config.d_hidden, 2).to(device)
        self.opt_dz = torch.optim.Adam(
            self.Dz.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2)
        )
        self.opt_e = self.make_optimizer(list(self.E.parameters()))

    def networks(self) -> dict[str, nn.Module]:
        return {**super().networks(), "Dz": self.Dz}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "Dz": self.opt_dz, "E": self.opt_e}

    def train_step(self, batch: Batch) -> Losses:
        losses = dict(super().train_step(batch))  # reconstruction phase
        z = self.E(batch.x)
        real = self._target_samples(batch)
        # discriminator phase: target samples are "real", codes are "fake"
        d_loss = F.softplus(-self.Dz(real)).mean() + F.softplus(self.Dz(z.detach())).mean()
        self.opt_dz.zero_grad(set_to_none=True)
        d_loss.backward()
        distributed.average_gradients(self.Dz.parameters())
        self.opt_dz.step()
        # encoder phase: make codes look like target samples
        with frozen(self.Dz, keep_mode=True):
            g_loss = F.softplus(-self.Dz(z)).mean()
            self.opt_e.zero_grad(set_to_none=True)
            g_loss.backward()
        distributed.average_gradients(self.E.parameters())
        self.opt_e.step()
        losses.update(d_loss=d_loss.detach(), g_loss=g_loss.detach())
        return losses

    def _target_samples(self, batch: Batch) -> Tensor:
        real = self.target.sample(len(batch.x)).to(self.device)
        if batch.index is None or batch.y is None or not bool(self.labeled.any()):
            return real
        known = self.labeled[batch.index]
        if bool(known.any()):
            # the mixture's components, one per class (--labeled requires --target mog)
            assert isinstance(self.target, GaussianMixture)  # --labeled requires --target mog
            modes = self.target.sample_component(batch.y[known])
            real[known] = modes.to(self.device)
        return real
