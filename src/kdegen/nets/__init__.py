"""Networks: DCGAN and Generator-Reversal convolutional pairs, MLP pairs for 2-D data.

``build_pair(arch, latent, shape, ...)`` picks a generator/discriminator pair from the
:data:`ARCHS` registry; ``"auto"`` means DCGAN for images and MLP for point sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from kdegen.errors import UsageError
from kdegen.nets.dcgan import (
    ConvDiscriminator,
    ConvGenerator,
    dcgan_pair,
    init_dcgan_weights,
    reversal_appendix_pair,
)
from kdegen.nets.mlp import MLPDiscriminator, MLPGenerator, mlp_pair
from kdegen.registry import Registry

__all__ = [
    "ARCHS",
    "ConvDiscriminator",
    "ConvGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "NetOptions",
    "build_pair",
    "dcgan_pair",
    "init_dcgan_weights",
    "mlp_pair",
    "reversal_appendix_pair",
]


@dataclass(frozen=True)
class NetOptions:
    """Architecture knobs shared by the pairs (each pair reads the ones it uses)."""

    width: int = 64  # DCGAN width multiplier (filters of the widest-resolution layer)
    hidden: int = 128  # MLP hidden units
    layers: int = 3  # MLP hidden layers
    d_norm: str = "batch"  # discriminator normalisation: batch, layer or none


PairBuilder = Callable[[int, Sequence[int], NetOptions], tuple[nn.Module, nn.Module]]
ARCHS: Registry[PairBuilder] = Registry("architecture")


@ARCHS.register("dcgan")
def _dcgan(latent: int, shape: Sequence[int], o: NetOptions) -> tuple[nn.Module, nn.Module]:
    _need_images("dcgan", shape)
    return dcgan_pair(latent, shape, o.width, o.d_norm)


@ARCHS.register("reversal-appendix")
def _reversal(latent: int, shape: Sequence[int], o: NetOptions) -> tuple[nn.Module, nn.Module]:
    _need_images("reversal-appendix", shape)
    return reversal_appendix_pair(latent, shape, o.d_norm)


@ARCHS.register("mlp")
def _mlp(latent: int, shape: Sequence[int], o: NetOptions) -> tuple[nn.Module, nn.Module]:
    if len(shape) != 1:
        raise UsageError(
            f"--arch mlp is for point sets, the data has shape {tuple(shape)}; use --arch dcgan"
        )
    return mlp_pair(latent, shape[0], o.hidden, o.layers)


def _need_images(arch: str, shape: Sequence[int]) -> None:
    if len(shape) != 3:
        raise UsageError(
            f"--arch {arch} needs images, the data has shape {tuple(shape)}; use --arch mlp"
        )


def build_pair(
    arch: str, latent: int, shape: Sequence[int], options: NetOptions | None = None
) -> tuple[nn.Module, nn.Module]:
    """Build a (generator, discriminator) pair.

    Args:
        arch: a name in :data:`ARCHS`, or "auto" (dcgan for images, mlp for points).
        latent: dimension of z.
        shape: one sample's shape, (C, H, W) or (D,).
        options: width / hidden sizes / discriminator normalisation.

    Returns:
        The generator (z (B, k) -> (B, *shape)) and discriminator ((B, *shape) -> (B,)).
    """
    if arch == "auto":
        arch = "dcgan" if len(shape) == 3 else "mlp"
    return ARCHS.get(arch)(latent, shape, options or NetOptions())
