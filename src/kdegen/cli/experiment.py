"""``kdegen experiment NAME [--quick] [--out DIR]``: reproduce a figure of the seeds."""

from __future__ import annotations

from pathlib import Path

from kdegen.cli.base import Parser, command
from kdegen.cli.flags import add_flags, build
from kdegen.errors import UsageError


@command("experiment")
def cmd_experiment(argv: list[str]) -> int:
    """Reproduce a figure or table of the seeds (`kdegen experiment --help` lists them)."""
    from kdegen.experiments import EXPERIMENTS, Settings, run_experiment

    listing = "; ".join(f"{n}: {e.description}" for n, e in EXPERIMENTS.items())
    pre = Parser(add_help=False)
    pre.add_argument("name", nargs="?")
    name = pre.parse_known_args(argv)[0].name
    defaults = Settings(Path("results") / (name or "NAME"))  # --out: results/NAME
    p = Parser(prog="kdegen experiment", description=f"{cmd_experiment.__doc__} {listing}")
    p.add_argument("name", help=f"one of {', '.join(EXPERIMENTS.names())}")
    add_flags(p, Settings, defaults=defaults)
    args = p.parse_args(argv)
    EXPERIMENTS.get(args.name)
    settings = build(Settings, args, base=defaults)
    if settings.out.exists() and not settings.out.is_dir():
        raise UsageError(f"--out {settings.out} is a file; give a folder for the results")
    outcome = run_experiment(args.name, settings)
    print(outcome.summary)
    print(f"wrote {', '.join(str(f) for f in outcome.files)}")
    return 0
