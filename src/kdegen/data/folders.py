"""Reading a folder of image files (or one image file) with Pillow.

A folder holding only subfolders is a labelled set: each subfolder is a class,
sorted names giving labels 0..K-1 (like torchvision's ImageFolder). Images directly
in the folder give an unlabelled set. Grayscale images give one channel, colour
images three (alpha dropped). All images must share one size and one of the two modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kdegen.data.base import ImageData
from kdegen.errors import UsageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
GRAY_MODES = frozenset({"1", "L", "LA", "La", "F"}) | SIXTEEN_BIT_MODES


@dataclass(frozen=True)
class Picture:
    """One decoded image: C x H x W float32 in [-1, 1], with where it came from."""

    path: Path
    pixels: np.ndarray

    @property
    def gray(self) -> bool:
        return self.pixels.shape[0] == 1

    def size_text(self) -> str:
        return f"{self.path.name} is {self.pixels.shape[2]}x{self.pixels.shape[1]}"


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def read_picture(path: Path) -> Picture:
    """Decode one image file to C x H x W float32 in [-1, 1].

    Args:
        path: an image file.

    Returns:
        The decoded picture; unreadable files raise UsageError naming them.
    """
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(
            f"{path} is not an image (expected {', '.join(sorted(IMAGE_SUFFIXES))}); "
            "remove it from the folder"
        )
    try:
        with Image.open(path) as img:
            img.load()
            pixels = _to_array(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UsageError(
            f"cannot read image {path} ({type(err).__name__}); it may be corrupt: "
            "remove or replace it"
        ) from None
    return Picture(path, pixels)


def _to_array(img: Image.Image) -> np.ndarray:
    if img.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError("pixel values outside 0..65535")
        return (values / 32767.5 - 1).astype(np.float32)[None]
    if img.mode in GRAY_MODES:
        return (np.asarray(img.convert("L"), dtype=np.float32) / np.float32(127.5) - 1)[None]
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    return (rgb / np.float32(127.5) - 1).transpose(2, 0, 1)


def _check_alike(first: Picture, other: Picture) -> None:
    if first.pixels.shape[1:] != other.pixels.shape[1:]:
        raise UsageError(
            f"images differ in size: {first.size_text()}, {other.size_text()}; "
            "resize them all to one size"
        )
    if first.gray != other.gray:
        gray, colour = (first, other) if first.gray else (other, first)
        raise UsageError(
            f"images mix grayscale ({gray.path.name}) and colour ({colour.path.name}); "
            "convert them all to one mode"
        )


def _stack(pictures: list[Picture]) -> torch.Tensor:
    for picture in pictures[1:]:
        _check_alike(pictures[0], picture)
    return torch.from_numpy(np.stack([p.pixels for p in pictures]))


def _read_files(folder: Path, entries: list[Path]) -> list[Picture]:
    for entry in entries:
        if entry.is_dir():
            raise UsageError(
                f"{folder} mixes image files and the subfolder {entry.name}; put all images "
                "in class subfolders (one level deep) or all directly in the folder"
            )
    return [read_picture(entry) for entry in entries]


def read_folder(folder: Path, name: str) -> ImageData:
    """Read every image in ``folder`` (or in its class subfolders).

    Args:
        folder: the image folder.
        name: the spec string, used as the data set's name.

    Returns:
        The images, with labels when the folder is split into class subfolders.
    """
    entries = _visible(folder)
    if not entries:
        raise UsageError(f"folder {folder} holds no images; put image files (png, jpg, ...) in it")
    if not all(entry.is_dir() for entry in entries):
        return ImageData(_stack(_read_files(folder, entries)), None, name)
    pictures: list[Picture] = []
    labels: list[int] = []
    for label, sub in enumerate(entries):
        found = _read_files(sub, _visible(sub))
        if not found:
            raise UsageError(f"class folder {sub} holds no images; add images or remove it")
        pictures += found
        labels += [label] * len(found)
    return ImageData(
        _stack(pictures), torch.tensor(labels, dtype=torch.long), name, num_classes=len(entries)
    )


def read_image_file(path: Path, name: str) -> ImageData:
    """Read a single image file as a data set of one image."""
    return ImageData(_stack([read_picture(path)]), None, name)
