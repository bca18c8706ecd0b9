"""Writing files so that a crash never leaves a half-written one in place.

Everything is written to a temporary file in the target's folder, flushed to disk and
renamed over the target (a rename within one file system is atomic): readers see the
old file or the new one, never a mixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def _write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    _write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode()
    _write_atomic(path, lambda f: f.write(data))
