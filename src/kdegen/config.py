"""Typed, frozen configuration dataclasses: JSON round trip and command-line flags.

Each component owns a frozen dataclass with its defaults (the trainer's
:class:`TrainConfig` here, each method's next to the method). A field ``batch_size``
is the flag ``--batch-size``; unknown keys in a JSON file or mapping are rejected.
A run's resolved configuration is a :class:`RunConfig` saved as ``config.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from kdegen.errors import UsageError

C = TypeVar("C")


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a help text used for its command-line flag."""
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass(frozen=True)
class TrainConfig:
    """What the generic trainer needs: data, schedule, logging and checkpoint intervals."""

    data: str = option("mnist5k", "dataset name (see `kdegen datasets`) or image folder/.npz/.npy")
    steps: int = option(2000, "total training steps (iterations of the method)")
    batch_size: int = option(64, "examples per step, summed over all processes")
    seed: int = option(0, "random seed: the same seed repeats a run exactly (on the CPU)")
    log_every: int = option(10, "append averaged losses to metrics.jsonl every N steps")
    sample_every: int = option(500, "write a sample grid from fixed noise every N steps")
    checkpoint_every: int = option(500, "write checkpoints/latest.pt every N steps")
    keep_checkpoints: int = option(2, "numbered checkpoints kept beside latest.pt (0: none)")
    grid_size: int = option(64, "images in each sample grid")
    device: str = option("auto", "cpu, cuda, cuda:N, mps, or auto (cuda when available)")
    eval_every: int = option(0, "evaluate samples every N steps into metrics.jsonl (0: never)")
    eval_metrics: str = option(
        "auto",
        "metrics of --eval-every (auto: inception_score,fid for images; see `kdegen metrics`)",
    )
    eval_n: int = option(2000, "samples drawn for each evaluation of --eval-every")

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise UsageError(
                    f"--{flag_name(name)} must be at least 1, got {getattr(self, name)}"
                )
        if self.keep_checkpoints < 0:
            raise UsageError(f"--keep-checkpoints must be >= 0, got {self.keep_checkpoints}")
        if self.grid_size < 1:
            raise UsageError(f"--grid-size must be at least 1, got {self.grid_size}")
        if self.eval_every < 0 or self.eval_n < 2:
            raise UsageError("--eval-every must be >= 0 (0: never) and --eval-n at least 2")


def flag_name(field_name: str) -> str:
    """``batch_size`` -> ``batch-size``."""
    return field_name.replace("_", "-")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a JSON value to the field type ``tp``; UsageError when it does not fit."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UsageError:
                continue
        raise UsageError(f"{where}: {value!r} is not a valid {tp}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise UsageError(f"{where}: expected a list, got {value!r}")
        (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
        return tuple(_coerce(v, item, where) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UsageError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {tp}")


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "config") -> C:
    """Build config ``cls`` from a mapping; unknown keys and ill-typed values are rejected."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: expected an object, got {type(data).__name__}")
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(types_)}"
        )
    kwargs = {k: _coerce(v, types_[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def add_flags(parser: argparse.ArgumentParser, cls: type, defaults: Any = None) -> None:
    """Add one ``--flag`` per field of ``cls``; values default to None (meaning "not given")."""
    types_ = _field_types(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in fields(cls):
        tp = types_[f.name]
        name = "--" + flag_name(f.name)
        default = getattr(defaults, f.name) if defaults is not None else f.default
        help_ = f"{f.metadata.get('help', '')} (default: {default})"
        choices = f.metadata.get("choices")
        if tp is bool:
            group.add_argument(
                name, action=argparse.BooleanOptionalAction, default=None, help=help_
            )
        elif typing.get_origin(tp) is tuple:
            item = typing.get_args(tp)[0]
            group.add_argument(name, type=item, nargs="+", default=None, help=help_)
        else:
            base = _scalar_type(tp)
            group.add_argument(name, type=base, default=None, help=help_, choices=choices)


def _scalar_type(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def given_values(cls: type, namespace: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` that were set on the command line."""
    out = {}
    for f in fields(cls):
        value = getattr(namespace, f.name, None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def replace(cfg: C, values: Mapping[str, Any]) -> C:
    """``dataclasses.replace`` for frozen configs (validation runs again)."""
    return dataclasses.replace(cfg, **values)  # type: ignore[type-var]


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run: the method's name, its config and the trainer's."""

    method: str
    options: Any  # the method's own config dataclass
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "options": to_dict(self.options),
            "train": to_dict(self.train),
        }

    def save(self, path: Path) -> None:
        """Write the config as indented JSON (atomically)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)

    @staticmethod
    def from_mapping(data: Mapping[str, Any], options_class: type, where: str) -> RunConfig:
        """Parse a mapping with keys method, options, train (others rejected)."""
        unknown = sorted(set(data) - {"method", "options", "train"})
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}")
        return RunConfig(
            method=str(data["method"]),
            options=from_dict(options_class, data.get("options", {}), f"{where}: options"),
            train=from_dict(TrainConfig, data.get("train", {}), f"{where}: train"),
        )


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object from ``path``; a missing or malformed file is a UsageError."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not valid JSON ({e}); fix or delete it") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return data
