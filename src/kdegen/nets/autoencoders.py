"""Encoder/decoder pairs shared by the autoencoder methods (ae, vae, aae, gen).

Two families, as in the GENs paper's comparisons: fully connected ("FC-layers", used for
its entropy study, Table 2) and convolutional (the DCGAN layout of :mod:`.dcgan`, the
encoder being the discriminator's feature stack with a linear head). Decoders end in
tanh for images (data in [-1, 1]) and are linear for point sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.nets.dcgan import ConvDiscriminator, ConvGenerator, dcgan_depth
from kdegen.nets.mlp import mlp
from kdegen.registry import Registry


@dataclass(frozen=True)
class AutoencoderOptions:
    """Sizes of the encoder/decoder (each family reads the ones it uses)."""

    width: int = 32  # convolutional width multiplier
    hidden: int = 512  # widest fully connected layer
    layers: int = 2  # fully connected hidden layers (halving in width)


class FCEncoder(nn.Module):
    """x (B, *shape) -> codes (B, out) through fully connected layers."""

    def __init__(self, shape: Sequence[int], out: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), mlp([math.prod(shape), *hidden, out], _relu))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class FCDecoder(nn.Module):
    """codes (B, k) -> x (B, *shape); tanh output for images."""

    def __init__(self, latent: int, shape: Sequence[int], hidden: Sequence[int]) -> None:
        super().__init__()
        self.latent = latent
        layers: list[nn.Module] = [mlp([latent, *hidden, math.prod(shape)], _relu)]
        if len(shape) == 3:
            layers.append(nn.Tanh())
        layers.append(nn.Unflatten(1, tuple(shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ConvEncoder(nn.Module):
    """images (B, C, H, W) -> codes (B, out): DCGAN discriminator features, linear head."""

    def __init__(self, shape: Sequence[int], out: int, width: int) -> None:
        super().__init__()
        depth = dcgan_depth(shape[1], shape[2])
        disc = ConvDiscriminator(shape, [width * 2**i for i in range(depth)], norm="none")
        self.features = disc.features
        self.head = nn.Linear(disc.head.in_features, out)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _relu() -> nn.Module:
    return nn.ReLU()


def _fc_sizes(options: AutoencoderOptions) -> list[int]:
    return [max(options.hidden // 2**i, 8) for i in range(options.layers)]


EncoderDecoder = tuple[nn.Module, nn.Module]
Builder = Callable[[Sequence[int], int, int, AutoencoderOptions], EncoderDecoder]
AUTOENCODERS: Registry[Builder] = Registry("autoencoder architecture")


@AUTOENCODERS.register("fc")
def _fc(shape: Sequence[int], latent: int, out: int, o: AutoencoderOptions) -> EncoderDecoder:
    sizes = _fc_sizes(o)
    return FCEncoder(shape, out, sizes), FCDecoder(latent, shape, sizes[::-1])


@AUTOENCODERS.register("conv")
def _conv(shape: Sequence[int], latent: int, out: int, o: AutoencoderOptions) -> EncoderDecoder:
    if len(shape) != 3:
        raise UsageError(f"--arch conv needs images, the data has shape {tuple(shape)}; use fc")
    depth = dcgan_depth(shape[1], shape[2])
    decoder = ConvGenerator(latent, shape, [o.width * 2 ** (depth - 1 - i) for i in range(depth)])
    return ConvEncoder(shape, out, o.width), decoder


def build_autoencoder(
    arch: str,
    shape: Sequence[int],
    latent: int,
    out: int | None = None,
    options: AutoencoderOptions | None = None,
) -> EncoderDecoder:
    """An (encoder, decoder) pair.

    Args:
        arch: "fc", "conv" or "auto" (conv for images, fc for points).
        shape: one example's shape.
        latent: code dimension k (the decoder's input).
        out: the encoder's output size (default k; 2k for a VAE's mean and log-variance).
        options: layer sizes.
    """
    if arch == "auto":
        arch = "conv" if len(shape) == 3 else "fc"
    return AUTOENCODERS.get(arch)(shape, latent, out or latent, options or AutoencoderOptions())
