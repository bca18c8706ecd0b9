"""PacGAN (Lin, Khetan, Fanti and Oh 2018, "PacGAN: The power of two samples in generative
adversarial networks"): the discriminator judges m samples at once.

PacGAN-m packs m samples drawn independently from the same source into one discriminator
input, concatenated along the channels for images ((m*C, H, W)) and along the features for
points ((m*D,)); real packs come from m distinct training examples, fake packs from m
independent codes. A packed discriminator sees the product distribution P^m against Q^m,
which penalises a generator that drops modes more strongly than one sample does (the
paper's Sec. 4; the tutorial's "Mode Collapse: Solutions" shows PacGAN2 catching all 25
modes of the 2-D grid). The objective, regularisers and every other option are the
``gan`` method's.

Batch sizes count packs, as in the paper, which keeps the discriminator's minibatch of
packed inputs at ``--batch-size``: one discriminator update consumes m minibatches of
real examples (``batches_per_step = n_critic * m``) and m times as many fakes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kdegen.config import option
from kdegen.methods.base import METHODS, DataSpec
from kdegen.methods.gan import GAN, GANConfig
from kdegen.nets import NetOptions, build_pair


def pack(x: Tensor, m: int) -> Tensor:
    """Pack m consecutive samples into one input: (B*m, C, H, W) -> (B, m*C, H, W), or
    (B*m, D) -> (B, m*D). Pack i holds samples i*m, ..., i*m + m - 1 in that order.

    Raises:
        ValueError: when the number of samples is not a multiple of m.
    """
    n = x.shape[0]
    if n % m:
        raise ValueError(f"cannot pack {n} samples into groups of {m}")
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])


def packed_shape(shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """The discriminator's input shape for ``m`` packed samples of ``shape``."""
    return (m * shape[0], *shape[1:])


@dataclass(frozen=True)
class PacGANConfig(GANConfig):
    """Options of ``pacgan``: those of ``gan`` plus the packing degree m."""

    pack: int = option(2, "samples packed into one discriminator input (PacGAN-m)", ge=1)


@METHODS.register("pacgan")
class PacGAN(GAN[PacGANConfig]):
    """A GAN whose discriminator sees m packed samples (real with real, fake with fake)."""

    Config = PacGANConfig

    def __init__(self, config: PacGANConfig, spec: DataSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.m = config.pack
        self.batches_per_step = self.config.n_critic * self.m

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        options = NetOptions(c.width, c.hidden, c.layers, c.d_norm)
        G, _ = build_pair(c.arch, c.latent, self.spec.shape, options)
        _, D = build_pair(c.arch, c.latent, packed_shape(self.spec.shape, c.pack), options)
        return G, D

    def real_input(self, x: Tensor) -> Tensor:
        return pack(x, self.m)

    def fake_input(self, z: Tensor) -> Tensor:
        return pack(self.G(z), self.m)
