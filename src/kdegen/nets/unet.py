"""The U-Net of ModNet's generator (thesis Sec. 2.5.1, Fig. 2.4-2.5; Ronneberger et al.
2015, as the generator of Isola et al. 2017).

(x (B, C, H, W), target labels (B,)) -> an unbounded delta map (B, C, H, W). The target
enters one-hot, as K constant channels beside the image. The encoder is a 3x3 convolution
to ``width`` filters and ``depth`` stride-2 3x3 convolutions that double the filters
(a side s becomes ceil(s / 2), so 28 -> 14 -> 7 and odd sizes work); the decoder
upsamples (nearest neighbour) to each skip connection's size, concatenates the skip and
applies a 3x3 convolution. A last 1x1 convolution (:attr:`UNet.last`) gives C channels
and no activation: ModNet's combination rule (:mod:`kdegen.methods.modnet`) bounds the
output. Batch normalisation follows every convolution but the first and the last, as in
Isola et al.'s U-Net.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.nets.conditional import label_maps


def auto_depth(height: int, width: int) -> int:
    """Halvings while the smaller side is at least 8 (28 -> 14 -> 7: 2; 32 -> 4: 3)."""
    side, depth = min(height, width), 0
    while side >= 8:
        side, depth = (side + 1) // 2, depth + 1
    return depth


def _block(c_in: int, c_out: int, stride: int, norm: bool, act: nn.Module) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers, act)


class UNet(nn.Module):
    """Image and target label -> delta map of the image's shape.

    Args:
        channels: image channels C.
        classes: number of target labels K.
        size: image (H, W).
        width: filters at full resolution (doubled at each halving).
        depth: number of halvings (0: :func:`auto_depth`).
    """

    def __init__(
        self, channels: int, classes: int, size: tuple[int, int], width: int = 32, depth: int = 0
    ) -> None:
        super().__init__()
        depth = depth or auto_depth(*size)
        if depth < 1 or min(size) < 2**depth:
            raise UsageError(f"a U-Net of depth {depth} does not fit {size[0]}x{size[1]} images")
        self.classes = classes
        filters = [width * 2**i for i in range(depth + 1)]  # per resolution, full first
        self.stem = _block(channels + classes, width, 1, False, nn.LeakyReLU(0.2))
        self.down = nn.ModuleList(
            _block(filters[i], filters[i + 1], 2, True, nn.LeakyReLU(0.2)) for i in range(depth)
        )
        self.up = nn.ModuleList(
            _block(filters[i + 1] + filters[i], filters[i], 1, True, nn.ReLU())
            for i in reversed(range(depth))
        )
        self.last = nn.Conv2d(width, channels, 1)

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        h = self.stem(torch.cat([x, label_maps(target, self.classes, *x.shape[2:])], 1))
        skips = [h]  # full resolution first
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()  # the bottleneck is h itself
        for up in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = up(torch.cat([h, skip], 1))
        return self.last(h)  # (B, C, H, W), unbounded
