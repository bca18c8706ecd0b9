"""DCGAN generator and discriminator (Radford et al. 2016) for square-ish image sizes.

The generator projects z to a ``base x base`` map and doubles the resolution with
4x4 stride-2 transposed convolutions (3x3 when the next size is odd, so 4 -> 7 -> 14 -> 28
works as well as 4 -> 8 -> 16 -> 32); the discriminator mirrors it with strided
convolutions. Heights and widths are handled independently, so mnist1000's 28 x 84
images work too. The Generator Reversal appendix architecture is the same family with
fixed filter counts and a final stride-1 layer (``reversal_appendix_*``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError


def size_schedule(size: int, n_up: int) -> list[int]:
    """Sizes from the base map up to ``size`` after ``n_up`` resolution doublings.

    Each step maps s -> 2s (kernel 4) or s -> 2s - 1 (kernel 3), so going backwards
    each size is ceil(s / 2). Returns ``n_up + 1`` sizes, smallest first.
    """
    sizes = [size]
    for _ in range(n_up):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes[::-1]


def dcgan_depth(height: int, width: int) -> int:
    """Number of stride-2 layers for an image whose smaller side is 4 * 2^k or 7 * 2^k.

    Raises:
        UsageError: for other sizes, saying which sizes work.
    """
    side = min(height, width)
    for base in (4, 7):
        k, s = 0, side
        while s > base and s % 2 == 0:
            s //= 2
            k += 1
        if s == base and k >= 1:
            return k
    raise UsageError(
        f"image size {height}x{width} does not fit the DCGAN nets: the smaller side must be "
        "4*2^k or 7*2^k (8, 14, 16, 28, 32, 64, ...); resize the images or use --arch mlp"
    )


def _up(c_in: int, c_out: int, s_in: tuple[int, int], s_out: tuple[int, int]) -> nn.Module:
    """Transposed convolution from size s_in to s_out (each dim 2s or 2s - 1)."""
    for i, o in zip(s_in, s_out, strict=True):
        assert o in (2 * i, 2 * i - 1), (s_in, s_out)
    kernel = (4 if s_out[0] == 2 * s_in[0] else 3, 4 if s_out[1] == 2 * s_in[1] else 3)
    return nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=1, bias=False)


def _down(c_in: int, c_out: int, s_in: tuple[int, int]) -> nn.Module:
    """Strided convolution from size s to ceil(s / 2) in each dim."""
    kernel = (4 if s_in[0] % 2 == 0 else 3, 4 if s_in[1] % 2 == 0 else 3)
    return nn.Conv2d(c_in, c_out, kernel, stride=2, padding=1, bias=False)


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # layer norm over (C, H, W), per sample
    return nn.Identity()


class ConvGenerator(nn.Module):
    """z (B, k) -> images (B, C, H, W) in [-1, 1].

    Args:
        latent: dimension k of z.
        shape: output (C, H, W).
        channels: filters after the projection and after each intermediate layer,
            e.g. (128, 64) for 28x28 DCGAN: 7x7x128 -> 14x14x64 -> 28x28xC.
        final_upsample: True (DCGAN) if the last layer doubles the resolution;
            False (Generator Reversal appendix) if it is a stride-1 layer.
        norm: "batch" or "none" after each hidden layer.
    """

    def __init__(
        self,
        latent: int,
        shape: Sequence[int],
        channels: Sequence[int],
        final_upsample: bool = True,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        c_out, height, width = shape
        n_up = len(channels) - 1 + int(final_upsample)
        hs, ws = size_schedule(height, n_up), size_schedule(width, n_up)
        self.latent = latent
        self.base = (channels[0], hs[0], ws[0])
        self.project = nn.Sequential(
            nn.Linear(latent, channels[0] * hs[0] * ws[0], bias=False),
            nn.Unflatten(1, self.base),
            _norm2d(norm, channels[0]),
            nn.ReLU(True),
        )
        layers: list[nn.Module] = []
        for i in range(1, len(channels)):
            s_in, s_out = (hs[i - 1], ws[i - 1]), (hs[i], ws[i])
            layers += [_up(channels[i - 1], channels[i], s_in, s_out)]
            layers += [_norm2d(norm, channels[i]), nn.ReLU(True)]
        if final_upsample:
            layers.append(_up(channels[-1], c_out, (hs[-2], ws[-2]), (height, width)))
        else:
            layers.append(nn.ConvTranspose2d(channels[-1], c_out, 3, stride=1, padding=1))
        layers.append(nn.Tanh())
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z))  # (B, C, H, W)


class ConvDiscriminator(nn.Module):
    """images (B, C, H, W) -> one logit per image (B,).

    Args:
        shape: input (C, H, W).
        channels: filters of the strided convolutions, in order.
        norm: "batch", "layer" or "none" on every conv layer but the first (DCGAN).
        features: if > 0, a hidden fully connected layer of this width before the logit.
    """

    def __init__(
        self, shape: Sequence[int], channels: Sequence[int], norm: str = "batch", features: int = 0
    ) -> None:
        super().__init__()
        c, height, width = shape
        size = (height, width)
        layers: list[nn.Module] = []
        for i, c_next in enumerate(channels):
            layers += [_down(c, c_next, size)]
            layers += [_norm2d("none" if i == 0 else norm, c_next), nn.LeakyReLU(0.2, True)]
            c, size = c_next, ((size[0] + 1) // 2, (size[1] + 1) // 2)
        layers.append(nn.Flatten())
        n_flat = c * size[0] * size[1]
        if features > 0:
            layers += [nn.Linear(n_flat, features), nn.LeakyReLU(0.2, True)]
            n_flat = features
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(n_flat, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)  # (B,)


def dcgan_pair(
    latent: int, shape: Sequence[int], width: int = 64, d_norm: str = "batch"
) -> tuple[ConvGenerator, ConvDiscriminator]:
    """The DCGAN generator/discriminator pair for ``shape`` with width multiplier ``width``.

    Filters double at each halving of the resolution: for 28x28, G is 7x7x2w -> 14x14xw
    -> 28x28xC and D is 28 -> 14 (w) -> 7 (2w) -> logit.
    """
    depth = dcgan_depth(shape[1], shape[2])
    g_channels = [width * 2 ** (depth - 1 - i) for i in range(depth)]
    d_channels = [width * 2**i for i in range(depth)]
    gen = ConvGenerator(latent, shape, g_channels, final_upsample=True)
    disc = ConvDiscriminator(shape, d_channels, norm=d_norm)
    return gen, disc


def reversal_appendix_pair(
    latent: int, shape: Sequence[int], d_norm: str = "batch"
) -> tuple[ConvGenerator, ConvDiscriminator]:
    """The architecture of the Generator Reversal appendix (Kilcher et al., App. A).

    G: z -> 4x4x512 (7x7 base for 28x28), deconvolutions with 256, 128, 64 filters and a
    last stride-1 deconvolution to the output channels; 64x64 images get an extra 512-filter
    layer. D: convolutions with 256, 128, 64 filters (plus 512 for 64x64), a fully
    connected layer to the logit. 4x4 kernels, stride 2, ReLU / LeakyReLU(0.2).
    """
    extra = [512] if min(shape[1], shape[2]) >= 64 else []
    g_channels = [512, *extra, 256, 128, 64]
    d_channels = [*extra, 256, 128, 64]
    gen = ConvGenerator(latent, shape, g_channels, final_upsample=False)
    disc = ConvDiscriminator(shape, d_channels, norm=d_norm)
    return gen, disc


def init_dcgan_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """DCGAN initialisation: conv and linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.BatchNorm1d | nn.LayerNorm):
            with torch.no_grad():
                if m.weight is not None:
                    m.weight.normal_(1.0, 0.02, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
