"""Hierarchical ALI (Belghazi, Rajeswar, Mastropietro, Rostamzadeh, Mitrovic and Courville
2018, "Hierarchical Adversarially Learned Inference"; tutorial, the HALI slides).

ALI (:mod:`kdegen.methods.bigan`) with a two-level latent hierarchy. The encoder path maps
x -> z1 -> z2 (E1, E2) and the generator path z2 -> z1 -> x (G2, G1), z2 drawn from the
prior; one discriminator judges the joint (x, z1, z2) of the encoder path, taken as real,
against that of the generator path, and the generator and encoder networks together
minimise its loss with the labels swapped, as in ALI. (The paper's conditionals are
Gaussian; here, as in kdegen's BiGAN, they are deterministic maps.)

Each level gives a reconstruction: x -> z1 -> x, i.e. G1(E1(x)), and x -> z1 -> z2 -> z1
-> x, i.e. G1(G2(E2(E1(x)))). The tutorial shows that the deeper level keeps less of the
input: its reconstructions keep what the image is (its class) more than how it is
drawn. ``kdegen encode`` writes z2 and both reconstructions (rows of its grid: the data,
level 1, level 2) with their errors.

Sizes: z1 has ``--latent1`` dimensions (0: 128 for images, the data's for points), z2
``--latent`` (0: 64 for images, the data's for points). G1 is the ``--arch`` generator
from z1, E1 the BiGAN encoder to z1; G2 and E2 are MLPs of ``--layers`` x ``--hidden``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

import torch
from torch import Tensor, nn

from kdegen.config import option
from kdegen.methods.base import METHODS, DataSpec
from kdegen.methods.bigan import BiGAN, BiGANConfig, build_encoder
from kdegen.nets import NetOptions, build_pair
from kdegen.nets.autoencoders import FCEncoder
from kdegen.nets.joint import join, joint_discriminator
from kdegen.nets.modes import chunked, evaluating

HS = TypeVar("HS", bound="HALIConfig")


@dataclass(frozen=True)
class HALIConfig(BiGANConfig):
    """Options of ``hali``: those of ``bigan`` (``--latent`` is z2's size) and z1's size."""

    latent: int = option(
        0, "dimension of the top latent level z2 (0: 64 for images, the data's for points)", ge=0
    )
    latent1: int = option(
        0, "dimension of the first latent level z1 (0: 128 for images, the data's for points)", ge=0
    )

    def resolved(self: HS, spec: DataSpec) -> HS:
        latent = self.latent or (64 if spec.is_image else spec.shape[0])
        latent1 = self.latent1 or (128 if spec.is_image else spec.shape[0])
        return BiGANConfig.resolved(replace(self, latent=latent, latent1=latent1), spec)


class TwoLevels(nn.Module):
    """``second(first(x))``, keeping both: the hierarchy's generator (first = G2: z2 -> z1,
    second = G1: z1 -> x) or encoder (first = E1: x -> z1, second = E2: z1 -> z2)."""

    def __init__(self, first: nn.Module, second: nn.Module, latent: int | None = None) -> None:
        super().__init__()
        self.first, self.second = first, second
        if latent is not None:
            self.latent = latent  # the input size of a generator (for reversal)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.second(self.first(x))
        return out

    def both(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(first(x), second(first(x)))."""
        middle = self.first(x)
        return middle, self.second(middle)


@METHODS.register("hali")
class HALI(BiGAN[HALIConfig]):
    """ALI over (x, z1, z2): generator z2 -> z1 -> x, encoder x -> z1 -> z2."""

    Config = HALIConfig

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        options = NetOptions(c.width, c.hidden, c.layers, c.d_norm)
        G1, _ = build_pair(c.arch, c.latent1, self.spec.shape, options)
        G2 = FCEncoder((c.latent,), c.latent1, [c.hidden] * c.layers)
        codes = c.latent1 + c.latent
        D = joint_discriminator(self.spec.shape, codes, c.width, c.hidden, c.layers, c.d_norm)
        return TwoLevels(G2, G1, latent=c.latent), D

    def build_extra_networks(self) -> None:
        c = self.config
        E1 = build_encoder(self.spec, c.latent1, c.width, c.hidden, c.layers)
        E2 = FCEncoder((c.latent1,), c.latent, [c.hidden] * c.layers)
        self.E: nn.Module = TwoLevels(E1, E2).to(self.device)

    def levels(self) -> tuple[TwoLevels, TwoLevels]:
        """The encoder (E1, E2) and the generator (G2, G1)."""
        assert isinstance(self.E, TwoLevels) and isinstance(self.G, TwoLevels)
        return self.E, self.G

    def real_input(self, x: Tensor) -> Tensor:
        z1, z2 = self.levels()[0].both(x)
        return join(x, torch.cat([z1, z2], dim=1))

    def fake_input(self, z: Tensor) -> Tensor:
        z1, x = self.levels()[1].both(z)
        return join(x, torch.cat([z1, z], dim=1))

    def level_reconstructions(self, x: Tensor, batch_size: int = 1024) -> dict[str, Tensor]:
        """Reconstructions of data x (N, *shape) through each level, in eval mode:
        ``{"z1": G1(E1(x)), "z2": G1(G2(E2(E1(x))))}``."""
        E, G = self.levels()
        empty = torch.empty(0, *self.spec.shape, device=self.device)

        def shallow(b: Tensor) -> Tensor:
            out: Tensor = G.second(E.first(b))
            return out

        def deep(b: Tensor) -> Tensor:
            out: Tensor = G(E(b))
            return out

        with evaluating(self.G, self.E):
            return {
                "z1": chunked(shallow, x, batch_size, empty),
                "z2": chunked(deep, x, batch_size, empty),
            }
