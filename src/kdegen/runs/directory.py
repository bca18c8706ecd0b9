"""The run directory: config.json, metrics.jsonl, checkpoints/, samples/.

Checkpoints hold state dicts and plain data only, are written to a temporary file
and renamed into place (a crash never leaves a half-written ``latest.pt``) and are
read with ``torch.load(weights_only=True)``: loading a file never runs code.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kdegen.errors import UsageError
from kdegen.files import remove_stale_temporaries, save_atomic

CHECKPOINT_FORMAT = "kdegen-checkpoint-1"
# what kdegen writes into a run dir; --force removes these and nothing else
OWNED = ("config.json", "metrics.jsonl", "checkpoints", "samples", "eval.json", "report.md")


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a kdegen run directory (it has a config.json)."""
    return (Path(path) / "config.json").is_file()


class RunDir:
    """Paths and file operations of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoints = self.path / "checkpoints"
        self.samples = self.path / "samples"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.pt"

    def check_new(self, force: bool) -> None:
        """Fail unless the directory is absent, empty, or ``force`` allows overwriting it."""
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"--out {self.path} is a file; give a directory for the run")
        if self.path.is_dir() and any(self.path.iterdir()) and not force:
            raise UsageError(
                f"run directory {self.path} is not empty; use --resume {self.path} to continue "
                "it, --force to overwrite it, or another --out"
            )

    def create(self, force: bool) -> None:
        """Make the directory (after ``check_new``), removing kdegen's own files when forced."""
        if force:
            for name in OWNED:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.samples.mkdir(parents=True, exist_ok=True)

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
        tmp = self.metrics.with_name(self.metrics.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.metrics)

    # ----- checkpoints -----------------------------------------------------------------

    def save_checkpoint(self, state: Mapping[str, Any], step: int, keep: int) -> Path:
        """Write ``latest.pt`` and, when ``keep`` > 0, ``step-NNNNNNN.pt``, atomically."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        payload = {"format": CHECKPOINT_FORMAT, "step": step, **state}
        save_atomic(payload, self.latest)
        if keep > 0:
            numbered = self.checkpoints / f"step-{step:07d}.pt"
            tmp = numbered.with_name(numbered.name + ".tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(self.latest, tmp)  # same bytes, no second write
            except OSError:  # file systems without hard links
                shutil.copyfile(self.latest, tmp)
            tmp.replace(numbered)
            for old in sorted(self.checkpoints.glob("step-*.pt"))[:-keep]:
                old.unlink()
        return self.latest

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any]:
        """Read ``path`` or the checkpoint a resume starts from."""
        return load_checkpoint(path or self.resume_checkpoint() or self.latest)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a kdegen checkpoint without executing code.

    Raises:
        UsageError: the file is missing, truncated, corrupt, or not a kdegen checkpoint.
    """
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged files
        if "unsupported global" in str(e).lower():  # a pickled object, not damage
            raise UsageError(
                f"{path} holds pickled Python objects, which can run code: kdegen will not "
                "load it (its checkpoints hold tensors and plain data only)"
            ) from None
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UsageError(
            f"checkpoint {path} is corrupt or truncated ({reason}); delete it and resume from "
            f"a numbered checkpoint in {path.parent}, or start the run again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path} is not a kdegen checkpoint")
    return state
