"""Writing files so that a crash never leaves a half-written one in place.

Everything is written to a temporary file (or folder) in the target's folder, flushed to
disk and renamed over the target (a rename within one file system is atomic): readers see
the old file or the new one, never a mixture.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (by any library); on leaving without
    an error it is flushed to disk and renamed over ``path``, on an error it is removed
    and ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A new temporary folder beside ``path`` to fill; on leaving without an error its files
    are flushed to disk and it is renamed to ``path`` (which must not exist, or be an empty
    folder), on an error it is deleted and ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        for file in tmp.iterdir():
            with file.open("rb") as f:
                os.fsync(f.fileno())
        tmp.replace(path)  # replaces an empty folder on POSIX
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def human_size(size: float) -> str:
    """A byte count in decimal units, as ``df -H`` gives it: ``3.1 TB``, ``40 GB``, ``512 B``."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    i = 0
    while size >= 999.5 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g} {units[i]}" if i else f"{int(size)} B"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files a killed kdegen process left in ``folder`` (``.NAME.PID.tmp``
    and ``NAME.tmp``); returns what was removed."""
    removed = []
    for tmp in sorted(Path(folder).glob("*.tmp")):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode())
