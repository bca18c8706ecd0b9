"""Typed, frozen configurations: the one source of every entry point's options.

Each entry point (``train`` per method, ``sample``, ``reverse`` and the other latent
commands, ``evaluate``, the experiments) takes a frozen dataclass deriving
:class:`Config`. Its fields are the whole specification: the type (``Literal`` for a
choice, ``X | None``, a tuple, a nested config), the default, and :func:`option`'s help
text and bounds. :func:`check` enforces them when an instance is made, so the Python
API and the command line refuse the same values with the same one-line message;
:func:`to_dict` / :func:`from_dict` are the JSON round trip of ``config.json`` (unknown
keys and wrong types refused); :mod:`kdegen.cli.flags` derives flags, ``--help``
defaults and ``--dry-run`` output from the same fields, and :func:`from_text` reads the
``name:key=value`` options of a dataset (its options are a config class too).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from kdegen.errors import UsageError

C = TypeVar("C")

_BOUNDS = {
    "ge": (lambda v, b: v >= b, "must be at least {}"),
    "gt": (lambda v, b: v > b, "must be > {}"),
    "le": (lambda v, b: v <= b, "must be at most {}"),
    "lt": (lambda v, b: v < b, "must be < {}"),
}


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    finite: bool = True,
    prefix: str | None = None,
    positional: bool = False,
    metavar: str | None = None,
    parse: Callable[[object], Any] | None = None,
) -> Any:
    """A config field: its default (none: required), help text and checks.

    Args:
        ge, gt, le, lt: bounds of a number (``None`` values are not checked).
        finite: refuse NaN and infinite floats (the default).
        prefix: for a nested config, the flag prefix of its fields (``rev``: ``--rev-lr``).
        positional: a positional command-line argument instead of a ``--flag``.
        metavar: the value's name in ``--help``.
        parse: turns text or a Python value into the field's type (ValueError when it
            cannot) where the type alone does not say how, e.g. digits written ``6789``.
    """
    bounds = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    meta = {"help": help, "bounds": bounds, "finite": finite, "prefix": prefix}
    meta.update(positional=positional, metavar=metavar, parse=parse)
    return field(default=default, metadata=meta)


class FieldError(UsageError):
    """A field's value is out of its type or bounds; names the field for its flag."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"--{flag_name(name)} {detail}")
        self.name, self.detail = name, detail

    def under(self, prefix: str) -> FieldError:
        """The same error for a nested field whose flags carry ``prefix``."""
        return FieldError(f"{prefix}_{self.name}" if prefix else self.name, self.detail)


class Config:
    """Base of config dataclasses: fields are checked (and normalised) on construction.

    Subclasses with checks across fields extend ``__post_init__`` and call this first.
    """

    def __post_init__(self) -> None:
        check(self)


def flag_name(field_name: str) -> str:
    """``batch_size`` -> ``batch-size``."""
    return field_name.replace("_", "-")


def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of a config class."""
    return typing.get_type_hints(cls)


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` type (also inside ``X | None``), else None."""
    for t in (tp, *typing.get_args(tp)):
        if typing.get_origin(t) is Literal:
            return typing.get_args(t)
    return None


def check(cfg: Any) -> None:
    """Check every field of ``cfg`` against its type and bounds; ints given for floats and
    lists given for tuples are stored as floats and tuples."""
    types_ = field_types(type(cfg))
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        fixed = _coerce(value, types_[f.name], f.name)
        if fixed is not value:
            object.__setattr__(cfg, f.name, fixed)
        _check_bounds(fixed, f)


def _check_bounds(value: Any, f: dataclasses.Field[Any]) -> None:
    numbers = value if isinstance(value, tuple) else (value,)
    for v in numbers:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if isinstance(v, float) and f.metadata.get("finite", True) and not math.isfinite(v):
            raise FieldError(f.name, f"must be a finite number, got {v}")
        for kind, bound in f.metadata.get("bounds", {}).items():
            test, text = _BOUNDS[kind]
            if not test(v, bound):
                raise FieldError(f.name, f"{text.format(bound)}, got {v}")


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` as field type ``tp``; FieldError when it does not fit."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, name)
            except FieldError as e:
                errors.append(e.detail)
        raise FieldError(name, errors[0] if len(errors) == 1 else f"got an invalid {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            shown = ", ".join(str(c) for c in choices)
            raise FieldError(name, f"must be one of {shown}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise FieldError(name, f"expects a list, got {value!r}")
        item = typing.get_args(tp)[0]
        items = tuple(_coerce(v, item, name) for v in value)
        return value if items == value and isinstance(value, tuple) else items
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            raise FieldError(name, f"expects a {tp.__name__}, got {value!r}")
        return value
    return _coerce_scalar(value, tp, name)


def _coerce_scalar(value: Any, tp: Any, name: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise FieldError(name, f"expects true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(name, f"expects an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError(name, f"expects a number, got {value!r}")
        return value if isinstance(value, float) else float(value)
    if tp is str:
        if not isinstance(value, str):
            raise FieldError(name, f"expects a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise FieldError(name, f"expects a path, got {value!r}")
        return value if isinstance(value, Path) else Path(value)
    raise TypeError(f"unsupported config field type {tp}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (nested configs as objects, tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "config", base: Any = None) -> C:
    """Build config ``cls`` from a mapping, on top of ``base`` (default: the field defaults).

    Nested configs are mappings themselves and merge into the base's. Unknown keys,
    ill-typed values and values out of bounds are refused with ``where`` and the key.
    """
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: expected an object, got {type(data).__name__}")
    types_ = field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(types_)}"
        )
    values = {}
    for key, value in data.items():
        tp = types_[key]
        if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            inner = getattr(base, key) if base is not None else _default(cls, key)
            values[key] = from_dict(tp, value, f"{where}.{key}", inner)  # type: ignore[arg-type]
        else:
            values[key] = value
    try:
        if base is not None:
            return dataclasses.replace(base, **values)
        return cls(**values)
    except FieldError as e:
        raise UsageError(f"{where}.{e.name}: {e.detail}") from None
    except TypeError as e:  # a required field is missing
        raise UsageError(f"{where}: {e}") from None


def _default(cls: type, name: str) -> Any:
    f = next(f for f in fields(cls) if f.name == name)
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None


def replace(cfg: C, values: Mapping[str, Any]) -> C:
    """``dataclasses.replace`` for frozen configs (the checks run again)."""
    return dataclasses.replace(cfg, **values)  # type: ignore[type-var]


@dataclass(frozen=True)
class TrainConfig(Config):
    """What the generic trainer needs: data, schedule, logging and checkpoint intervals."""

    data: str = option("mnist5k", "dataset name (see `kdegen datasets`) or image folder/.npz/.npy")
    steps: int = option(2000, "total training steps (iterations of the method)", ge=1)
    batch_size: int = option(64, "examples per step, summed over all processes", ge=1)
    seed: int = option(0, "random seed: the same seed repeats a run exactly (on the CPU)")
    log_every: int = option(10, "append averaged losses to metrics.jsonl every N steps", ge=1)
    sample_every: int = option(500, "write a sample grid from fixed noise every N steps", ge=1)
    checkpoint_every: int = option(500, "write checkpoints/latest.pt every N steps", ge=1)
    keep_checkpoints: int = option(2, "numbered checkpoints kept beside latest.pt", ge=0)
    grid_size: int = option(64, "images in each sample grid", ge=1)
    device: str = option("auto", "cpu, cuda, cuda:N, mps, or auto (cuda when available)")
    eval_every: int = option(0, "evaluate samples every N steps (0: never)", ge=0)
    eval_metrics: str = option(
        "auto",
        "metrics of --eval-every (auto: inception_score,fid for images; see `kdegen metrics`)",
    )
    eval_n: int = option(2000, "samples drawn for each evaluation of --eval-every", ge=2)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run: the method's name, its config and the trainer's."""

    method: str
    options: Any  # the method's own config dataclass
    train: TrainConfig
    # for data from a user file: its resolved path, size and modification time when the
    # run started (a resume warns when they changed); None for registered datasets
    data_file: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "method": self.method,
            "options": to_dict(self.options),
            "train": to_dict(self.train),
        }
        if self.data_file is not None:
            out["data_file"] = dict(self.data_file)
        return out

    def with_train(self, train: TrainConfig) -> RunConfig:
        """The same run with other trainer options."""
        return dataclasses.replace(self, train=train)

    def save(self, path: Path) -> None:
        """Write the config as indented JSON (atomically)."""
        from kdegen.files import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @staticmethod
    def from_mapping(data: Mapping[str, Any], options_class: type, where: str) -> RunConfig:
        """Parse a mapping with keys method, options, train (others rejected)."""
        unknown = sorted(set(data) - {"method", "options", "train", "data_file"})
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("method", "options", "train") if k not in data]
        if missing:  # a missing train section would silently mean mnist5k
            raise UsageError(
                f"{where}: missing {', '.join(missing)}; a run config holds method, options "
                "and train (write the defaults out with `kdegen train ... --dry-run`)"
            )
        return RunConfig(
            method=str(data["method"]),
            options=from_dict(options_class, data.get("options", {}), f"{where}: options"),
            train=from_dict(TrainConfig, data.get("train", {}), f"{where}: train"),
            data_file=_data_file(data.get("data_file"), where),
        )


def _data_file(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"path", "bytes", "modified"}:
        raise UsageError(f"{where}: data_file must be an object with path, bytes and modified")
    return dict(value)


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


def from_text(cls: type[C], given: Mapping[str, object]) -> C:
    """Build config ``cls`` from values given as text (``key=value`` strings) or as Python
    values: each is converted by its field's ``parse`` or type, then checked as always.

    Raises:
        FieldError: a value that does not convert or is out of bounds (names the field).
        TypeError: an unknown key (callers check keys first, to say what is accepted).
    """
    types_ = field_types(cls)
    parsers = {f.name: f.metadata.get("parse") for f in fields(cls)}  # type: ignore[arg-type]
    values = {}
    for key, value in given.items():
        parse = parsers[key]
        try:
            values[key] = parse(value) if parse else _from_text(value, types_[key])
        except ValueError as e:
            raise FieldError(key, str(e)) from None
    return cls(**values)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _from_text(value: object, tp: Any) -> Any:
    """``value`` converted to type ``tp`` when it is text (or a 0/1 for a bool, a numpy
    integer for an int); anything else is left for the field check."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = type(None) in typing.get_args(tp)
        if optional and isinstance(value, str) and value.strip().lower() == "none":
            return None
        return _from_text(value, args[0]) if len(args) == 1 else value
    if tp is bool and not isinstance(value, bool):
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError("expected true/false (1/0, yes/no)")
    if tp is int and not isinstance(value, bool) and hasattr(value, "__index__"):
        return int(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if tp is int:
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ValueError("expected an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number") from None
    return text
