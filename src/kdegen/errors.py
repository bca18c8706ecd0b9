"""Errors that reach the user as one line on stderr (exit code 2)."""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in what the user asked for: bad input, unknown name, wrong option.

    The message says what is wrong and what to do; the CLI prints it as one line.
    """


def one_line(message: str) -> str:
    """``message`` with its whitespace (newlines too) collapsed to single spaces."""
    return " ".join(message.split())


def show_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    """Print a warning as one line on stderr, like errors (no source line, no traceback);
    installed as ``warnings.showwarning`` by the command line and experiment workers."""
    import sys

    print(f"kdegen: warning: {one_line(str(message))}", file=sys.stderr)
