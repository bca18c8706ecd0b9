"""Command-line flags derived from config dataclasses (:mod:`kdegen.config`).

A field ``batch_size`` is the flag ``--batch-size`` (or a positional argument), a
``Literal`` field offers its choices, a bool field ``--x/--no-x``, a ``X | None`` field
also takes ``none``, and a nested config contributes its own fields under its prefix
(``ReversalConfig`` inside ``kdegan``: ``--rev-lr``). Every flag's default in ``--help``
is read from the dataclass, and flags left out stay unset (None), so that a value is
taken from the command line only where it was given.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from kdegen.config import FieldError, field_types, flag_name, literal_choices

C = TypeVar("C")


def _dest(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _scalar(tp: Any) -> tuple[Callable[[str], Any], bool]:
    """A parser of one flag value of type ``tp``, and whether ``none`` is allowed."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        tp = next(a for a in args if a is not type(None))
    choices = literal_choices(tp)
    base: Any = type(choices[0]) if choices else tp

    def parse(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        return base(text)

    parse.__name__ = getattr(base, "__name__", "value")
    return parse, optional


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    defaults: Any = None,
    title: str | None = None,
) -> None:
    """Add one argument per field of ``cls`` (nested configs: their fields, prefixed).

    ``defaults`` is an instance whose values ``--help`` shows (default: the field defaults).
    """
    types_ = field_types(cls)
    group: Any = parser.add_argument_group(title) if title else parser
    for f in fields(cls):
        tp = types_[f.name]
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        dest = _dest(prefix, f.name)
        if dataclasses.is_dataclass(tp):
            sub = f.metadata.get("prefix")
            sub_prefix = _dest(prefix, sub if sub is not None else f.name)
            add_flags(parser, tp, sub_prefix, default, f.metadata.get("help") or None)  # type: ignore[arg-type]
            continue
        help_ = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"help": help_, "metavar": f.metadata.get("metavar")}
        if default is not MISSING:
            kwargs["help"] = f"{help_} (default: {_shown(default)})"
        choices = literal_choices(tp)
        if choices:
            kwargs["choices"] = choices
            kwargs["metavar"] = kwargs["metavar"] or "{" + ",".join(map(str, choices)) + "}"
        if f.metadata.get("positional"):
            if typing.get_origin(tp) is tuple:
                kwargs["nargs"] = "+"
                kwargs["type"] = typing.get_args(tp)[0]
            group.add_argument(dest, **kwargs)
            continue
        name = "--" + flag_name(dest)
        if tp is bool:
            del kwargs["metavar"]
            group.add_argument(
                name, dest=dest, action=argparse.BooleanOptionalAction, default=None, **kwargs
            )
        elif typing.get_origin(tp) is tuple:
            item = typing.get_args(tp)[0]
            group.add_argument(name, dest=dest, type=item, nargs="+", default=None, **kwargs)
        else:
            parse, _ = _scalar(tp)
            group.add_argument(
                name,
                dest=dest,
                type=parse,
                default=None,
                required=default is MISSING,
                **kwargs,
            )


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def given(cls: type, namespace: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` set on the command line (nested configs: nested dicts)."""
    types_ = field_types(cls)
    out: dict[str, Any] = {}
    for f in fields(cls):
        tp = types_[f.name]
        if dataclasses.is_dataclass(tp):
            sub = f.metadata.get("prefix")
            inner = given(tp, namespace, _dest(prefix, sub if sub is not None else f.name))  # type: ignore[arg-type]
            if inner:
                out[f.name] = inner
            continue
        value = getattr(namespace, _dest(prefix, f.name), None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def flags_given(cls: type, namespace: argparse.Namespace) -> list[str]:
    """The command-line flags of ``cls`` that were given, as typed (``--rev-lr``)."""
    out = []
    for key, value in given(cls, namespace).items():
        if isinstance(value, dict):
            f = next(f for f in fields(cls) if f.name == key)
            sub = f.metadata.get("prefix")
            p = sub if sub is not None else key
            out += ["--" + flag_name(_dest(p, k)) for k in value]
        else:
            out.append("--" + flag_name(key))
    return out


def build(cls: type[C], namespace: argparse.Namespace, base: Any = None, prefix: str = "") -> C:
    """A ``cls`` from the flags given, on top of ``base`` (default: the field defaults)."""
    types_ = field_types(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        tp = types_[f.name]
        if dataclasses.is_dataclass(tp):
            sub = f.metadata.get("prefix")
            sub_prefix = _dest(prefix, sub if sub is not None else f.name)
            inner = getattr(base, f.name) if base is not None else _field_default(f)
            values[f.name] = build(tp, namespace, inner, sub_prefix)  # type: ignore[arg-type]
            continue
        value = getattr(namespace, _dest(prefix, f.name), None)
        if value is not None:
            values[f.name] = tuple(value) if isinstance(value, list) else value
    try:
        if base is not None:
            return dataclasses.replace(base, **values)
        return cls(**values)
    except FieldError as e:
        raise e.under(prefix) from None


def parse(cls: type[C], argv: list[str], prog: str, description: str | None = None) -> C:
    """Parse ``argv`` into a ``cls`` (a command's whole config) with one-line errors."""
    from kdegen.cli.base import Parser

    p = Parser(prog=prog, description=description)
    add_flags(p, cls)
    return build(cls, p.parse_args(argv))
