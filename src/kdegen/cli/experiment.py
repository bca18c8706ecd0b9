"""``kdegen experiment NAME [--quick] [--out DIR]``: reproduce a figure of the seeds."""

from __future__ import annotations

from pathlib import Path

from kdegen.cli.base import Parser, command
from kdegen.errors import UsageError


@command("experiment")
def cmd_experiment(argv: list[str]) -> int:
    """Reproduce a figure or table of the seeds (`kdegen experiment --help` lists them)."""
    from kdegen.experiments import EXPERIMENTS, Settings, run_experiment

    listing = "; ".join(f"{n}: {e.description}" for n, e in EXPERIMENTS.items())
    p = Parser(prog="kdegen experiment", description=f"{cmd_experiment.__doc__} {listing}")
    p.add_argument("name", help=f"one of {', '.join(EXPERIMENTS.names())}")
    p.add_argument("--quick", action="store_true", help="the small version (a few minutes)")
    p.add_argument("--out", default=None, help="output folder (default results/NAME)")
    p.add_argument("--data", default=None, help="dataset (default: the experiment's, mnist5k)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--jobs", type=int, default=1,
                   help="models trained at once, one process each, where an experiment trains "
                   "many independent ones (gen-entropy); default 1")  # fmt: skip
    args = p.parse_args(argv)
    EXPERIMENTS.get(args.name)
    out = Path(args.out or f"results/{args.name}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the results")
    settings = Settings(out, args.quick, args.data, args.seed, args.device, not args.no_progress,
                        args.jobs)  # fmt: skip
    outcome = run_experiment(args.name, settings)
    print(outcome.summary)
    print(f"wrote {', '.join(str(f) for f in outcome.files)}")
    return 0
