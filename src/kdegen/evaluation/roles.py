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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from kdegen.errors import UsageError
from kdegen.evaluation.embed import (
    ClassifierPlan,
    plan_classifier,
)
from kdegen.evaluation.sources import Sources
from kdegen.registry import Registry


@dataclass(frozen=True)
class RoleSource:
    """How to fill one input role: why it cannot be (or None), and how it is computed."""

    missing: Callable[[Sources], str | None]
    get: Callable[[Sources], Any]
    network: str | None  # the network ``get`` runs (see Sources.network), if any
    of: str | None  # the set of samples whose rows it holds (generated, test, train), if any


ROLE_SOURCES: Registry[RoleSource] = Registry("input role")


def _always(sources: Sources) -> str | None:
    return None


def role(
    name: str,
    missing: Callable[[Sources], str | None] = _always,
    network: str | None = None,
    of: str | None = None,
) -> Callable[[Callable[[Sources], Any]], Callable[[Sources], Any]]:
    """Decorator registering ``get`` as the source of role ``name`` (one row per sample
    of set ``of``, if given)."""

    def add(get: Callable[[Sources], Any]) -> Callable[[Sources], Any]:
        ROLE_SOURCES.add(name, RoleSource(missing, get, network, of))
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


@role("generated", network="features", of="generated")
def _generated(s: Sources) -> Tensor:
    return s.embedded("generated").features


@role("test", network="features", of="test")
def _test(s: Sources) -> Tensor:
    return s.embedded("test").features


@role("train", _no_train, "features", "train")
def _train(s: Sources) -> Tensor:
    return s.embedded("train").features


@role("generated_probs", _no_probabilities, "labels", "generated")
def _generated_probs(s: Sources) -> Tensor | None:
    return s.embedded("generated", "labels").probs


@role("train_probs", _no_train_probabilities, "labels", "train")
def _train_probs(s: Sources) -> Tensor | None:
    return s.embedded("train", "labels").probs


@role("generated_pixels", of="generated")
def _generated_pixels(s: Sources) -> Tensor:
    return s.images("generated")


@role("train_pixels", _no_train, of="train")
def _train_pixels(s: Sources) -> Tensor:
    return s.images("train")


@role("mode_centres", _no_mixture)
def _mode_centres(s: Sources) -> Tensor | None:
    return s.reference.test.centres


@role("mode_std", _no_mixture)
def _mode_std(s: Sources) -> float | None:
    return s.reference.test.std


@role("generated_digits", _no_digits, "digits", "generated")
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
