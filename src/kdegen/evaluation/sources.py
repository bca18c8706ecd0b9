"""The sets an evaluation compares and their embeddings, each computed once on demand.

:class:`Sources` holds the generated samples, the reference (test and train splits) and
the embedding settings; the roles of :mod:`kdegen.evaluation.roles` ask it for features,
class probabilities or pixels, and each image set is embedded at most once.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from kdegen.errors import UsageError
from kdegen.evaluation.embed import (
    EMBEDDINGS,
    Embedded,
    Embedding,
    EmbedSettings,
    Reference,
    classifier_embedding,
    make_embedding,
)

SETS = ("generated", "test", "train")


class Sources:
    """The sets compared and their embeddings, each computed once when first asked for.

    Args:
        generated: generated samples (N, ...).
        reference: test (and train) data.
        embedding: name of the feature embedding.
        settings: how to embed.
        max_train: train-side metrics see a seeded random subset of at most this many
            training samples (the embedding is still fitted on all of them).
    """

    def __init__(
        self,
        generated: Tensor,
        reference: Reference,
        embedding: str,
        settings: EmbedSettings,
        max_train: int | None = None,
    ) -> None:
        self.generated, self.reference = generated, reference
        self.train = None if reference.train is None else reference.train.images
        if self.train is not None and max_train is not None and len(self.train) > max_train:
            keep = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(0))
            self.train = self.train[keep[:max_train]]
        self.embedding_name, self.settings = embedding, settings
        self._embedding: Embedding | None = None
        self._classifier: Embedding | None = None
        self._done: dict[tuple[str, int], Embedded] = {}  # (set, id of the network)

    def with_generated(self, generated: Tensor) -> Sources:
        """These sources with other generated samples: the embeddings and the embedded
        reference sets are shared, the generated set is embedded anew."""
        other = copy.copy(self)
        other.generated = generated
        other._done = {k: v for k, v in self._done.items() if k[0] != "generated"}
        return other

    def without_generated(self) -> Sources:
        """These sources keeping only what does not depend on the generated samples."""
        return self.with_generated(self.generated[:0])

    def images(self, which: str) -> Tensor:
        """The samples of set ``which`` (generated, test or train)."""
        sets = {
            "generated": self.generated,
            "test": self.reference.test.images,
            "train": self.train,
        }
        found = sets[which]
        if found is None:
            raise UsageError(f"{self.reference.name} has no training data; pass --train-data")
        return found

    def size(self, which: str) -> int:
        """Samples in set ``which`` (train: after the ``max_train`` subset)."""
        return len(self.images(which))

    def embedding(self) -> Embedding:
        """The feature embedding (made, and fitted or trained, on first use)."""
        if self._embedding is None:
            self._embedding = make_embedding(self.embedding_name, self.reference, self.settings)
        return self._embedding

    def classifier(self) -> Embedding:
        """The classifier of the reference (the feature embedding itself when it is one)."""
        if self._classifier is None:
            if self.embedding_name == "classifier":
                self._classifier = self.embedding()
            else:
                self._classifier = classifier_embedding(self.reference, self.settings)
        return self._classifier

    def labeller(self) -> Embedding:
        """Where class probabilities come from: the embedding if it classifies, else the
        classifier."""
        return self.embedding() if self.gives_probabilities() else self.classifier()

    def gives_probabilities(self) -> bool:
        """Whether the feature embedding gives class probabilities itself."""
        return EMBEDDINGS.get(self.embedding_name).classifies

    def network(self, by: str) -> Embedding:
        """The network behind ``by``: "features", "labels" or "digits" (made on first use)."""
        nets = {"features": self.embedding, "labels": self.labeller, "digits": self.classifier}
        return nets[by]()

    def embedded(self, which: str, by: str = "features") -> Embedded:
        """Set ``which`` through the embedding (``by="features"``), the labeller
        (``"labels"``) or the classifier (``"digits"``); each network sees a set once."""
        net = self.network(by)
        key = (which, id(net))
        if key not in self._done:
            out = net.embed(self.images(which), self.settings.batch_size)
            for name, t in (("features", out.features), ("probabilities", out.probs)):
                if t is not None and not bool(torch.isfinite(t).all()):
                    raise UsageError(
                        f"the {net.name} embedding gave NaN or infinite {name} for the "
                        f"{which} set; check the samples, or try --embedding pixels"
                    )
            self._done[key] = out
        return self._done[key]

    def describe(self) -> dict[str, Any]:
        """The embedding as the evaluation records it (details once it has been made)."""
        about: dict[str, Any] = {"name": self.embedding_name}
        if self._embedding is not None:
            about.update(self._embedding.describe())
        if self._embedding is not None and ("generated", id(self._embedding)) in self._done:
            about["dim"] = int(self._done["generated", id(self._embedding)].features.shape[1])
        return about
