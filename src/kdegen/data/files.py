"""User data files: ``.npz`` / ``.npy`` arrays, image folders and single images.

Arrays may be (N, H, W), (N, H, W, C) with C in {1, 3, 4} (alpha dropped),
(N, C, H, W) with C in {1, 3}, or (N, D) points. uint8 images are mapped to [-1, 1];
float images must already lie in [-1, 1]. :func:`save_npz` writes what :func:`read_path`
reads back exactly; :func:`streamed_npz` writes the same file a chunk at a time, for sample
sets larger than memory.
"""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import torch

from kdegen.data.base import ImageData, one_line, uint8_to_unit
from kdegen.data.folders import IMAGE_SUFFIXES, read_folder, read_image_file
from kdegen.errors import UsageError
from kdegen.files import atomic_path

ARRAY_SUFFIXES = frozenset({".npz", ".npy"})
MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK\x03\x04"}
PATH_SUFFIXES = ARRAY_SUFFIXES | IMAGE_SUFFIXES
LAYOUTS = "(N,H,W), (N,H,W,C) with C in 1/3/4, (N,C,H,W) with C in 1/3, or (N,D) points"
NPZ_OVERHEAD = 4096  # bytes of an .npz beyond its float32 samples: the .npy header, zip records


def looks_like_path(spec: str) -> bool:
    """Whether ``spec`` names a file or folder rather than a dataset."""
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return (
        any(sep in spec for sep in seps)
        or Path(spec).suffix.lower() in PATH_SUFFIXES
        or os.path.exists(spec)
    )


def read_path(spec: str) -> ImageData:
    """Read a folder, image file, ``.npz`` or ``.npy`` named by ``spec``.

    Args:
        spec: the path as the user gave it (also the data set's name).

    Returns:
        The data; problems raise UsageError with a one-line message.
    """
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(
            f"no such file or folder: {spec}; give a dataset name (see `kdegen datasets`) "
            "or an image folder, .npz or .npy"
        )
    try:
        if path.is_dir():
            return read_folder(path, spec)
        suffix = path.suffix.lower()
        if suffix in ARRAY_SUFFIXES:
            images, labels = _load_arrays(path)
            return from_arrays(images, labels, spec)
        if suffix in IMAGE_SUFFIXES:
            return read_image_file(path, spec)
    except OSError as err:
        raise UsageError(
            f"cannot read {spec} ({one_line(err)}); check that it exists and is readable"
        ) from None
    raise UsageError(
        f"cannot read {spec}: unsupported file type {suffix or '(none)'}; "
        "give an image folder, an image file, .npz or .npy"
    )


def _load_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    suffix = path.suffix.lower()
    with path.open("rb") as handle:
        head = handle.read(len(MAGIC[suffix]))
    if head != MAGIC[suffix]:
        raise UsageError(
            f"{path} is not a valid {suffix} file (it may be corrupt or of another format); "
            f"save it again with numpy.{'save' if suffix == '.npy' else 'savez'}"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded, None
        with loaded:
            return _npz_arrays(path, loaded)
    except UsageError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise UsageError(
            f"cannot read {path} ({one_line(err) or type(err).__name__}); the file may be corrupt "
            "or hold pickled objects: save plain arrays with numpy.save / numpy.savez"
        ) from None


def _npz_arrays(path: Path, loaded: np.lib.npyio.NpzFile) -> tuple[np.ndarray, np.ndarray | None]:
    keys = list(loaded.files)
    if "images" not in keys:
        raise UsageError(
            f"{path} has no array 'images' (it has: {', '.join(keys) or 'nothing'}); "
            "save the images under the key 'images' (labels optionally under 'labels')"
        )
    labels = loaded["labels"] if "labels" in keys else None
    return loaded["images"], labels


def _labels_tensor(labels: np.ndarray, n: int, name: str) -> torch.Tensor:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(
            f"{name}: labels must be a 1-D integer array, got {labels.dtype} of shape "
            f"{labels.shape}; save class indices 0..K-1 as integers"
        )
    if len(labels) != n:
        raise UsageError(
            f"{name} has {len(labels)} labels for {n} samples; give exactly one label per sample"
        )
    return torch.from_numpy(labels.astype(np.int64))


def _to_nchw(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4 and array.shape[1] in (1, 3):
        return array
    if array.ndim == 4 and array.shape[3] in (1, 3, 4):
        return array[..., :3].transpose(0, 3, 1, 2)
    raise UsageError(f"{name}: cannot read an array of shape {array.shape}; expected {LAYOUTS}")


def _scale(array: np.ndarray, name: str) -> torch.Tensor:
    if array.dtype == np.uint8:
        return uint8_to_unit(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise UsageError(
            f"{name}: images of type {array.dtype} are not supported; "
            "save uint8 0..255 or float in [-1, 1]"
        )
    values = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(values).all():
        raise UsageError(
            f"{name} contains NaN or infinite values; clean the data "
            "(drop or replace those samples) and try again"
        )
    if values.min() < -1 or values.max() > 1:
        raise UsageError(
            f"{name}: float images must lie in [-1, 1] (found {values.min():.3g}.."
            f"{values.max():.3g}); save uint8 0..255 or rescale"
        )
    if values.min() >= 0:
        print(
            f"kdegen: warning: {name}: float images were read as [-1, 1] but none are "
            "negative; if they are in [0, 1], rescale them to x * 2 - 1",
            file=sys.stderr,
        )
    return torch.from_numpy(values)


def from_arrays(images: np.ndarray, labels: np.ndarray | None, name: str) -> ImageData:
    """Build ImageData from user arrays, choosing the layout from the shape.

    Args:
        images: image or point array (see the module docstring for layouts).
        labels: optional integer labels, one per sample.
        name: the source, for messages.

    Returns:
        The data set.
    """
    if images.ndim < 2 or images.shape[0] == 0:
        raise UsageError(f"{name} holds no samples (shape {images.shape}); expected {LAYOUTS}")
    label_tensor = None if labels is None else _labels_tensor(labels, len(images), name)
    num_classes = None if label_tensor is None else int(label_tensor.max()) + 1
    if images.ndim == 2:
        if not (np.issubdtype(images.dtype, np.floating) or images.dtype.kind in "iu"):
            raise UsageError(f"{name}: points of type {images.dtype} are not supported")
        points = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        return ImageData(points, label_tensor, name, kind="points", num_classes=num_classes)
    scaled = _scale(_to_nchw(images, name), name).contiguous()
    return ImageData(scaled, label_tensor, name, num_classes=num_classes)


def _sample_array(samples: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    """``samples`` as float32 N x C x H x W images in [-1, 1] or N x D points, checked."""
    array = np.asarray(torch.as_tensor(samples).detach().cpu(), dtype=np.float32)
    if array.ndim not in (2, 4):
        raise UsageError(f"{what} needs N x C x H x W images or N x D points, got {array.shape}")
    if not np.isfinite(array).all():
        raise UsageError(f"{what}: images contain NaN or infinite values; clean them first")
    if array.ndim == 4 and (array.min() < -1 or array.max() > 1):
        raise UsageError(f"{what}: images must lie in [-1, 1]; rescale them first")
    return array


def save_npz(
    path: str | os.PathLike[str],
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | None = None,
) -> Path:
    """Write images (float32 N x C x H x W in [-1, 1]) or points (N x D) to an ``.npz`` file.

    Args:
        path: where to write; the file name is used exactly as given.
        images: the samples.
        labels: optional integer labels, one per sample.

    Returns:
        The path written; :func:`kdegen.data.load` reads it back exactly.
    """
    array = _sample_array(images, "save_npz")
    out = Path(path)
    arrays: dict[str, np.ndarray] = {"images": array}
    if labels is not None:
        label_array = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).reshape(-1)
        if len(label_array) != len(array):
            raise UsageError(
                f"save_npz: {len(label_array)} labels for {len(array)} samples; "
                "give one label per sample"
            )
        arrays["labels"] = label_array
    with atomic_path(out) as tmp, tmp.open("wb") as handle:  # an old file stays whole
        np.savez(handle, **arrays)  # type: ignore[arg-type]
    return out


def is_user_path(spec: str) -> bool:
    """Whether ``spec`` names a user file or folder (not a registered dataset)."""
    from kdegen.data.base import DATASETS

    return spec.partition(":")[0].strip() not in DATASETS and looks_like_path(spec)


def canonical_spec(spec: str) -> str:
    """``spec`` as a run stores it: a user file or folder as its absolute resolved path
    (so the run resumes from any folder), a dataset name as given."""
    return str(Path(spec).expanduser().resolve()) if is_user_path(spec) else spec


def file_fingerprint(spec: str) -> dict[str, object] | None:
    """Resolved path, total size in bytes and latest modification time (ISO 8601) of the
    user file or folder ``spec``; None for a dataset name or a path that does not exist."""
    from datetime import datetime, timezone

    if not is_user_path(spec) or not Path(spec).expanduser().exists():
        return None
    path = Path(canonical_spec(spec))
    files = [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]
    stats = [p.stat() for p in files]
    newest = max((st.st_mtime for st in stats), default=path.stat().st_mtime)
    return {
        "path": str(path),
        "bytes": sum(st.st_size for st in stats),
        "modified": datetime.fromtimestamp(newest, timezone.utc).isoformat(),
    }


def npz_size(shape: tuple[int, ...]) -> int:
    """Bytes of the ``.npz`` that :func:`save_npz` or :func:`streamed_npz` writes for float32
    samples of ``shape`` (N, ...), at most (no compression: the file is the array)."""
    return int(np.prod(shape, dtype=object)) * 4 + NPZ_OVERHEAD


class NpzStream:
    """The ``images`` array of an ``.npz`` being written by :func:`streamed_npz`."""

    def __init__(self, entry: IO[bytes], shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.written = 0  # samples so far
        self._entry = entry
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(entry, header)  # the header np.save writes

    def write(self, samples: torch.Tensor | np.ndarray) -> None:
        """Append ``samples`` (n, *shape[1:]): checked as :func:`save_npz` checks them."""
        array = _sample_array(samples, "streamed_npz")
        if array.shape[1:] != self.shape[1:] or self.written + len(array) > self.shape[0]:
            raise ValueError(
                f"streamed_npz of shape {self.shape}: cannot add {array.shape} after "
                f"{self.written} samples"
            )
        little = np.ascontiguousarray(array, dtype="<f4")
        self._entry.write(little.data.cast("B"))  # the bytes, without a copy
        self.written += len(array)


@contextmanager
def streamed_npz(path: str | os.PathLike[str], shape: tuple[int, ...]) -> Iterator[NpzStream]:
    """Write an ``.npz`` of float32 samples of ``shape`` (N, ...) chunk by chunk, atomically.

    The file is the one :func:`save_npz` writes for the same samples (one stored, zip64
    entry ``images.npy``: the .npy header for the full shape, then the samples in order),
    so every reader of ``.npz`` files reads it; only one chunk is ever in memory.

    Args:
        path: where to write; an existing file is replaced only once all N samples were
            written (an error, or fewer samples, leaves it as it was).
        shape: the shape of the whole array, (N, C, H, W) or (N, D).

    Yields:
        The stream: call ``write(chunk)`` until N samples were written.
    """
    shape = tuple(int(s) for s in shape)
    with (
        atomic_path(Path(path)) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
        archive.open("images.npy", "w", force_zip64=True) as entry,
    ):
        stream = NpzStream(entry, shape)
        yield stream
        if stream.written != shape[0]:
            raise ValueError(f"streamed_npz: {stream.written} of {shape[0]} samples were written")
