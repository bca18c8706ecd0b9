"""The method contract: a trainable system the generic Trainer can drive.

A method owns its networks and optimizers and exposes ``train_step(batch)``,
``sample(n)``, ``state_dict()`` and ``load_state_dict()``. The Trainer knows nothing
about GANs or autoencoders; a GAN's step has explicit discriminator and generator
phases inside ``train_step``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor, nn

from kdegen.config import Config
from kdegen.errors import UsageError
from kdegen.registry import Registry


@dataclass(frozen=True)
class DataSpec:
    """What a method needs to know about its data to build its networks.

    Attributes:
        shape: one example's shape, (C, H, W) for images or (D,) for points.
        num_classes: number of label classes, or None when unlabelled.
        size: number of training examples.
    """

    shape: tuple[int, ...]
    num_classes: int | None = None
    size: int = 0

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "num_classes": self.num_classes, "size": self.size}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> DataSpec:
        return DataSpec(tuple(int(s) for s in d["shape"]), d.get("num_classes"), int(d["size"]))


@dataclass(frozen=True)
class Batch:
    """A training minibatch on the method's device.

    Attributes:
        x: examples (B, *shape).
        y: labels (B,) or None.
        index: the examples' positions in the training set (B,), or None; methods that
            keep per-example state (the code bank of kdegan) look it up by these.
    """

    x: Tensor
    y: Tensor | None = None
    index: Tensor | None = None

    def chunk(self, n: int) -> list[Batch]:
        """Split into ``n`` equal consecutive batches (e.g. one per critic iteration)."""
        xs = self.x.chunk(n)
        ys = self.y.chunk(n) if self.y is not None else [None] * n
        idx = self.index.chunk(n) if self.index is not None else [None] * n
        return [Batch(*parts) for parts in zip(xs, ys, idx, strict=True)]


Losses = Mapping[str, "Tensor | float"]


Self = TypeVar("Self", bound="MethodConfig")


class MethodConfig(Config):
    """Base of method configs: ``resolved`` fills automatic choices for the data."""

    def resolved(self: Self, spec: DataSpec) -> Self:
        """The config with every automatic value made explicit (saved as config.json)."""
        return self


C = TypeVar("C", bound=MethodConfig)


class Method(ABC, Generic[C]):
    """Base class of trainable systems.

    Subclasses set ``Config`` (their frozen config dataclass), build networks and
    optimizers in ``__init__`` and list them in ``networks()`` / ``optimizers()``;
    the default ``state_dict`` saves exactly those.

    Args:
        config: the method's config (an instance of ``Config``).
        spec: the data's shape and label count.
        device: where networks live and batches arrive.
    """

    Config: ClassVar[type]
    # named bundles of option values (method and trainer fields), applied before flags
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    batches_per_step: int = 1  # minibatches consumed by one train_step (e.g. n_critic)

    def __init__(self, config: C, spec: DataSpec, device: torch.device) -> None:
        self.config: C = config
        self.spec, self.device = spec, device

    @abstractmethod
    def train_step(self, batch: Batch) -> Losses:
        """One training iteration on ``batch``; returns named losses (floats or 0-dim tensors,
        read by the trainer only when it logs so a GPU step never waits)."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples (n, *shape) in eval mode; ``generator`` fixes the noise."""

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """The method's networks by name."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The method's optimizers by name."""

    def bind_data(self, images: Tensor, labels: Tensor | None) -> None:
        """Called once by the trainer with the whole training set (on the method's device),
        for methods that keep statistics over it (e.g. the GEN's lagging code set)."""

    def set_progress(self, step: int, total: int) -> None:
        """Called before each step with the step index and the run's total (schedules)."""

    def extra_state(self) -> dict[str, Any]:
        """State beyond networks and optimizers (tensors and plain data only)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``extra_state`` returned."""

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers and extra state: tensors and plain data only."""
        return {
            "networks": {k: m.state_dict() for k, m in self.networks().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from ``state_dict()``; a mismatch (other method/config) is a UsageError."""
        try:
            for k, m in self.networks().items():
                m.load_state_dict(state["networks"][k])
            for k, o in self.optimizers().items():
                o.load_state_dict(state["optimizers"][k])
            self.load_extra_state(state.get("extra", {}))
        except (KeyError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(
                f"checkpoint does not fit this {type(self).__name__} configuration ({first}); "
                "was it written with other options?"
            ) from None


METHODS: Registry[type[Method]] = Registry("method")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
