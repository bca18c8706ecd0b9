"""Command-line plumbing: the one-line-error parser and the command registry."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from kdegen.config import Config, option
from kdegen.errors import UsageError

Split = Literal["train", "test"]


@dataclass(frozen=True, kw_only=True)
class DataOptions(Config):
    """A run and the data a command works on."""

    run: str = option(help="run directory", positional=True)
    data: str = option(help="dataset name or image folder/.npz")
    split: Split = option("test", "split of --data")
    device: str = option("auto", "cpu, cuda, cuda:N, mps or auto")


class Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one line and exit code 2, and takes flags only as
    written in full (``--m`` is GEN's ``--m``, never an abbreviation of ``--method``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


COMMANDS: dict[str, Callable[[list[str]], int]] = {}


def command(name: str) -> Callable[[Callable[[list[str]], int]], Callable[[list[str]], int]]:
    def add(fn: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        COMMANDS[name] = fn
        return fn

    return add


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


def output_path(value: str, suffixes: tuple[str, ...]) -> Path:
    """An output file name with one of ``suffixes`` in an existing folder."""
    out = Path(value)
    if out.suffix not in suffixes:
        raise UsageError(f"--out {out}: give a file name ending in {' or '.join(suffixes)}")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    _not_a_runs_own(out)
    return out


def is_folder_output(value: str) -> bool:
    """Whether ``--out value`` names a folder: it ends in ``/`` or is an existing folder."""
    return value.endswith(("/", os.sep)) or Path(value).is_dir()


def output_folder(value: str) -> Path:
    """An output folder to create in an existing folder, or an existing empty one."""
    out = Path(value)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {value}: {out} is a file; give a new or empty folder")
    if not out.parent.is_dir():
        raise UsageError(f"--out {value}: folder {out.parent} does not exist")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(
            f"--out {value}: folder {out} is not empty; give a new or empty folder "
            "(nothing in it is replaced)"
        )
    _not_a_runs_own(out)
    return out


RUN_FILES = ("config.json", "metrics.jsonl", "report.md")  # what only the run's writers write
RUN_FOLDERS = ("checkpoints", "samples")


def _not_a_runs_own(out: Path) -> None:
    """Refuse ``out`` when it would replace a file or folder that a run directory holds for
    itself (its config, log, checkpoints or sample grids): the run would become unloadable."""
    from kdegen.runs import is_run_dir

    parent = out.resolve().parent
    if is_run_dir(parent) and out.name in RUN_FILES + RUN_FOLDERS:
        raise UsageError(f"--out {out} is the run's own {out.name}; write the output elsewhere")
    if parent.name in RUN_FOLDERS and is_run_dir(parent.parent):
        raise UsageError(
            f"--out {out} is inside the run's {parent.name}/ folder; write the output elsewhere"
        )
