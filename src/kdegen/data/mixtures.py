"""2-D Gaussian mixtures used to count captured modes: ``ring8`` and ``grid25``.

``ring8``: 8 equally weighted Gaussians (std 0.02) on a circle of radius 2, the
unrolled-GAN setting of Metz et al. ``grid25``: 25 Gaussians (std 0.05) centred on
{-4, -2, 0, 2, 4}^2, the PacGAN / VEEGAN setting. Points are raw coordinates; the
label of a point is the index of the mode it was drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kdegen.config import Config, option
from kdegen.data.base import ImageData, Request, dataset

SPLIT_SEEDS = {"train": 1, "test": 2}
DEFAULT_SIZES = {"train": 50_000, "test": 10_000}


@dataclass(frozen=True)
class PointsOptions(Config):
    """Options of the 2-D mixtures (``ring8:n=5000``)."""

    n: int | None = option(None, "50000 train / 10000 test", ge=1, metavar="int")


@dataclass(frozen=True)
class Mixture:
    """Equally weighted isotropic Gaussians with a common standard deviation."""

    centres: np.ndarray
    std: float

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` points (float32 n x 2) and their mode indices (int64 n)."""
        rng = np.random.default_rng(seed)
        labels = rng.integers(len(self.centres), size=n)
        noise = rng.standard_normal((n, self.centres.shape[1]))
        points = self.centres[labels] + self.std * noise
        return points.astype(np.float32), labels.astype(np.int64)


def ring_centres(modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """Centres of ``modes`` points evenly spaced on a circle of ``radius``."""
    angles = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_centres(values: tuple[float, ...] = (-4, -2, 0, 2, 4)) -> np.ndarray:
    """Centres on the square grid ``values`` x ``values`` (row-major)."""
    xs, ys = np.meshgrid(np.asarray(values, dtype=np.float64), values, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


RING8 = Mixture(ring_centres(), 0.02)
GRID25 = Mixture(grid_centres(), 0.05)


def load_mixture(mixture: Mixture, request: Request) -> ImageData:
    """Sample the split of ``mixture`` the request names (seeded differently per split)."""
    n = request.options["n"] or DEFAULT_SIZES[request.split]
    points, labels = mixture.sample(n, SPLIT_SEEDS[request.split])
    return ImageData(
        torch.from_numpy(points),
        torch.from_numpy(labels),
        request.name,
        kind="points",
        num_classes=len(mixture.centres),
        centres=torch.tensor(mixture.centres, dtype=torch.float32),
        std=mixture.std,
    )


def _register(name: str, mixture: Mixture, description: str) -> None:
    """Register ``mixture`` as the points dataset ``name``."""

    def load_points(request: Request) -> ImageData:
        return load_mixture(mixture, request)

    dataset(
        name,
        description=description,
        sizes=(DEFAULT_SIZES["train"], DEFAULT_SIZES["test"]),
        shape=(2,),
        kind="points",
        num_classes=len(mixture.centres),
        options=PointsOptions,
    )(load_points)


_register(
    "ring8", RING8, "8 Gaussians (std 0.02) on a circle of radius 2 (unrolled-GAN 2-D benchmark)"
)
_register(
    "grid25",
    GRID25,
    "25 Gaussians (std 0.05) on the grid {-4,-2,0,2,4}^2 (PacGAN/VEEGAN benchmark)",
)
