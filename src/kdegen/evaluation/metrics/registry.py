"""The metric registry: each metric by name, with the inputs it needs.

A :class:`Metric` names the *roles* of the arrays it reads (``needs``) and holds a thin
adapter that calls the public metric function with its default options and returns
named numbers, e.g. ``{"nats": 1.2, "bits": 1.7, ...}``; the ``kdegen evaluate`` command
collects the arrays by role, runs the metrics asked for and nests each result under
the metric's name. Each metric declares the least number of samples per set at which
it means something (a :class:`Minimum`, which its function enforces with these
defaults); ``kdegen evaluate`` skips it below that. Modules register their metrics
with :func:`register_metric`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from kdegen.errors import UsageError
from kdegen.evaluation.metrics.inputs import Minimum
from kdegen.registry import Registry

ROLES: dict[str, str] = {
    "generated": "features of generated samples (n, d)",
    "test": "features of held-out real samples (n, d), the reference distribution",
    "train": "features of the training samples (n, d)",
    "generated_probs": "classifier class probabilities of generated samples (n, classes)",
    "train_probs": "classifier class probabilities of training samples (n, classes)",
    "generated_pixels": "generated images (n, C, H, W) or flattened (n, C*H*W)",
    "train_pixels": "training images in the same layout and value range",
    "mode_centres": "centres of a Gaussian mixture's modes (k, d)",
    "mode_std": "the mixture components' common standard deviation (a number)",
    "generated_digits": "mnist1000 digit predictions: (n, 3) digits or (n, 3, 10) probs",
}

Inputs: TypeAlias = Mapping[str, Any]
Adapter: TypeAlias = Callable[[Inputs], dict[str, float]]


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: registry name.
        function: adapter from {role: array} to named numbers.
        needs: the roles (keys of :data:`ROLES`) the adapter reads.
        description: one line for listings.
        minimum: the least number of samples in each set of samples it reads (the
            generated, test or train set behind each role), and why.
    """

    name: str
    function: Adapter
    needs: tuple[str, ...]
    description: str
    minimum: Minimum

    def __call__(self, inputs: Inputs) -> dict[str, float]:
        """Run the metric on ``inputs`` (role -> array); missing roles raise UsageError."""
        missing = [role for role in self.needs if inputs.get(role) is None]
        if missing:
            raise UsageError(
                f"metric {self.name!r} needs {', '.join(missing)}; provide them or drop it"
            )
        return self.function(inputs)


METRICS: Registry[Metric] = Registry("metric")


def register_metric(
    name: str, needs: tuple[str, ...], description: str, minimum: Minimum
) -> Callable[[Adapter], Adapter]:
    """Decorator registering an adapter as metric ``name`` (duplicates are rejected)."""
    unknown = [role for role in needs if role not in ROLES]
    if unknown:
        raise RuntimeError(f"metric {name!r} needs unknown roles {unknown}")

    def add(function: Adapter) -> Adapter:
        METRICS.add(name, Metric(name, function, needs, description, minimum))
        return function

    return add
