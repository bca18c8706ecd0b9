"""Writing files so that a crash never leaves a half-written one in place.

Everything is written to a temporary file (or folder) in the target's folder, flushed to
disk and renamed over the target (a rename within one file system is atomic): readers see
the old file or the new one, never a mixture.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

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
    except OSError as e:  # name the file: writers such as zipfile leave it out
        if e.filename is None:
            e.filename = str(path)
        raise
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
    """``torch.save(obj)`` to ``path`` atomically. The bytes are made in memory first and
    written by Python, so a full disk is an ``OSError`` (torch's own writer reports it as
    a RuntimeError of its zip container)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path`` atomically (a full disk raises ``OSError`` and keeps ``path``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


class Locked(Exception):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is locked by {holder or 'another process'}")
        self.path, self.holder = path, holder


def lock_exclusive(path: Path) -> IO[str]:
    """Take an exclusive lock on the file ``path`` (created when missing) without waiting,
    and write ``pid PID on HOST`` into it.

    The lock is ``fcntl.flock``'s: it belongs to the returned open file and ends when that
    is closed or the process dies in any way (no stale lock survives a crash). On systems
    without ``fcntl`` (Windows) no lock is taken.

    Raises:
        Locked: another process (or another open file of this one) holds it.
    """
    f = open(path, "a+")  # noqa: SIM115  # the open file is the lock; the caller closes it
    try:
        import fcntl
    except ImportError:  # pragma: no cover  # Windows: no advisory locks
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        raise Locked(path, holder) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    return f


# errors of writing that are the user's to fix (space, permissions), not kdegen's
WRITE_ERRORS = {
    errno.ENOSPC: "free disk space or write elsewhere",
    errno.EDQUOT: "free space in your quota or write elsewhere",
    errno.EFBIG: "the file exceeds this process's file size limit (ulimit -f); raise it or "
    "write elsewhere",
    errno.EACCES: "check its permissions or choose a folder you can write to",
    errno.EPERM: "check its permissions or choose a folder you can write to",
    errno.EROFS: "the file system is read-only; write elsewhere",
}


def describe_write_error(error: OSError) -> str | None:
    """One line for a write that failed for a reason the user can fix, naming the file
    (the target, not its temporary); None for other errors."""
    advice = WRITE_ERRORS.get(error.errno or 0)
    if advice is None:
        return None
    name = Path(str(error.filename)) if error.filename else None
    if name is not None and name.name.startswith(".") and name.suffix == ".tmp":
        target = name.name[1:].rsplit(".", 2)[0]  # .NAME.PID.tmp -> NAME
        name = name.with_name(target)
    where = f": {name}" if name is not None else ""
    return f"{error.strerror}{where}; {advice}"
