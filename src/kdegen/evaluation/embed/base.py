"""What an embedding is: images -> feature vectors (and class probabilities), by name.

The thesis (Sec. 3.2.1) computes its measure on an embedding rather than on pixels: a
space much smaller than the images' escapes the curse of dimensionality, and a network
trained on the data keeps what matters (the digit) and drops what does not (a little
blur or contrast). An :class:`Embedding` is fitted on the reference data when it is
made and then maps any image set to an :class:`Embedded`; embeddings register a factory
in :data:`EMBEDDINGS` with :func:`register_embedding`.

Images are embedded in batches in eval mode with no batch statistics, so the features
of an image never depend on the batch size or on the other images.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from kdegen.data import ImageData
from kdegen.errors import UsageError
from kdegen.nets.classifier import ClassifierConfig
from kdegen.registry import Registry

CLASSIFIER_FEATURES = ("logits", "prelogits", "hypercolumns")


@dataclass(frozen=True)
class Embedded:
    """An embedded image set.

    Attributes:
        features: (n, d) float32 feature vectors.
        probs: (n, classes) class probabilities, for embeddings that classify.
        digits: (n, positions, 10) per-position digit probabilities (mnist1000), or None.
    """

    features: Tensor
    probs: Tensor | None = None
    digits: Tensor | None = None


@dataclass(frozen=True)
class Reference:
    """The real data an embedding is fitted on and generated sets are compared with.

    Attributes:
        name: a dataset spec (``mnist5k``, ``mnist1000:bias=1``) or a path, for messages.
        test: held-out images (the reference distribution).
        train: training images, or None (a reference given as files without train data).
    """

    name: str
    test: ImageData
    train: ImageData | None = None

    @property
    def base_name(self) -> str:
        """The dataset name without options (``mnist1000:bias=1`` -> ``mnist1000``)."""
        return self.name.partition(":")[0].strip()


@dataclass(frozen=True)
class EmbedSettings:
    """How to embed.

    Attributes:
        features: the classifier's layer: logits, prelogits or hypercolumns.
        batch_size: images per forward pass (the features do not depend on it).
        device: torch device for the networks.
        progress: show progress bars and the classifier's accuracy.
        classifier: the classifier's settings (part of its cache key).
    """

    features: str = "logits"
    batch_size: int = 250
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self) -> None:
        if self.features not in CLASSIFIER_FEATURES:
            raise UsageError(
                f"unknown --features {self.features!r}; choose one of: "
                f"{', '.join(CLASSIFIER_FEATURES)}"
            )
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")


class Embedding(ABC):
    """Maps image sets to features; made (and fitted) by a registered factory."""

    name: ClassVar[str]
    gives_digits: bool = False  # per-position digit probabilities (mnist1000 classifier)

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @abstractmethod
    def embed_batch(self, x: Tensor) -> Embedded:
        """Embed one batch already on ``self.device`` (no gradients)."""

    def embed(self, images: Tensor, batch_size: int = 250) -> Embedded:
        """Embed ``images`` (N, C, H, W) or points (N, D) batch by batch; results on the CPU."""
        features, probs, digits = [], [], []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                out = self.embed_batch(images[start : start + batch_size].to(self.device))
                features.append(out.features.float().cpu())
                if out.probs is not None:
                    probs.append(out.probs.cpu())
                if out.digits is not None:
                    digits.append(out.digits.cpu())
        return Embedded(
            torch.cat(features),
            torch.cat(probs) if probs else None,
            torch.cat(digits) if digits else None,
        )

    def describe(self) -> dict[str, Any]:
        """What the evaluation JSON records about this embedding."""
        return {"name": self.name}


EmbeddingFactory = Callable[[Reference, EmbedSettings], Embedding]


@dataclass(frozen=True)
class EmbeddingEntry:
    """A registered embedding: its factory, and whether it gives class probabilities."""

    name: str
    factory: EmbeddingFactory
    classifies: bool


EMBEDDINGS: Registry[EmbeddingEntry] = Registry("embedding")


def register_embedding(
    name: str, classifies: bool = False
) -> Callable[[EmbeddingFactory], EmbeddingFactory]:
    """Decorator registering a factory ``(reference, settings) -> Embedding`` as ``name``.

    Args:
        name: the name of ``--embedding``.
        classifies: its embeddings give class probabilities (``Embedded.probs``).
    """

    def add(factory: EmbeddingFactory) -> EmbeddingFactory:
        EMBEDDINGS.add(name, EmbeddingEntry(name, factory, classifies))
        return factory

    return add


def make_embedding(name: str, reference: Reference, settings: EmbedSettings) -> Embedding:
    """The embedding ``name`` fitted on ``reference`` (unknown names: UsageError)."""
    return EMBEDDINGS.get(name).factory(reference, settings)


def need_images(reference: Reference, embedding: str) -> None:
    """Embeddings of networks on images cannot take point sets."""
    if reference.test.kind != "image":
        raise UsageError(
            f"--embedding {embedding} needs images but {reference.name} holds points; "
            "use --embedding pixels (the coordinates themselves)"
        )
