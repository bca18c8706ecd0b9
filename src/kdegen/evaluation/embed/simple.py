"""The ``pixels`` and ``pca`` embeddings: the images themselves, or their main components.

``pixels`` flattens each image to one vector (point sets are used as they are).
``pca`` projects onto the principal components of the reference's training images (the
test images when there are none) that keep 95% of their variance, as the thesis does
before its Parzen-window comparison (Sec. 3.4.1); the projections are not whitened.
The components come from one SVD of the centred training matrix (float64).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kdegen.evaluation.embed.base import (
    Embedded,
    Embedding,
    EmbedSettings,
    Reference,
    register_embedding,
)

PCA_VARIANCE = 0.95


def flatten(x: Tensor) -> Tensor:
    """(N, ...) -> (N, prod(...)) float32."""
    return x.reshape(x.shape[0], -1).float()


class PixelEmbedding(Embedding):
    """Each image as one vector of its pixel values in [-1, 1] (points: their coordinates)."""

    name = "pixels"

    def embed_batch(self, x: Tensor) -> Embedded:
        return Embedded(flatten(x))


class PCAEmbedding(Embedding):
    """Projections onto the components that keep ``variance`` of the fitted data's variance.

    Args:
        data: (N, ...) images or points the components are fitted on.
        variance: the share of the total variance to keep.
        device: where projections run.
    """

    name = "pca"

    def __init__(self, data: Tensor, variance: float, device: torch.device) -> None:
        super().__init__(device)
        x = flatten(data).double()
        self.mean = x.mean(0, keepdim=True)  # (1, D)
        _, s, vh = torch.linalg.svd(x - self.mean, full_matrices=False)
        explained = (s**2).cumsum(0) / (s**2).sum().clamp_min(1e-300)
        k = int((explained < variance).sum()) + 1
        self.components = vh[:k].T.contiguous()  # (D, k)
        self.kept = float(explained[min(k, len(explained)) - 1])
        self.mean_f = self.mean.float().to(device)
        self.components_f = self.components.float().to(device)

    def embed_batch(self, x: Tensor) -> Embedded:
        return Embedded((flatten(x) - self.mean_f) @ self.components_f)  # (B, k)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "components": self.components.shape[1],
            "variance_kept": self.kept,
        }


@register_embedding("pixels")
def _pixels(reference: Reference, settings: EmbedSettings) -> Embedding:
    return PixelEmbedding(settings.device)


@register_embedding("pca")
def _pca(reference: Reference, settings: EmbedSettings) -> Embedding:
    fit_on = reference.train if reference.train is not None else reference.test
    return PCAEmbedding(fit_on.images, PCA_VARIANCE, settings.device)
