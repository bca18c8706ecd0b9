"""Writing samples for people to look at: image grids and 2-D scatter plots (PNG)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from kdegen.files import atomic_path


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid(images: Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (rows*H', cols*W', C) uint8 array.

    Args:
        images: the images.
        nrow: images per row (default: about square).
        pad: pixels of black border between images.
    """
    n, c, h, w = images.shape
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i, img in enumerate(to_uint8(images)):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y : y + h, x : x + w] = img
    return out


def save_grid(images: Tensor, path: Path, nrow: int | None = None) -> None:
    """Write ``images`` (N, C, H, W) in [-1, 1] as a PNG grid."""
    arr = grid(images, nrow)
    mode = "L" if arr.shape[2] == 1 else "RGB"
    with atomic_path(path) as tmp:
        Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode).save(tmp, format="PNG")


def save_scatter(points: Tensor, path: Path, reference: Tensor | None = None) -> None:
    """Write a scatter plot of (N, 2) ``points`` over light-grey ``reference`` points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
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
