"""Fully connected generator / discriminator pairs for low-dimensional data (ring8, grid25).

Sizes follow the mode-collapse literature's 2-D experiments (Metz et al. 2017; Lin et al.
2018): a few hidden layers of one or two hundred units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn


def mlp(
    sizes: Sequence[int], activation: Callable[[], nn.Module], norm: bool = False
) -> nn.Sequential:
    """Linear layers through ``sizes`` with ``activation()`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            if norm:
                layers.append(nn.BatchNorm1d(sizes[i + 1]))
            layers.append(activation())
    return nn.Sequential(*layers)


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


class MLPGenerator(nn.Module):
    """z (B, k) -> points (B, D), unbounded outputs."""

    def __init__(self, latent: int, dim: int, hidden: int = 128, layers: int = 3) -> None:
        super().__init__()
        self.latent = latent
        self.net = mlp([latent, *[hidden] * layers, dim], nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """points (B, D) -> one logit per point (B,)."""

    def __init__(self, dim: int, hidden: int = 128, layers: int = 3) -> None:
        super().__init__()
        self.features = mlp([dim, *[hidden] * layers], _leaky)
        self.features.append(_leaky())
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)  # (B,)


def mlp_pair(
    latent: int, dim: int, hidden: int = 128, layers: int = 3
) -> tuple[MLPGenerator, MLPDiscriminator]:
    """A generator and discriminator of ``layers`` hidden layers of ``hidden`` units."""
    return MLPGenerator(latent, dim, hidden, layers), MLPDiscriminator(dim, hidden, layers)
