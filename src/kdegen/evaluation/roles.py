"""Filling the metrics' input roles from the generated set, the reference and the embedding.

Each role of :data:`kdegen.evaluation.metrics.ROLES` has a :class:`RoleSource` here,
registered by name: ``missing`` says (cheaply, before any network is trained) why the
role cannot be filled for these data, ``get`` computes it. :class:`Sources` embeds each
image set at most once, on demand, so only what the chosen metrics need is computed:

- ``generated`` / ``test`` / ``train``: features of the chosen embedding;
- ``*_probs``: class probabilities of that embedding when it classifies (classifier,
  inception), else of the classifier trained on the reference;
- ``*_pixels``: the images themselves; ``mode_centres`` / ``mode_std``: the mixture of a
  ring8 / grid25 reference; ``generated_digits``: the per-position digit probabilities
  of the mnist1000 classifier.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kdegen.errors import UsageError
from kdegen.evaluation.embed import (
    EMBEDDINGS,
    ClassifierPlan,
    Embedded,
    Embedding,
    EmbedSettings,
    Reference,
    classifier_embedding,
    make_embedding,
    plan_classifier,
)
from kdegen.registry import Registry

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

    def __init__(self, generated: Tensor, reference: Reference, embedding: str,
                 settings: EmbedSettings, max_train: int | None = None) -> None:  # fmt: skip
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


@dataclass(frozen=True)
class RoleSource:
    """How to fill one input role: why it cannot be (or None), and how it is computed."""

    missing: Callable[[Sources], str | None]
    get: Callable[[Sources], Any]
    network: str | None  # the network ``get`` runs (see Sources.network), if any


ROLE_SOURCES: Registry[RoleSource] = Registry("input role")


def _always(sources: Sources) -> str | None:
    return None


def role(
    name: str, missing: Callable[[Sources], str | None] = _always, network: str | None = None
) -> Callable[[Callable[[Sources], Any]], Callable[[Sources], Any]]:
    """Decorator registering ``get`` as the source of role ``name``."""

    def add(get: Callable[[Sources], Any]) -> Callable[[Sources], Any]:
        ROLE_SOURCES.add(name, RoleSource(missing, get, network))
        return get

    return add


def _no_train(sources: Sources) -> str | None:
    if sources.reference.train is None:
        return f"the reference {sources.reference.name} has no training data (--train-data)"
    return None


def _plan(sources: Sources) -> ClassifierPlan | str:
    if sources.reference.test.kind != "image":
        return (
            f"class probabilities need an image classifier; {sources.reference.name} holds points"
        )
    try:
        return plan_classifier(sources.reference)
    except UsageError as e:
        return str(e)


def _no_probabilities(sources: Sources) -> str | None:
    if sources.gives_probabilities():
        return None
    plan = _plan(sources)
    return plan if isinstance(plan, str) else None


def _no_train_probabilities(sources: Sources) -> str | None:
    return _no_train(sources) or _no_probabilities(sources)


def _no_digits(sources: Sources) -> str | None:
    plan = _plan(sources)
    if isinstance(plan, str):
        return plan
    if plan.tiles == 1:
        return "digit counts are for mnist1000 and digits1000 (digits side by side)"
    return None


def _no_mixture(sources: Sources) -> str | None:
    if sources.reference.test.centres is None or sources.reference.test.std is None:
        return "mode counts need a Gaussian-mixture reference (ring8, grid25)"
    return None


@role("generated", network="features")
def _generated(s: Sources) -> Tensor:
    return s.embedded("generated").features


@role("test", network="features")
def _test(s: Sources) -> Tensor:
    return s.embedded("test").features


@role("train", _no_train, "features")
def _train(s: Sources) -> Tensor:
    return s.embedded("train").features


@role("generated_probs", _no_probabilities, "labels")
def _generated_probs(s: Sources) -> Tensor | None:
    return s.embedded("generated", "labels").probs


@role("train_probs", _no_train_probabilities, "labels")
def _train_probs(s: Sources) -> Tensor | None:
    return s.embedded("train", "labels").probs


@role("generated_pixels")
def _generated_pixels(s: Sources) -> Tensor:
    return s.images("generated")


@role("train_pixels", _no_train)
def _train_pixels(s: Sources) -> Tensor:
    return s.images("train")


@role("mode_centres", _no_mixture)
def _mode_centres(s: Sources) -> Tensor | None:
    return s.reference.test.centres


@role("mode_std", _no_mixture)
def _mode_std(s: Sources) -> float | None:
    return s.reference.test.std


@role("generated_digits", _no_digits, "digits")
def _generated_digits(s: Sources) -> Tensor | None:
    return s.embedded("generated", "digits").digits


def prepare(sources: Sources, roles: set[str]) -> None:
    """Make (train, load) every network the roles need now, so that their errors come
    before any metric runs."""
    for name in sorted(roles):
        network = ROLE_SOURCES.get(name).network
        if network is not None:
            sources.network(network)


def unfilled_roles() -> list[str]:
    """Roles of the metric registry with no source here (should be none)."""
    from kdegen.evaluation.metrics import ROLES

    return [r for r in ROLES if r not in ROLE_SOURCES]
