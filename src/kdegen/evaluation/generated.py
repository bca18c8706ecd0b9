"""What an evaluation compares: the generated set and the reference data.

The generated set is drawn from a :class:`Sampler` (a model: ``--n`` samples) or read
from an image folder or an ``.npz`` / ``.npy`` file. Opening a run directory as a sampler
belongs to the layer above (:func:`kdegen.runs.sampler`). The reference is a dataset
name (its test split; its train split where a metric or an embedding needs one) or files
(then ``--train-data`` may name the training data). Everything is checked before any
network is trained or anything is written: one-line :class:`kdegen.UsageError`\\ s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from kdegen.data import DATASETS, ImageData, load
from kdegen.errors import UsageError
from kdegen.evaluation.embed import Reference

DEFAULT_N = 5000  # samples drawn from a run: this many, or the reference's size if smaller


@dataclass(frozen=True)
class Sampler:
    """A model to evaluate: ``draw(n, generator)`` returns n samples, ``source`` names it.

    Attributes:
        draw: n samples (N, C, H, W) in [-1, 1] or points (N, D), drawn with the generator.
        source: what the samples come from (a run directory's path), for the record.
        step: the training step of the model, if known.
    """

    draw: Callable[[int, torch.Generator], Tensor]
    source: str
    step: int | None = None


@dataclass(frozen=True)
class GeneratedSet:
    """Samples to evaluate (N, C, H, W) in [-1, 1] or points (N, D), and where they came from.

    Attributes:
        samples: the samples, on the CPU, in a seeded random order.
        source: the path given.
        kind: "run" (drawn from a sampler) or "files".
        step: the training step of the checkpoint sampled (runs only).
    """

    samples: Tensor
    source: str
    kind: str
    step: int | None = None


def is_dataset_name(spec: str) -> bool:
    """Whether ``spec`` names a registered dataset (with or without options)."""
    return spec.partition(":")[0].strip() in DATASETS


def load_reference(spec: str, train_data: str | None = None) -> Reference:
    """The reference: a dataset's test split (and train split), or files.

    Args:
        spec: a dataset name (``mnist5k``, ``mnist1000:bias=1``) or an image folder / file.
        train_data: training data to use instead of the dataset's train split (a dataset
            name, whose train split is taken, or files); needed for train-side metrics
            of a file reference.
    """
    test = load(spec, "test")
    train: ImageData | None = None
    if train_data is not None:
        train = load(train_data, "train")
    elif is_dataset_name(spec):
        train = load(spec, "train")
    if train is not None and train.shape != test.shape:
        raise UsageError(
            f"--train-data {train.name} holds samples of shape {_shape(train.shape)} but the "
            f"reference {spec} of {_shape(test.shape)}; give training data like the reference"
        )
    return Reference(spec, test, train)


def default_n(reference: Reference) -> int:
    """Samples drawn from a run when ``--n`` is not given: 5,000, or fewer for small references."""
    return min(DEFAULT_N, len(reference.test))


def load_generated(
    source: str | Sampler, n: int | None, reference: Reference, seed: int = 0
) -> GeneratedSet:
    """Draw ``n`` samples from a sampler, or read a folder / file (a random ``n`` of it if given).

    The samples come back shuffled with ``seed`` (scores that cut the set into
    consecutive parts, such as the Inception Score, then see no class-sorted order).
    """
    if n is not None and n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    rng = torch.Generator().manual_seed(seed)
    if isinstance(source, Sampler):
        with torch.no_grad():
            samples = source.draw(n or default_n(reference), rng).cpu()
        generated = GeneratedSet(samples.float(), source.source, "run", source.step)
    elif (Path(source) / "config.json").is_file():
        raise UsageError(
            f"{source} is a run directory: evaluate it with `kdegen evaluate` or pass "
            "kdegen.runs.sampler(path)"
        )
    elif Path(source).exists():
        data = load(source)
        order = torch.randperm(len(data), generator=rng)[: n or len(data)]
        generated = GeneratedSet(data.images[order], source, "files")
    else:
        raise UsageError(
            f"no such run directory or file: {source}; give a run directory, an image "
            "folder or an .npz / .npy file"
        )
    check_compatible(generated, reference)
    return generated


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def check_compatible(generated: GeneratedSet, reference: Reference) -> None:
    """The generated samples must have the reference's shape, and be finite."""
    got, want = tuple(generated.samples.shape[1:]), reference.test.shape
    if got != want and len(got) == len(want) == 1:
        raise UsageError(
            f"feature dimensions differ: {generated.source} holds points of dimension "
            f"{got[0]}, the reference {reference.name} of dimension {want[0]}; compare "
            "points of one space"
        )
    if got != want:
        raise UsageError(
            f"{generated.source} holds samples of shape {_shape(got)} but the reference "
            f"{reference.name} has samples of shape {_shape(want)}; evaluate against a "
            "reference of the same size (or resize the images)"
        )
    if not bool(torch.isfinite(generated.samples).all()):
        raise UsageError(f"{generated.source} produced NaN or infinite samples; check the run")
