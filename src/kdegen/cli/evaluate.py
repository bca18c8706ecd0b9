"""``kdegen evaluate``, ``report`` and ``metrics``: judging a run by whole distributions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdegen.cli.base import Parser, command, output_path, print_table
from kdegen.cli.flags import parse
from kdegen.config import Config, option
from kdegen.errors import UsageError
from kdegen.evaluation.evaluate import EvalConfig


@command("metrics")
def cmd_metrics(argv: list[str]) -> int:
    """List the evaluation metrics and embeddings."""
    Parser(prog="kdegen metrics", description=cmd_metrics.__doc__).parse_args(argv)
    from kdegen.evaluation.embed import EMBEDDINGS
    from kdegen.evaluation.metrics import METRICS

    print_table(
        [("metric", "needs", "least n", "description")]
        + [
            (n, ",".join(m.needs), str(m.minimum.samples), m.description)
            for n, m in METRICS.items()
        ]
    )
    print("\nleast n: samples per set below which `kdegen evaluate` skips the metric")
    print(f"\nembeddings: {', '.join(EMBEDDINGS.names())}")
    return 0


@dataclass(frozen=True, kw_only=True)
class EvaluateOptions(Config):
    source: str = option(
        help="run directory (samples are drawn), image folder or .npz/.npy", positional=True
    )
    reference: str = option(
        help="dataset name (its test split; the train split where needed) or files"
    )
    out: str | None = option(None, "JSON file (none: RUN/eval.json for a run)")
    config: EvalConfig = option(EvalConfig(), "evaluation", prefix="")


def _out_path(source: str, out: str | None) -> Path:
    from kdegen.runs import is_run_dir

    if not Path(source).exists():
        raise UsageError(
            f"no such run directory or file: {source}; give a run directory, an image "
            "folder or an .npz / .npy file"
        )
    if out is not None:
        return output_path(out, (".json",))
    if is_run_dir(source):
        return Path(source) / "eval.json"
    raise UsageError(f"{source} is not a run directory; give --out FILE.json for the results")


@command("evaluate")
def cmd_evaluate(argv: list[str]) -> int:
    """Evaluate samples against a reference (DDM, IS, FID, KID, Parzen, ...); JSON + table."""
    args = parse(EvaluateOptions, argv, "kdegen evaluate", cmd_evaluate.__doc__)
    out = _out_path(args.source, args.out)
    from kdegen import runs
    from kdegen.evaluation.evaluate import evaluate, table_rows, write_json

    source = (
        runs.sampler(args.source, args.config.device)
        if runs.is_run_dir(args.source)
        else args.source
    )
    result = evaluate(source, args.reference, args.config)
    data = result.to_dict()
    sizes = ", ".join(f"{v} {k}" for k, v in result.sizes.items())
    print(
        f"{args.source} against {args.reference} ({result.embedding['name']} embedding; "
        f"{sizes}; {result.seconds:.1f} s)"
    )
    print_table(table_rows(data))
    for name, reason in result.skipped.items():
        print(f"skipped {name}: {reason}")
    for name, note in result.notes.items():
        print(f"note on {name}: {note}")
    write_json(result, out)
    print(f"wrote {out}")
    return 0


@dataclass(frozen=True, kw_only=True)
class ReportOptions(Config):
    run: str = option(help="run directory", positional=True)


@command("report")
def cmd_report(argv: list[str]) -> int:
    """Write RUN/report.md: loss curves, the latest samples and the evaluation table."""
    args = parse(ReportOptions, argv, "kdegen report", cmd_report.__doc__)
    from kdegen.runs.report import write_report

    print(f"wrote {write_report(args.run)}")
    return 0


@dataclass(frozen=True, kw_only=True)
class CompareOptions(Config):
    runs: tuple[str, ...] = option(help="run directories", positional=True)
    metric: str = option("inception_score", "a number in metrics.jsonl")
    out: str = option(help="output .png (against steps and wall time)")


@command("compare")
def cmd_compare(argv: list[str]) -> int:
    """Plot a metric logged during training (--eval-every) for runs, grouped over seeds."""
    args = parse(CompareOptions, argv, "kdegen compare", cmd_compare.__doc__)
    out = output_path(args.out, (".png",))
    from kdegen.runs.compare import group_runs, plot_groups, read_curve

    groups = group_runs([read_curve(r, args.metric) for r in args.runs])
    plot_groups(groups, args.metric, out)
    rows = [("configuration", "runs", "step", f"{args.metric} (mean ± std)", "train s")]
    for g in groups:
        s = g.summary()
        rows.append(
            (
                s["label"],
                str(s["runs"]),
                str(s["step"]),
                f"{s['mean']:.4g} ± {s['std']:.2g}",
                f"{s['time']:.0f}",
            )
        )
    print_table([(*r[:-1], r[-1]) for r in rows])
    print(f"wrote {out}")
    return 0
