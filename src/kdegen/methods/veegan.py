"""VEEGAN (Srivastava, Valkov, Russell, Gutmann and Sutton 2017, "VEEGAN: Reducing Mode
Collapse in GANs using Implicit Variational Learning"; tutorial "Mode Collapse: Solutions").

A reconstructor network F maps data to codes beside the generator G, and the
discriminator judges joint pairs: (F(x), x) with x from the data against (z, G(z)) with z
from the Gaussian prior, as in BiGAN / ALI (:mod:`kdegen.methods.bigan`, whose encoder is
F here). What differs is the generator's objective (VEEGAN Eq. 8, Algorithm 1):

    O(G, F) = E_z[ D~(z, G(z)) ] + lambda E_z[ ||z - F(G(z))||^2 ],

where D~ is the discriminator's estimate of log q(x, z) / p(x, z), the log ratio of the
generator's joint to the reconstructor's (with a logistic discriminator, minus its logit
for "real"), and the second term is an autoencoder loss in code space: F must invert G
on G's own samples. G minimises both terms, F the second (the paper's Algorithm 1 updates
F by the reconstruction alone; its match of the data to the prior comes through the
discriminator's pairs). Because codes are standard normal, the squared error needs no
choice of a data-space loss.

With the logistic objectives (``minimax``, ``non-saturating``) D~ is minus the logit, as
in the paper; with the others the generator's adversarial term is the objective's own
generator loss on the pairs (z, G(z)). ``--recon-weight`` sets lambda (1 in the paper).
``kdegen encode`` gives F(x) and G(F(x)).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from kdegen.config import option
from kdegen.methods.base import METHODS, Batch, Losses
from kdegen.methods.bigan import BiGAN, BiGANConfig
from kdegen.nets.joint import join
from kdegen.nets.minibatch import feature_matching_loss

LOGISTIC = ("minimax", "non-saturating")


@dataclass(frozen=True)
class VEEGANConfig(BiGANConfig):
    """Options of ``veegan``: those of ``bigan`` (F is its encoder) and the weight of the
    code-space reconstruction."""

    recon_weight: float = option(
        1.0, "weight lambda of the code-space autoencoder loss ||z - F(G(z))||^2", ge=0
    )


@METHODS.register("veegan")
class VEEGAN(BiGAN[VEEGANConfig]):
    """Generator G, reconstructor F (``E``) and a discriminator on (x, z) pairs."""

    Config = VEEGANConfig

    def train_step(self, batch: Batch) -> Losses:
        losses = dict(super().train_step(batch))
        losses["recon_loss"] = self._recon
        return losses

    def generator_loss(self, real: Tensor) -> Tensor:
        z = self.noise(real.shape[0])
        x = self.G(z)
        fake_in = join(x, z)
        if self.config.feature_matching:
            adversarial = feature_matching_loss(self.D, self.real_input(real), fake_in)
        elif self.config.objective in LOGISTIC:
            adversarial = -self.D(fake_in).mean()  # the estimate of log q / p on (z, G(z))
        else:
            adversarial = self.objective.g_loss(self.D(fake_in))
        recon = ((z - self.E(x)) ** 2).sum(dim=1).mean()
        self._recon = recon.detach()
        return adversarial + self.config.recon_weight * recon
