"""The ``inception`` embedding: Inception-v3 pool features through torch-fidelity.

The 2,048 pool features are what FID and KID are usually computed on (Heusel et al.;
Binkowski et al.); the softmax of the 1,008 logits (without bias, as torch-fidelity
computes the Inception Score) gives the class probabilities. Images are turned into
uint8 RGB (grayscale repeated to three channels) and resized to 299 x 299 by
torch-fidelity. The package is the optional extra ``kdegen[fidelity]`` and is imported
only here; its weights download on first use. When either cannot be had, a one-line
error says so and points to ``--embedding classifier``.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.evaluation.embed.base import (
    Embedded,
    Embedding,
    EmbedSettings,
    Reference,
    need_images,
    register_embedding,
)

EXTRACTOR = "torch_fidelity.feature_extractor_inceptionv3"
FEATURES = ("2048", "logits_unbiased")


def load_extractor() -> nn.Module:
    """torch-fidelity's Inception-v3 feature extractor with its weights, or UsageError."""
    try:
        module = importlib.import_module(EXTRACTOR)
    except ImportError:
        raise UsageError(
            "the inception embedding needs torch-fidelity, which is not installed: "
            "pip install 'kdegen[fidelity]', or use --embedding classifier"
        ) from None
    try:
        extractor: nn.Module = module.FeatureExtractorInceptionV3("inception-v3-compat", FEATURES)
    except Exception as e:  # download and file errors come in many types
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise UsageError(
            f"the Inception-v3 weights could not be had ({reason}); connect to the network "
            "once to download them, or use --embedding classifier"
        ) from None
    return extractor.eval()


def to_uint8_rgb(x: Tensor) -> Tensor:
    """(B, C, H, W) in [-1, 1] -> (B, 3, H, W) uint8, grayscale repeated."""
    u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return u8.expand(-1, 3, -1, -1) if u8.shape[1] == 1 else u8


class InceptionEmbedding(Embedding):
    """Inception-v3 pool features (B, 2048) and ImageNet class probabilities (B, 1008)."""

    name = "inception"

    def __init__(self, device: torch.device) -> None:
        super().__init__(device)
        self.net = load_extractor().to(device)

    def embed_batch(self, x: Tensor) -> Embedded:
        pool, logits = self.net(to_uint8_rgb(x).contiguous())
        return Embedded(pool, torch.softmax(logits.double(), 1))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "features": "pool3 (2048)"}


@register_embedding("inception", classifies=True)
def _inception(reference: Reference, settings: EmbedSettings) -> Embedding:
    need_images(reference, "inception")
    return InceptionEmbedding(settings.device)
