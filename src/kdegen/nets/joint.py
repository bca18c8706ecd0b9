"""Discriminators on joint pairs (x, z) for BiGAN / ALI (Donahue et al. 2017, Sec. 3;
Dumoulin et al. 2017, Sec. 2).

A pair travels as one row [x.flatten(), z] of length prod(shape) + k, so objectives, the
gradient penalty (interpolating whole pairs), minibatch discrimination and feature matching
work on it as on any discriminator input. For points the discriminator is an MLP on the row;
for images it splits the row again: DCGAN convolutional features of x and an MLP of z are
concatenated and mixed by a fully connected layer before the logit, the shape of the
BiGAN/ALI joint discriminators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kdegen.nets.dcgan import ConvDiscriminator, dcgan_depth
from kdegen.nets.mlp import MLPDiscriminator, mlp


def join(x: Tensor, z: Tensor) -> Tensor:
    """The pair rows [x.flatten(), z] (B, prod(shape) + k) of data x (B, *shape), codes z."""
    return torch.cat([x.flatten(1), z], dim=1)


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


class JointConvFeatures(nn.Module):
    """Pair rows (B, C*H*W + k) -> joint features (B, hidden).

    Args:
        shape: the images' (C, H, W).
        latent: k.
        width: DCGAN width multiplier of the x branch.
        hidden: units of the z branch and of the joint layer.
        norm: normalisation of the x branch's conv layers (batch, layer, none).
    """

    def __init__(
        self, shape: Sequence[int], latent: int, width: int, hidden: int, norm: str
    ) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.x_size = math.prod(shape)
        depth = dcgan_depth(shape[1], shape[2])
        conv = ConvDiscriminator(shape, [width * 2**i for i in range(depth)], norm=norm)
        self.x_branch = conv.features  # (B, C, H, W) -> (B, n_flat)
        self.z_branch = nn.Sequential(mlp([latent, hidden, hidden], _leaky), _leaky())
        self.joint = nn.Sequential(nn.Linear(conv.head.in_features + hidden, hidden), _leaky())

    def forward(self, pair: Tensor) -> Tensor:
        x = pair[:, : self.x_size].reshape(-1, *self.shape)  # (B, C, H, W)
        z = pair[:, self.x_size :]  # (B, k)
        h = torch.cat([self.x_branch(x), self.z_branch(z)], dim=1)
        out: Tensor = self.joint(h)
        return out  # (B, hidden)


class JointConvDiscriminator(nn.Module):
    """Image/code pair rows (B, C*H*W + k) -> one logit per pair (B,)."""

    def __init__(
        self,
        shape: Sequence[int],
        latent: int,
        width: int = 32,
        hidden: int = 128,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.features = JointConvFeatures(shape, latent, width, hidden, norm)
        self.head = nn.Linear(hidden, 1)

    def forward(self, pair: Tensor) -> Tensor:
        return self.head(self.features(pair)).squeeze(1)  # (B,)


def joint_discriminator(
    shape: Sequence[int], latent: int, width: int, hidden: int, layers: int, norm: str
) -> nn.Module:
    """The joint discriminator for data of ``shape``: convolutional for images, else an MLP
    on the concatenated (x, z) of ``layers`` hidden layers of ``hidden`` units."""
    if len(shape) == 3:
        return JointConvDiscriminator(shape, latent, width, hidden, norm)
    return MLPDiscriminator(math.prod(shape) + latent, hidden, layers)
