"""Writing samples as PNG: image grids and 2-D scatter plots for people to look at, and
folders of one PNG per image (``000000.png`` ...) for tools that read image folders
(torch-fidelity, clean-fid, ``kdegen evaluate DIR``), written a chunk at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from kdegen.files import atomic_folder, atomic_path

SCATTER_PIXELS = 500  # side of a scatter plot: 5 inches at 100 dpi


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid_size(
    n: int, height: int, width: int, nrow: int | None = None, pad: int = 2
) -> tuple[int, int]:
    """(height, width) in pixels of the :func:`grid` of ``n`` images of ``height`` x ``width``."""
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    return rows * (height + pad) + pad, cols * (width + pad) + pad


def grid(images: Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (rows*H', cols*W', C) uint8 array.

    Args:
        images: the images.
        nrow: images per row (default: about square).
        pad: pixels of black border between images.
    """
    n, c, h, w = images.shape
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    out = np.zeros((*grid_size(n, h, w, cols, pad), c), dtype=np.uint8)
    for i, img in enumerate(to_uint8(images)):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y : y + h, x : x + w] = img
    return out


def _picture(pixels: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 -> a grayscale (C = 1) or RGB (C = 3) image."""
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


def save_grid(images: Tensor, path: Path, nrow: int | None = None) -> None:
    """Write ``images`` (N, C, H, W) in [-1, 1] as a PNG grid."""
    with atomic_path(path) as tmp:
        _picture(grid(images, nrow)).save(tmp, format="PNG")


def save_scatter(points: Tensor, path: Path, reference: Tensor | None = None) -> None:
    """Write a scatter plot of (N, 2) ``points`` over light-grey ``reference`` points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=SCATTER_PIXELS / 5)
    if reference is not None:
        r = reference.detach().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="0.8", label="data")
    p = points.detach().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=3, c="tab:blue", label="samples")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def save_samples(samples: Tensor, path: Path, reference: Tensor | None = None) -> None:
    """A grid for images (N, C, H, W), a scatter plot for 2-D points (N, 2)."""
    if samples.dim() == 4:
        save_grid(samples, path)
    elif samples.dim() == 2 and samples.shape[1] == 2:
        save_scatter(samples, path, reference)
    else:
        raise ValueError(f"cannot draw samples of shape {tuple(samples.shape)} as a picture")


def png_size(channels: int, height: int, width: int) -> int:
    """Bytes on disk a PNG of this size takes at most: raw rows (a filter byte each) with
    room for deflate's stored blocks and the PNG chunks, in whole 4 kB disk blocks."""
    raw = height * (width * channels + 1)
    return -(-(raw + raw // 100 + 1024) // 4096) * 4096


class PngStream:
    """The folder being written by :func:`streamed_pngs`: ``000000.png``, ``000001.png``, ..."""

    def __init__(self, folder: Path, total: int) -> None:
        self.folder = folder
        self.total = total
        self.written = 0  # images so far
        self._digits = max(6, len(str(total - 1)))  # names sort as the samples' order

    def write(self, images: Tensor) -> None:
        """Append images (n, C, H, W) in [-1, 1], C in {1, 3}: one PNG each."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"PNG files hold (n, 1 or 3, H, W) images, not {tuple(images.shape)}")
        if self.written + len(images) > self.total:
            raise ValueError(f"{self.written} + {len(images)} images is more than {self.total}")
        for pixels in to_uint8(images):
            _picture(pixels).save(self.folder / f"{self.written:0{self._digits}d}.png")
            self.written += 1


@contextmanager
def streamed_pngs(folder: Path, total: int) -> Iterator[PngStream]:
    """Write ``total`` images as a folder of PNGs, chunk by chunk, atomically.

    Args:
        folder: the folder to create (it must not exist, or be empty); it appears only
            once all images were written (an error, or fewer images, leaves no folder).
        total: the number of images.

    Yields:
        The stream: call ``write(chunk)`` until ``total`` images were written.
    """
    with atomic_folder(folder) as tmp:
        stream = PngStream(tmp, total)
        yield stream
        if stream.written != total:
            raise ValueError(f"streamed_pngs: {stream.written} of {total} images were written")
