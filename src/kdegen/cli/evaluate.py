"""``kdegen evaluate``, ``report`` and ``metrics``: judging a run by whole distributions."""

from __future__ import annotations

from pathlib import Path

from kdegen.cli.base import Parser, command, output_path, print_table
from kdegen.errors import UsageError


@command("metrics")
def cmd_metrics(argv: list[str]) -> int:
    """List the evaluation metrics and embeddings."""
    Parser(prog="kdegen metrics", description=cmd_metrics.__doc__).parse_args(argv)
    from kdegen.evaluation.embed import EMBEDDINGS
    from kdegen.evaluation.metrics import METRICS

    print_table([("metric", "needs", "description")]
                + [(n, ",".join(m.needs), m.description) for n, m in METRICS.items()])  # fmt: skip
    print(f"\nembeddings: {', '.join(EMBEDDINGS.names())}")
    return 0


def _evaluate_parser() -> Parser:
    p = Parser(prog="kdegen evaluate", description=cmd_evaluate.__doc__)
    p.add_argument("source", help="run directory (samples are drawn), image folder or .npz/.npy")
    p.add_argument(
        "--reference",
        required=True,
        help="dataset name (its test split; the train split where needed) or files",
    )
    p.add_argument(
        "--metrics",
        default="all",
        help="all (default), or names separated by commas (see `kdegen metrics`)",
    )
    p.add_argument(
        "--embedding",
        default=None,
        help="classifier (default for images), pixels (default for points), pca, "
        "inception (needs kdegen[fidelity])",
    )
    p.add_argument(
        "--features",
        default="logits",
        help="classifier layer: logits (default), prelogits, hypercolumns",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="samples drawn from a run (default 5000, or the reference's size "
        "if smaller); for files, a random subset",
    )
    p.add_argument(
        "--train-data", default=None, help="training data instead of the reference's train split"
    )
    p.add_argument("--out", default=None, help="JSON file (default RUN/eval.json for a run)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    p.add_argument("--batch-size", type=int, default=250, help="images per embedding batch")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p  # fmt: skip


def _out_path(source: str, out: str | None) -> Path:
    from kdegen.evaluation.sources import is_run_dir

    if out is not None:
        return output_path(out, (".json",))
    if is_run_dir(source):
        return Path(source) / "eval.json"
    raise UsageError(f"{source} is not a run directory; give --out FILE.json for the results")


@command("evaluate")
def cmd_evaluate(argv: list[str]) -> int:
    """Evaluate samples against a reference (DDM, IS, FID, KID, Parzen, ...); JSON + table."""
    args = _evaluate_parser().parse_args(argv)
    out = _out_path(args.source, args.out)
    from kdegen.evaluation.evaluate import EvalConfig, evaluate, table_rows, write_json

    config = EvalConfig(args.metrics, args.embedding, args.features, args.n, args.train_data,
                        args.seed, args.batch_size, args.device, not args.no_progress)  # fmt: skip
    result = evaluate(args.source, args.reference, config)
    data = result.to_dict()
    sizes = ", ".join(f"{v} {k}" for k, v in result.sizes.items())
    print(f"{args.source} against {args.reference} ({result.embedding['name']} embedding; "
          f"{sizes}; {result.seconds:.1f} s)")  # fmt: skip
    print_table(table_rows(data))
    for name, reason in result.skipped.items():
        print(f"skipped {name}: {reason}")
    for name, note in result.notes.items():
        print(f"note on {name}: {note}")
    write_json(result, out)
    print(f"wrote {out}")
    return 0


@command("report")
def cmd_report(argv: list[str]) -> int:
    """Write RUN/report.md: loss curves, the latest samples and the evaluation table."""
    p = Parser(prog="kdegen report", description=cmd_report.__doc__)
    p.add_argument("run", help="run directory")
    args = p.parse_args(argv)
    from kdegen.evaluation.report import write_report

    print(f"wrote {write_report(args.run)}")
    return 0


@command("compare")
def cmd_compare(argv: list[str]) -> int:
    """Plot a metric logged during training (--eval-every) for runs, grouped over seeds."""
    p = Parser(prog="kdegen compare", description=cmd_compare.__doc__)
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--metric", default="inception_score",
                   help="a number in metrics.jsonl (default inception_score)")  # fmt: skip
    p.add_argument("--out", required=True, help="output .png (against steps and wall time)")
    args = p.parse_args(argv)
    out = output_path(args.out, (".png",))
    from kdegen.evaluation.compare import group_runs, plot_groups, read_curve

    groups = group_runs([read_curve(r, args.metric) for r in args.runs])
    plot_groups(groups, args.metric, out)
    rows = [("configuration", "runs", "step", f"{args.metric} (mean ± std)", "train s")]
    for g in groups:
        s = g.summary()
        rows.append((s["label"], str(s["runs"]), str(s["step"]),
                     f"{s['mean']:.4g} ± {s['std']:.2g}", f"{s['time']:.0f}"))  # fmt: skip
    print_table([(*r[:-1], r[-1]) for r in rows])
    print(f"wrote {out}")
    return 0
