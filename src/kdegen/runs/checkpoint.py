"""Checkpoint files: plain data only, with a checksum of their content.

A checkpoint is a dict of state dicts, tensors and plain Python values written by
``torch.save`` and read by ``torch.load(weights_only=True)``, so loading one never runs
code. Since format 2 it also holds ``checksum``, a SHA-256 of its content: torch's zip
container does not check the bytes of tensor data, so a file altered in place would
otherwise load and resume with other weights.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kdegen.errors import UsageError

CHECKPOINT_FORMAT = "kdegen-checkpoint-2"
READABLE_FORMATS = ("kdegen-checkpoint-1", CHECKPOINT_FORMAT)  # format 1 has no checksum


def content_digest(obj: Any) -> str:
    """SHA-256 of a checkpoint's content: keys, plain values and every tensor's dtype,
    shape and bytes, walked in a fixed order (independent of how torch lays out the file)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _feed(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    else:  # None, bool, int, float, str, bytes, torch.Size, dtype
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())


def checkpoint_bytes(state: Mapping[str, Any], step: int) -> bytes:
    """The bytes of a checkpoint file holding ``state`` at ``step``, with its checksum."""
    payload = {"format": CHECKPOINT_FORMAT, "step": step, **state}
    payload["checksum"] = content_digest(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a kdegen checkpoint without executing code and verify its checksum.

    Raises:
        UsageError: the file is missing, truncated, corrupt, altered, or not a kdegen
            checkpoint; the message names a numbered checkpoint to fall back on.
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
            f"checkpoint {path} is corrupt or truncated ({reason}); {_fallback(path)}"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise UsageError(f"{path} is not a kdegen checkpoint")
    if state["format"] != "kdegen-checkpoint-1":
        stored = state.pop("checksum", None)
        if stored != content_digest(state):
            raise UsageError(
                f"checkpoint {path} fails its checksum: its bytes changed after kdegen wrote "
                f"it (disk or copy damage); {_fallback(path)}"
            )
    return state


def _fallback(path: Path) -> str:
    """What to do instead of loading the damaged ``path``: the newest other numbered
    checkpoint beside it, if any."""
    others = [p for p in sorted(path.parent.glob("step-*.pt")) if p.name != path.name]
    if path.name.startswith("step-"):
        others = [p for p in others if p.name < path.name]
    if not others:
        return "no other checkpoint is kept beside it: start the run again"
    newest = others[-1]
    if path.name == "latest.pt":
        return (
            f"delete it and `kdegen train --resume` continues from {newest.name}, "
            "the newest numbered checkpoint"
        )
    return f"delete it and use {newest} (the newest older checkpoint)"
