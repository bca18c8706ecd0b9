"""What a trained method can do beyond training and sampling, as Protocols checked one way.

A command that needs a capability asks :func:`capable`, which returns the method typed
as that capability or refuses with one line naming the run's method and what to use
instead. A method has a capability by defining its methods; nothing is registered.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.priors import Prior


@runtime_checkable
class HasGenerator(Protocol):
    """A network mapping latent codes (B, k) to data, and the prior that drives it
    (reversal, traversals, KDE resampling, the latent analyses)."""

    def generator(self) -> nn.Module: ...

    def prior_for_sampling(self) -> Prior: ...


@runtime_checkable
class HasEncoder(Protocol):
    """An encoder from data (N, *shape) to codes (N, k) (autoencoders, BiGAN)."""

    def encode(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class Autoencodes(HasGenerator, HasEncoder, Protocol):
    """An encoder and the generator (decoder) that maps its codes back to data."""


@runtime_checkable
class ReconstructsLevels(Protocol):
    """Reconstructions of data through each level of a latent hierarchy (HALI), by name."""

    def level_reconstructions(self, x: Tensor) -> dict[str, Tensor]: ...


@runtime_checkable
class KeepsCodes(Protocol):
    """Codes kept for training examples (KDE-GAN's code bank)."""

    def latent_codes(self) -> Tensor: ...


@runtime_checkable
class Classifies(Protocol):
    """A classifier: ``classify(x)`` gives class logits (N, K) in eval mode."""

    def classify(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class SamplesClasses(Protocol):
    """A conditional generator: ``sample_class(n, label, generator)`` draws n of one class."""

    def sample_class(
        self, n: int, label: int, generator: torch.Generator | None = None
    ) -> Tensor: ...


@runtime_checkable
class TransformsImages(Protocol):
    """Turns images into images of a target class (ModNet)."""

    classes: int

    def transform(self, x: Tensor, target: Tensor, batch_size: int = 500) -> Tensor: ...

    def classify(self, x: Tensor) -> Tensor: ...


def capable(method: object, capability: Any, name: str, missing: str) -> Any:
    """``method`` (registered as ``name``) if it has ``capability``, or a UsageError:
    ``missing`` says what it lacks and what to do instead (e.g. "no encoder; use `kdegen
    reverse`"). Annotate the result with the capability (mypy does not let a Protocol
    class stand for ``type[T]``)."""
    if not isinstance(method, capability):
        raise UsageError(f"a {name} run has {missing}")
    return method
