"""Name -> object registries filled by a decorator that rejects duplicates.

Objectives, priors, methods, datasets and metrics each keep one. Looking up an
unknown name raises :class:`kdegen.UsageError` naming the closest choices.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from kdegen.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """A validated mapping from names to registered objects.

    Args:
        kind: what the entries are ("objective", "method", ...), used in messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its argument under ``name``; a second use of a name fails."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` (non-decorator form)."""
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        """Return the entry for ``name``; unknown names raise UsageError with suggestions."""
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; choose one of: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())


def import_submodules(package: str) -> list[str]:
    """Import every module of ``package`` (not starting with ``_``) for its registrations,
    so that adding a method or an experiment is adding one module; returns their names."""
    module = importlib.import_module(package)
    names = [m.name for m in pkgutil.iter_modules(module.__path__) if not m.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
