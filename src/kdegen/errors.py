"""Errors that reach the user as one line on stderr (exit code 2)."""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in what the user asked for: bad input, unknown name, wrong option.

    The message says what is wrong and what to do; the CLI prints it as one line.
    """
