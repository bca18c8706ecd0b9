"""BiGAN / ALI: adversarially learned inference (Donahue, Kraehenbuehl and Darrell 2017,
"Adversarial Feature Learning"; Dumoulin et al. 2017, "Adversarially Learned Inference").

An encoder E maps data to codes beside the generator G, and the discriminator judges joint
pairs: (x, E(x)) with x from the data against (G(z), z) with z from the prior. The game
(BiGAN Eq. 1, tutorial "Adversarially learned inference") is

    min_(G,E) max_D  E_x[log D(x, E(x))] + E_z[log(1 - D(G(z), z))],

whose optimum matches the two joint distributions, so that E and G invert each other
(BiGAN Theorems 2-3; tutorial "BiGAN: Encoder & Decoder are Inverses").

Any registered objective replaces the log terms: the discriminator minimises the
objective's loss with (x, E(x)) as real and (G(z), z) as fake, and G and E together
minimise the same loss with the labels swapped, the "inverted labels" of Donahue et al.'s
training. For the Wasserstein, LSGAN and f-GAN objectives that is their own generator
update on both sides; for ``minimax`` and ``non-saturating`` it is the non-saturating form.
``--feature-matching`` instead matches the mean joint features of both kinds of pairs.
``kdegen encode`` gives E(x) and the reconstructions G(E(x)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

from kdegen.methods.base import METHODS, DataSpec
from kdegen.methods.gan import GAN, GANConfig
from kdegen.nets import NetOptions, build_pair, init_dcgan_weights
from kdegen.nets.autoencoders import ConvEncoder, FCEncoder
from kdegen.nets.joint import join, joint_discriminator
from kdegen.nets.minibatch import feature_matching_loss
from kdegen.nets.modes import chunked, evaluating


@dataclass(frozen=True)
class BiGANConfig(GANConfig):
    """Options of ``bigan``: those of ``gan``. The encoder mirrors the discriminator (DCGAN
    convolutions and a linear head for images, ``--layers`` x ``--hidden`` for points); the
    joint discriminator's z branch and joint layer use ``--hidden`` units."""


def build_encoder(spec: DataSpec, latent: int, width: int, hidden: int, layers: int) -> nn.Module:
    """E: data (B, *shape) -> codes (B, k); convolutional for images, an MLP for points."""
    if spec.is_image:
        encoder: nn.Module = ConvEncoder(spec.shape, latent, width)
        init_dcgan_weights(encoder)
        return encoder
    return FCEncoder(spec.shape, latent, [hidden] * layers)


BC = TypeVar("BC", bound=BiGANConfig)


@METHODS.register("bigan")
class BiGAN(GAN[BC]):
    """Generator G, encoder E and a discriminator on (x, z) pairs (see the module)."""

    Config = BiGANConfig

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        options = NetOptions(c.width, c.hidden, c.layers, c.d_norm)
        G, _ = build_pair(c.arch, c.latent, self.spec.shape, options)
        D = joint_discriminator(self.spec.shape, c.latent, c.width, c.hidden, c.layers, c.d_norm)
        return G, D

    def build_extra_networks(self) -> None:
        c = self.config
        self.E: nn.Module = build_encoder(self.spec, c.latent, c.width, c.hidden, c.layers)
        self.E.to(self.device)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.G.parameters(), *self.E.parameters()]

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "E": self.E, "D": self.D}

    def real_input(self, x: Tensor) -> Tensor:
        return join(x, self.E(x))  # (B, prod(shape) + k)

    def fake_input(self, z: Tensor) -> Tensor:
        return join(self.G(z), z)

    def generator_loss(self, real: Tensor) -> Tensor:
        real_in = self.real_input(real)  # differentiable w.r.t. E
        fake_in = self.fake_input(self.noise(real.shape[0]))  # ... and w.r.t. G
        if self.config.feature_matching:
            return feature_matching_loss(self.D, real_in, fake_in)
        # the discriminator's loss with the labels swapped: pairs (G(z), z) play "real"
        return self.objective.d_loss(self.D(fake_in), self.D(real_in))

    def encode(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Codes E(x) (N, k) of data (N, *shape), in eval mode and in chunks."""
        empty = torch.empty(0, self.config.latent, device=self.device)
        with evaluating(self.E):
            return chunked(self.E, x, batch_size, empty)

    def reconstruct(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """G(E(x)) (N, *shape) in eval mode: how well the generator inverts the encoder."""
        codes = self.encode(x, batch_size)
        empty = torch.empty(0, *self.spec.shape, device=self.device)
        with evaluating(self.G):
            return chunked(self.G, codes, batch_size, empty)
