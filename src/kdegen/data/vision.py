"""Downloadable datasets through torchvision (the optional extra ``kdegen[vision]``).

``mnist``, ``fashion-mnist``, ``cifar10``, ``svhn`` and ``celeba`` are downloaded on
first use into ``$KDEGEN_DATA`` (default ``~/.cache/kdegen/datasets``). torchvision
is imported only inside the loaders, so the rest of kdegen works without it.
CelebA is centre-cropped to 118 x 118 and resized to 64 x 64; the result is cached
as a uint8 ``.npy`` next to the download so later loads are fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image

from kdegen.data.base import ImageData, Request, dataset, one_line, uint8_to_unit
from kdegen.errors import UsageError

CELEBA_CROP = 118
CELEBA_SIZE = 64

Fetch = Callable[[ModuleType, Path, str], tuple[np.ndarray, np.ndarray | None]]


def data_root() -> Path:
    """Where downloads go: ``$KDEGEN_DATA`` or ``~/.cache/kdegen/datasets``."""
    root = os.environ.get("KDEGEN_DATA") or "~/.cache/kdegen/datasets"
    return Path(root).expanduser()


def torchvision_available() -> bool:
    """Whether torchvision can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("torchvision") is not None
    except (ImportError, ValueError):
        return False


def import_torchvision_datasets(name: str) -> ModuleType:
    """Import ``torchvision.datasets`` or raise UsageError saying how to install it."""
    try:
        return importlib.import_module("torchvision.datasets")
    except ImportError:
        raise UsageError(
            f"dataset {name} needs torchvision: pip install 'kdegen[vision]'"
        ) from None


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.numpy()
    return np.asarray(values)


def _fetch_mnist_like(class_name: str) -> Fetch:
    def fetch(tv: ModuleType, root: Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        data = getattr(tv, class_name)(str(root), train=split == "train", download=True)
        return _as_array(data.data)[:, None], _as_array(data.targets)

    return fetch


def _fetch_cifar10(tv: ModuleType, root: Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    data = tv.CIFAR10(str(root), train=split == "train", download=True)
    return _as_array(data.data).transpose(0, 3, 1, 2), _as_array(data.targets)


def _fetch_svhn(tv: ModuleType, root: Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    data = tv.SVHN(str(root), split=split, download=True)
    return _as_array(data.data), _as_array(data.labels)


def celeba_crop(img: Image.Image) -> np.ndarray:
    """Centre-crop a CelebA image to 118 x 118, resize to 64 x 64; uint8 3 x 64 x 64."""
    width, height = img.size
    left, top = (width - CELEBA_CROP) // 2, (height - CELEBA_CROP) // 2
    box = (left, top, left + CELEBA_CROP, top + CELEBA_CROP)
    small = (
        img.convert("RGB").crop(box).resize((CELEBA_SIZE, CELEBA_SIZE), Image.Resampling.BILINEAR)
    )
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1)


def _fetch_celeba(tv: ModuleType, root: Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    cache = root / f"kdegen-{split}-{CELEBA_SIZE}x{CELEBA_SIZE}.npy"
    if cache.exists():
        return np.load(cache), None
    data = tv.CelebA(str(root), split=split, target_type="attr", download=True)
    out = np.empty((len(data), 3, CELEBA_SIZE, CELEBA_SIZE), dtype=np.uint8)
    for i in range(len(data)):
        out[i] = celeba_crop(data[i][0])
    np.save(cache, out)
    return out, None


def _loader(name: str, fetch: Fetch, num_classes: int | None) -> Callable[[Request], ImageData]:
    def load(request: Request) -> ImageData:
        tv = import_torchvision_datasets(name)
        root = data_root() / name
        try:
            root.mkdir(parents=True, exist_ok=True)
            images, labels = fetch(tv, root, request.split)
        except (OSError, RuntimeError, ValueError, ImportError) as err:
            raise UsageError(
                f"could not get dataset {name} into {root}: {one_line(err)}; check the network "
                "connection, or put the files there, or set KDEGEN_DATA to another folder"
            ) from None
        label_tensor = None if labels is None else torch.from_numpy(labels.astype(np.int64))
        return ImageData(
            uint8_to_unit(np.ascontiguousarray(images)),
            label_tensor,
            request.name,
            num_classes=num_classes,
        )

    return load


VISION = (
    (
        "mnist",
        "MNIST handwritten digits",
        (60_000, 10_000),
        (1, 28, 28),
        10,
        _fetch_mnist_like("MNIST"),
    ),
    (
        "fashion-mnist",
        "Fashion-MNIST clothing images",
        (60_000, 10_000),
        (1, 28, 28),
        10,
        _fetch_mnist_like("FashionMNIST"),
    ),
    (
        "cifar10",
        "CIFAR-10 colour images, 10 classes",
        (50_000, 10_000),
        (3, 32, 32),
        10,
        _fetch_cifar10,
    ),
    ("svhn", "SVHN street-view house numbers", (73_257, 26_032), (3, 32, 32), 10, _fetch_svhn),
    (
        "celeba",
        "CelebA faces, centre-cropped 118x118 and resized to 64x64",
        (162_770, 19_962),
        (3, 64, 64),
        None,
        _fetch_celeba,
    ),
)


def _register() -> None:
    for name, description, sizes, shape, num_classes, fetch in VISION:
        dataset(
            name,
            description=f"{description} (torchvision download)",
            sizes=sizes,
            shape=shape,
            num_classes=num_classes,
            downloads=True,
        )(_loader(name, fetch, num_classes))


_register()
