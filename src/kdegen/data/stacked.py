"""Numbers of three digits side by side, 1,000 classes 000..999.

``mnist1000`` puts three mnist5k digits side by side (28 x 84); ``digits1000`` does the
same with scikit-learn's 8 x 8 digits (8 x 24), a version small enough for a CPU to train
a GAN on in a minute. Each of the three positions independently draws a digit (uniformly,
or with the ``bias`` weights w(0) = w(1) = 1, w(d) = 1 + 19 (d - 1) / 8, so a 9 is 20 times
as likely as a 1), optionally restricted to ``digits``, then a random image of that digit
from the same split of the source. The label is the three-digit number 100a + 10b + c.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from kdegen.config import Config, option
from kdegen.data.base import ImageData, Request, dataset, parse_digits
from kdegen.data.embedded import Arrays, digits_arrays, mnist5k_arrays

POSITIONS = 3
DEFAULT_SIZES = {"train": 10_000, "test": 2_000}
SPLIT_STREAMS = {"train": 0, "test": 1}


def digit_weights(digits: tuple[int, ...], bias: bool) -> np.ndarray:
    """Sampling probabilities of ``digits`` (uniform, or rising linearly when ``bias``).

    Args:
        digits: the allowed digits.
        bias: use w(d) = 1 + 19 (d - 1) / 8 for d >= 1 and w(0) = 1.

    Returns:
        Probabilities aligned with ``digits``, summing to one.
    """
    d = np.asarray(digits, dtype=np.float64)
    weights = 1 + 19 * np.maximum(d - 1, 0) / 8 if bias else np.ones_like(d)
    return weights / weights.sum()


def sample_digits(
    rng: np.random.Generator, n: int, digits: tuple[int, ...], bias: bool
) -> np.ndarray:
    """Draw an ``n`` x 3 array of digits, each position independently."""
    return rng.choice(np.asarray(digits), size=(n, POSITIONS), p=digit_weights(digits, bias))


def stack_digits(
    rng: np.random.Generator, chosen: np.ndarray, images: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Put a random image of each chosen digit side by side.

    Args:
        rng: the random generator picking images within a class.
        chosen: n x 3 digits.
        images: the source split, N x 1 x H x W.
        labels: the source labels, N.

    Returns:
        n x 1 x H x 3W float32 images.
    """
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=10)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    offsets = np.floor(rng.random(chosen.shape) * counts[chosen]).astype(np.int64)
    picks = order[starts[chosen] + offsets]
    return np.concatenate([images[picks[:, k]] for k in range(POSITIONS)], axis=-1)


@dataclass(frozen=True)
class StackedOptions(Config):
    """Options of mnist1000 and digits1000 (``mnist1000:bias=1,digits=6789``)."""

    bias: bool = option(False, "false", metavar="bool")
    digits: tuple[int, ...] = option(
        tuple(range(10)), "0123456789", parse=parse_digits, metavar="digits"
    )
    n: int | None = option(None, "10000 train / 2000 test", ge=1, metavar="int")
    seed: int = option(0, ge=0, metavar="int")


def _stacked(request: Request, source: Arrays) -> ImageData:
    """The split the request names, built from ``source``'s split of the same name."""
    opts = request.options
    images, labels = source[request.split]
    n = opts["n"] or DEFAULT_SIZES[request.split]
    rng = np.random.default_rng([opts["seed"], SPLIT_STREAMS[request.split]])
    chosen = sample_digits(rng, n, opts["digits"], opts["bias"])
    stacked = stack_digits(rng, chosen, images, labels)
    numbers = chosen @ np.array([100, 10, 1])
    return ImageData(
        torch.from_numpy(stacked),
        torch.from_numpy(numbers.astype(np.int64)),
        request.name,
        num_classes=1000,
    )


def _register(name: str, side: int, arrays: Callable[[], Arrays], description: str) -> None:
    """Register the stacked dataset ``name`` of three ``side`` x ``side`` digits."""

    def load_stacked(request: Request) -> ImageData:
        return _stacked(request, arrays())

    dataset(
        name,
        description=description,
        sizes=(DEFAULT_SIZES["train"], DEFAULT_SIZES["test"]),
        shape=(1, side, side * POSITIONS),
        num_classes=1000,
        options=StackedOptions,
    )(load_stacked)


_register(
    "mnist1000",
    28,
    mnist5k_arrays,
    "three mnist5k digits side by side (28x84), 1000 classes; options bias, digits",
)
_register(
    "digits1000",
    8,
    digits_arrays,
    "three 8x8 scikit-learn digits side by side (8x24), 1000 classes; as mnist1000",
)
