"""The run directory: config.json, metrics.jsonl, checkpoints/, samples/.

Checkpoints hold state dicts and plain data only (see :mod:`kdegen.runs.checkpoint`),
are written to a temporary file and renamed into place (a crash never leaves a
half-written ``latest.pt``) and are read with ``torch.load(weights_only=True)``: loading a
file never runs code.

One process writes a run directory at a time: training takes an exclusive lock on
``.lock`` in it (held until the process ends, released by the OS however it ends).
``--force`` over an existing run writes the new run into ``.kdegen-new`` inside it and
swaps it in when its first checkpoint is written, so a refused or crashed start leaves
the old run as it was.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kdegen.errors import UsageError
from kdegen.files import (
    Locked,
    lock_exclusive,
    remove_stale_temporaries,
    write_bytes_atomic,
    write_text_atomic,
)
from kdegen.runs.checkpoint import CHECKPOINT_FORMAT, checkpoint_bytes, load_checkpoint

__all__ = ["CHECKPOINT_FORMAT", "OWNED", "RunDir", "is_run_dir", "load_checkpoint"]

# what kdegen writes into a run dir; --force replaces these and nothing else
OWNED = ("config.json", "metrics.jsonl", "checkpoints", "samples", "eval.json", "report.md")
LOCK = ".lock"
NEW, OLD = ".kdegen-new", ".kdegen-old"  # a forced start's new run; the old one mid-swap
HIDDEN = (LOCK, NEW, OLD)  # kdegen's own bookkeeping: not content of the directory


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a kdegen run directory (it has a config.json)."""
    return (Path(path) / "config.json").is_file()


class RunDir:
    """Paths and file operations of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.root = Path(path)  # the directory the user named
        self._point_at(self.root)
        self._lock: IO[str] | None = None

    def _point_at(self, path: Path) -> None:
        """Write into ``path`` (the root, or a forced start's staging folder inside it)."""
        self.path = path
        self.config = path / "config.json"
        self.metrics = path / "metrics.jsonl"
        self.checkpoints = path / "checkpoints"
        self.samples = path / "samples"

    @property
    def staged(self) -> bool:
        """Whether a forced start writes beside an old run that it has not replaced yet."""
        return self.path != self.root

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.pt"

    def check_new(self, force: bool) -> None:
        """Fail unless the directory is absent, empty, or ``force`` allows overwriting it."""
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"--out {self.path} is a file; give a directory for the run")
        if (
            self.path.is_dir()
            and not force
            and any(p.name not in HIDDEN for p in self.path.iterdir())
        ):
            raise UsageError(
                f"run directory {self.path} is not empty; use --resume {self.path} to continue "
                "it, --force to overwrite it, or another --out"
            )

    def create(self, force: bool) -> None:
        """Make the directory (after ``check_new``, holding the lock).

        Forced over an existing run, the new run is written into ``.kdegen-new`` and
        replaces the old one at its first checkpoint (:meth:`save_checkpoint`); forced over
        kdegen files that are no run (no config.json), those are removed now.
        """
        self.recover()
        if force and self.config.is_file():
            self._point_at(self.root / NEW)
        elif force:
            for name in OWNED:
                _remove(self.root / name)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.samples.mkdir(parents=True, exist_ok=True)

    def discard_staged(self) -> None:
        """Drop a forced start's new run that never reached its first checkpoint."""
        if self.staged:
            shutil.rmtree(self.path, ignore_errors=True)
            self._point_at(self.root)

    def _swap_in(self) -> None:
        """Replace the old run by the staged one. Every step is a rename or a removal and
        the whole is repeatable: :meth:`recover` finishes a swap a crash interrupted."""
        old, new = self.root / OLD, self.root / NEW
        old.mkdir(exist_ok=True)
        for name in OWNED:
            if (new / name).exists() and (self.root / name).exists():
                _remove(old / name)
                (self.root / name).rename(old / name)
            if (new / name).exists():
                (new / name).rename(self.root / name)
        shutil.rmtree(new)
        shutil.rmtree(old)
        self._point_at(self.root)

    def recover(self) -> None:
        """Clean up after a forced start that a crash stopped (call with the lock held):
        finish a swap it began, or drop a new run that never checkpointed."""
        if (self.root / OLD).is_dir():
            if not (self.root / NEW).is_dir():
                (self.root / NEW).mkdir()
            self._swap_in()
        elif (self.root / NEW).is_dir():
            shutil.rmtree(self.root / NEW)

    def needs_recovery(self) -> bool:
        return (self.root / OLD).is_dir() or (self.root / NEW).is_dir()

    # ----- the writer's lock ---------------------------------------------------------

    def lock(self) -> None:
        """Become the one writer of this directory (made if missing) until :meth:`unlock`
        or the end of the process.

        Raises:
            UsageError: another process is training into it (named in the message).
        """
        if self._lock is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = lock_exclusive(self.root / LOCK)
        except Locked as e:
            raise UsageError(
                f"run directory {self.root} is in use by {e.holder or 'another process'}, "
                "which is training into it; wait for it to finish or stop it, or use another "
                "--out"
            ) from None

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove_temporaries(self) -> None:
        """Delete the temporary files of a writer that was killed mid-write (the next start
        or resume of the run does this)."""
        for folder in (self.path, self.checkpoints, self.samples):
            if folder.is_dir():
                remove_stale_temporaries(folder)

    def check_existing(self) -> None:
        """Fail unless this is a run directory with a config and a checkpoint."""
        if self.path.is_file():
            raise UsageError(f"{self.path} is a file, not a run directory; give the run's folder")
        if not self.path.is_dir():
            raise UsageError(f"no such run directory: {self.path}")
        if not self.config.is_file():
            raise UsageError(f"{self.path} is not a kdegen run directory (no config.json)")
        if self.resume_checkpoint() is None:
            raise UsageError(f"{self.path} has no checkpoint yet (nothing in {self.checkpoints})")

    def resume_checkpoint(self) -> Path | None:
        """``latest.pt``, or the newest numbered checkpoint when it was deleted."""
        if self.latest.is_file():
            return self.latest
        numbered = sorted(self.checkpoints.glob("step-*.pt"))
        return numbered[-1] if numbered else None

    # ----- metrics log -----------------------------------------------------------------

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line; NaN and infinite numbers become null (they are not JSON)."""
        clean = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in record.items()
        }
        with self.metrics.open("a") as f:
            f.write(json.dumps(clean, allow_nan=False) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records of metrics.jsonl (a torn last line from a crash is skipped)."""
        if not self.metrics.is_file():
            return []
        records = []
        for line in self.metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def truncate_metrics(self, last_step: int) -> None:
        """Drop records after ``last_step`` (they will be logged again after a resume)."""
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= last_step]
        write_text_atomic(self.metrics, "".join(json.dumps(r) + "\n" for r in kept))

    # ----- checkpoints -----------------------------------------------------------------

    def save_checkpoint(self, state: Mapping[str, Any], step: int, keep: int) -> Path:
        """Write ``latest.pt`` and, when ``keep`` > 0, ``step-NNNNNNN.pt``, atomically.

        The two are separate files written separately (not links to one another), so one
        bad write cannot damage both. The first checkpoint of a forced start swaps the new
        run in over the old one. Returns the path of ``latest.pt``.
        """
        data = checkpoint_bytes(state, step)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.latest, data)
        if keep > 0:
            write_bytes_atomic(self.checkpoints / f"step-{step:07d}.pt", data)
            for old in sorted(self.checkpoints.glob("step-*.pt"))[:-keep]:
                old.unlink()
        if self.staged:
            self._swap_in()
        return self.latest

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any]:
        """Read ``path`` or the checkpoint a resume starts from."""
        return load_checkpoint(path or self.resume_checkpoint() or self.latest)


def _remove(target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
