"""Auxiliary classifier GAN ``acgan`` (Odena, Olah & Shlens 2017, Sec. 3).

The generator is conditional, X_fake = G(c, z); the discriminator sees only the image
and gives both a source logit (real or fake) and class logits P(C | X). With the
source log-likelihood L_S and the class log-likelihood L_C,

    L_S = E log P(S = real | X_real) + E log P(S = fake | X_fake)
    L_C = E log P(C = c | X_real) + E log P(C = c | X_fake),

D is trained to maximise L_S + L_C and G to maximise L_C - L_S. kdegen minimises:
D: d_loss(source logits) + w (CE(real, c) + CE(fake, c)); G: g_loss(source logit of the
fakes) + w CE(fake, c), where d_loss and g_loss are any registered objective's (with the
``non-saturating`` default, -L_S and its usual generator form) and w is ``--class-weight``
(1 in the paper). ``kdegen classify`` reports the auxiliary classifier's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from kdegen.config import option
from kdegen.methods.base import METHODS, DataSpec
from kdegen.methods.cgan import (
    CGANConfig,
    LabelledGAN,
    body_matching_loss,
    discriminator_base,
    net_options,
    weighted_cross_entropy,
)
from kdegen.nets import build_pair
from kdegen.nets.conditional import ClassHeadDiscriminator, ConditionalGenerator
from kdegen.nets.modes import evaluating


@dataclass(frozen=True)
class ACGANConfig(CGANConfig):
    """Options of ``acgan``: those of ``cgan`` and the weight of the class loss."""

    class_weight: float = option(1.0, "weight w of the auxiliary classification loss", ge=0)


@METHODS.register("acgan")
class ACGAN(LabelledGAN[ACGANConfig]):
    """Conditional generator, discriminator with a source logit and K class logits."""

    Config = ACGANConfig
    name = "acgan"

    def build(self, config: Any, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
        base_g, _ = build_pair(
            config.arch, config.latent + config.embed, spec.shape, net_options(config)
        )
        G = ConditionalGenerator(base_g, config.latent, self.classes, config.embed)
        return G, ClassHeadDiscriminator(discriminator_base(config, spec.shape), 1 + self.classes)

    def judge(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.D(x)  # (B, 1 + K): source logit, then class logits
        return out[:, 0], out[:, 1:]

    def class_loss(self, logits: Tensor | None, y: Tensor) -> Tensor | None:
        assert logits is not None
        return weighted_cross_entropy(logits, y, self.config.class_weight)

    def matching_loss(self, real: Tensor, fake: Tensor, y: Tensor) -> Tensor:
        return body_matching_loss(self.D, real, fake)

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (N, K) of the auxiliary classifier, in eval mode."""
        with evaluating(self.D):
            return self.D(x.to(self.device))[:, 1:]
