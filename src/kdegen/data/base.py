"""Core data types: the ImageData container, dataset declarations and option parsing.

Every named dataset is a :class:`Dataset` registered in :data:`DATASETS` with the
:func:`dataset` decorator. A dataset declares its options as :class:`Option` records;
:func:`resolve_options` turns spec-string text (``name:key=value,...``) or keyword
arguments into typed values, so no loader parses strings itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from kdegen.config import Config, FieldError, from_text
from kdegen.errors import UsageError
from kdegen.registry import Registry

SPLITS = ("train", "test")
KINDS = ("image", "points")


def one_line(text: object) -> str:
    """Collapse any whitespace (newlines included) in ``str(text)`` to single spaces."""
    return " ".join(str(text).split())


@dataclass(frozen=True, eq=False)
class ImageData:
    """A loaded data set: images (N x C x H x W in [-1, 1]) or points (N x D).

    Construction checks that the values are finite and that labels fit the samples.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    name: str
    kind: str = "image"
    num_classes: int | None = None
    centres: torch.Tensor | None = None
    std: float | None = None

    def __post_init__(self) -> None:
        _check_images(self.images, self.kind, self.name)
        if self.labels is not None:
            _check_labels(self.labels, len(self.images), self.name)

    @property
    def shape(self) -> tuple[int, ...]:
        """The per-sample shape, e.g. ``(1, 28, 28)`` or ``(2,)``."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _check_images(images: torch.Tensor, kind: str, name: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if not isinstance(images, torch.Tensor) or images.dtype != torch.float32:
        raise TypeError(f"{name}: images must be a float32 tensor")
    want = 4 if kind == "image" else 2
    if images.dim() != want:
        raise UsageError(
            f"{name}: expected {kind} data with {want} dimensions, got shape "
            f"{tuple(images.shape)}; give images as N x C x H x W or points as N x D"
        )
    if images.shape[0] == 0:
        raise UsageError(f"{name} holds no samples; give at least one image or point")
    if not bool(torch.isfinite(images).all()):
        raise UsageError(
            f"{name} contains NaN or infinite values; clean the data "
            "(drop or replace those samples) and try again"
        )


def _check_labels(labels: torch.Tensor, n: int, name: str) -> None:
    if labels.dtype != torch.long or labels.dim() != 1:
        raise UsageError(f"{name}: labels must be a 1-D integer array, got {labels.dtype}")
    if len(labels) != n:
        raise UsageError(
            f"{name} has {len(labels)} labels for {n} samples; give exactly one label per sample"
        )
    if bool((labels < 0).any()):
        raise UsageError(f"{name} has negative labels; use class indices 0, 1, 2, ...")


def uint8_to_unit(array: np.ndarray) -> torch.Tensor:
    """Map uint8 values 0..255 to a float32 tensor in [-1, 1] (x / 127.5 - 1)."""
    return torch.from_numpy(np.asarray(array, dtype=np.float32) / np.float32(127.5) - 1)


# --------------------------------------------------------------------------- options


def parse_digits(value: object) -> tuple[int, ...]:
    """Digits 0-9 given as ``6789``, ``6+7+8+9`` or an iterable, sorted and deduplicated."""
    if isinstance(value, str):
        text = value.strip()
        parts: Iterable[object] = text.split("+") if "+" in text else list(text)
    elif isinstance(value, Iterable):
        parts = value
    else:
        raise ValueError("expected digits such as 6789 or 6+7+8+9")
    digits: set[int] = set()
    for part in parts:
        text = str(part).strip()
        if not (len(text) == 1 and text.isdigit()):
            raise ValueError("expected digits 0-9 such as 6789 or 6+7+8+9")
        digits.add(int(text))
    if not digits:
        raise ValueError("expected at least one digit")
    return tuple(sorted(digits))


def describe_options(options: type[Config]) -> tuple[str, ...]:
    """One phrase per option of a dataset's options class: name, kind and default."""
    out = []
    for f in fields(options):  # type: ignore[arg-type]
        kind = f.metadata.get("metavar") or "value"
        shown = f.metadata.get("help") or str(f.default).lower()
        out.append(f"{f.name} ({kind}, default {shown})")
    return tuple(out)


@dataclass(frozen=True)
class Request:
    """What a loader is asked for: the spec string, the split and typed options."""

    name: str
    split: str
    options: Mapping[str, Any] = field(default_factory=dict)


Loader = Callable[[Request], ImageData]


@dataclass(frozen=True)
class Dataset:
    """A named dataset: its loader plus static facts shown by ``kdegen datasets``."""

    name: str
    description: str
    loader: Loader
    sizes: tuple[int, int]
    shape: tuple[int, ...]
    kind: str = "image"
    num_classes: int | None = None
    options: type[Config] | None = None
    downloads: bool = False

    def accepted(self) -> str:
        """One phrase listing the options, for error messages."""
        if self.options is None:
            return f"dataset {self.name} takes no options"
        return f"{self.name} accepts: " + ", ".join(describe_options(self.options))


DATASETS: Registry[Dataset] = Registry("dataset")


def dataset(
    name: str,
    *,
    description: str,
    sizes: tuple[int, int],
    shape: tuple[int, ...],
    kind: str = "image",
    num_classes: int | None = None,
    options: type[Config] | None = None,
    downloads: bool = False,
) -> Callable[[Loader], Loader]:
    """Decorator registering a loader function as the dataset ``name`` in :data:`DATASETS`.

    Args:
        name: the dataset name users type.
        description: one line for ``kdegen datasets``.
        sizes: default (train, test) sizes.
        shape: the per-sample shape.
        kind: "image" or "points".
        num_classes: number of label classes, or None without labels.
        options: the config class of the options the dataset accepts (``name:key=value``).
        downloads: whether loading downloads the data.

    Returns:
        The decorator; it returns the loader unchanged.
    """

    def add(loader: Loader) -> Loader:
        entry = Dataset(
            name, description, loader, sizes, shape, kind, num_classes, options, downloads
        )
        DATASETS.add(name, entry)
        return loader

    return add


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name:key=value,key=value`` into the name and the raw option texts.

    Args:
        spec: the dataset spec string.

    Returns:
        The name and a dict of option name -> text value.
    """
    name, _, rest = spec.partition(":")
    raw: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(
                f"bad option {item!r} in {spec!r}; write options as name:key=value,key=value"
            )
        if key in raw:
            raise UsageError(f"option {key} is given twice in {spec!r}; give it once")
        raw[key] = value.strip()
    return name.strip(), raw


def resolve_options(entry: Dataset, given: Mapping[str, object]) -> dict[str, Any]:
    """Check and convert the options given for ``entry``, filling in defaults.

    Args:
        entry: the dataset.
        given: option name -> text (from a spec string) or Python value (keyword argument).

    Returns:
        A dict with a typed value for every option the dataset declares.
    """
    declared = [] if entry.options is None else [f.name for f in fields(entry.options)]  # type: ignore[arg-type]
    unknown = sorted(set(given) - set(declared))
    if unknown:
        what = "option" if len(unknown) == 1 else "options"
        raise UsageError(
            f"unknown {what} {', '.join(unknown)} for {entry.name}; {entry.accepted()}"
        )
    if entry.options is None:
        return {}
    try:
        values = from_text(entry.options, given)
    except FieldError as err:
        raise UsageError(
            f"bad value {given[err.name]!r} for option {err.name} of {entry.name}: "
            f"{err.detail}; {entry.accepted()}"
        ) from None
    return {name: getattr(values, name) for name in declared}


def check_split(split: str) -> str:
    """Return ``split`` if it is "train" or "test", else raise UsageError."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    return split
