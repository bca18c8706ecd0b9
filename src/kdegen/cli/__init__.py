"""The ``kdegen`` command: parse flags -> config -> library call -> print.

A user mistake prints one line ``kdegen: error: ...`` on stderr and exits with 2.
Each command lives in a module of this package and registers itself in ``COMMANDS``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from kdegen import __version__
from kdegen.cli import classify, evaluate, experiment, latent, modnet, train

# isort: split
from kdegen.cli import sample  # registered after train: listed after it in `kdegen --help`
from kdegen.cli.base import COMMANDS
from kdegen.errors import UsageError, one_line, show_warning
from kdegen.files import describe_write_error
from kdegen.runs.training import OutputFailed, TrainingDiverged, TrainingInterrupted

__all__ = [
    "COMMANDS",
    "classify",
    "evaluate",
    "experiment",
    "latent",
    "main",
    "modnet",
    "sample",
    "train",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kdegen`` with ``argv`` (default: the process's arguments); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = show_warning
    finished = False
    try:
        if not argv or argv[0] in ("-h", "--help"):
            _print_usage()
            return 0 if argv else 2
        if argv[0] == "--version":
            print(__version__)
            return 0
        if argv[0] not in COMMANDS:
            raise UsageError(f"unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}")
        code = COMMANDS[argv[0]](argv[1:])
        finished = True
        return code
    except UsageError as e:
        print(f"kdegen: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except (TrainingDiverged, OutputFailed) as e:
        print(f"kdegen: error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except OSError as e:  # no space, no permission: the user's to fix, not a bug
        line = describe_write_error(e)
        if line is None:
            raise
        print(f"kdegen: error: {one_line(line)}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(
            f"kdegen: stopped at step {e.step} with a checkpoint; continue with "
            f"`kdegen train --resume {e.run or 'RUN'}`",
            file=sys.stderr,
        )
        return 130
    finally:
        from kdegen import distributed

        distributed.teardown(synchronise=finished)


def _print_usage() -> None:
    print("usage: kdegen COMMAND [options]   (kdegen COMMAND --help for its options)\n")
    for name, fn in COMMANDS.items():
        print(f"  {name:<12}{(fn.__doc__ or '').splitlines()[0]}")


if __name__ == "__main__":
    sys.exit(main())
