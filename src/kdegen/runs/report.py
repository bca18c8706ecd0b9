"""``report.md`` of a run: loss curves, diagnostics, the latest samples and evaluations.

So that a person can look rather than read numbers (issue 4): the losses logged in
``metrics.jsonl`` are plotted to ``report/losses.png``, the other numbers a method logs
while it trains (KDE-GAN's information ratio, KDE bandwidth and spread, reversal steps)
to ``report/diagnostics.png``, the metrics of ``--eval-every`` to
``report/evaluation.png``; the newest grid of ``samples/`` is shown (one is drawn from
the latest checkpoint when the run has none), and the table of ``eval.json`` (written by
``kdegen evaluate``) closes the page when there is one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from kdegen.errors import UsageError
from kdegen.evaluation.evaluate import table_rows
from kdegen.files import atomic_path, write_text_atomic
from kdegen.runs.directory import RunDir
from kdegen.runs.lifecycle import load_run, read_run_config

NOT_LOSSES = ("step", "it_per_s", "samples_per_s", "time", "eval_seconds")  # not curves
EVALUATION_MARK = "eval_seconds"  # a record of --eval-every
GRID_SAMPLES = 64


Series = dict[str, tuple[list[int], list[float]]]


def loss_series(records: list[dict[str, Any]]) -> Series:
    """Each logged number as (steps, values), in the order first logged."""
    series: Series = {}
    for r in records:
        for k, v in r.items():
            if k in NOT_LOSSES or not isinstance(v, int | float) or "step" not in r:
                continue
            steps, values = series.setdefault(k, ([], []))
            steps.append(int(r["step"]))
            values.append(float(v))
    return series


def split_series(records: list[dict[str, Any]]) -> tuple[Series, Series, Series]:
    """The logged numbers as (losses, diagnostics, evaluations): ``*_loss`` curves, the
    other numbers of the training log, and the metrics of ``--eval-every``."""
    evaluated = [r for r in records if EVALUATION_MARK in r]
    trained = [r for r in records if EVALUATION_MARK not in r]
    every = loss_series(trained)
    losses = {k: v for k, v in every.items() if k.endswith("_loss")}
    diagnostics = {k: v for k, v in every.items() if not k.endswith("_loss")}
    return losses, diagnostics, loss_series(evaluated)


def plot_losses(series: Series, path: Path) -> None:
    """One panel per series against the training step, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), dpi=100, squeeze=False)
    for ax, (name, (steps, values)) in zip(axes.flat, series.items(), strict=False):
        ax.plot(steps, values, lw=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(series) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def sample_grid(run: RunDir, out: Path) -> tuple[Path | None, int | None]:
    """The newest sample grid of the run, or one drawn now from its latest checkpoint.

    Returns:
        The picture (None for points of more than two dimensions) and its step.
    """
    grids = sorted(run.samples.glob("step-*.png"))
    if grids:
        step = int(grids[-1].stem.split("-")[1])
        return grids[-1], step
    from kdegen.images import save_samples

    loaded = load_run(run.path, "cpu")
    with torch.no_grad():
        samples = loaded.method.sample(GRID_SAMPLES, generator=torch.Generator().manual_seed(0))
    if samples.dim() == 2 and samples.shape[1] != 2:
        return None, loaded.step  # no picture of points in more than two dimensions
    save_samples(samples.cpu(), out)
    return out, loaded.step


def evaluation_section(run: RunDir) -> list[str]:
    """Markdown of ``eval.json``: what was compared and the table of metrics."""
    path = run.path / "eval.json"
    if not path.is_file():
        return ["No evaluation yet: run `kdegen evaluate " + str(run.path) + "`."]
    try:
        data = json.loads(path.read_text())
        rows = table_rows(data)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(
            f"{path} is not an evaluation written by kdegen ({e}); run `kdegen evaluate` again"
        ) from None
    emb, sizes = data.get("embedding", {}), data.get("sizes", {})
    what = emb.get("name", "?") + (f" {emb['features']}" if "features" in emb else "")
    step = data.get("generated", {}).get("step")
    lines = [
        f"Against `{data.get('reference')}` in the {what} embedding"
        + (f" ({emb['dim']}-d)" if "dim" in emb else "")
        + "; samples: "
        + ", ".join(f"{v} {k}" for k, v in sizes.items())
        + (f"; checkpoint of step {step}." if step is not None else "."),
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    skipped = data.get("skipped") or {}
    if skipped:
        lines += ["", "Skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "."]
    return lines


def write_report(path: str | Path) -> Path:
    """Write ``report.md`` (and ``report/losses.png``) into the run directory ``path``.

    Returns:
        The path of report.md.

    Raises:
        UsageError: ``path`` is not a run directory, or its eval.json is damaged.
    """
    run = RunDir(path)
    run.check_existing()
    config = read_run_config(run)
    figures = run.path / "report"
    losses, diagnostics, during = split_series(run.read_metrics())
    evaluation = evaluation_section(run)  # checked before anything is written
    figures.mkdir(exist_ok=True)
    grid, grid_step = sample_grid(run, figures / "samples.png")
    lines = [
        f"# Report: {run.path.name}",
        "",
        f"Method `{config.method}` on `{config.train.data}`, {config.train.steps} steps "
        "(options in `config.json`).",
        "",
        "## Losses",
        "",
    ]
    if losses:
        plot_losses(losses, figures / "losses.png")
        lines.append("![losses](report/losses.png)")
    else:
        lines.append("No losses logged yet (metrics.jsonl is empty).")
    for title, series, name in (
        ("Diagnostics", diagnostics, "diagnostics"),
        ("Evaluation during training", during, "evaluation"),
    ):
        if series:
            plot_losses(series, figures / f"{name}.png")
            lines += ["", f"## {title}", "", f"![{name}](report/{name}.png)"]
    picture = "no picture: the samples are points of more than two dimensions"
    if grid is not None:
        picture = f"![samples]({grid.relative_to(run.path).as_posix()})"
    lines += [
        "",
        f"## Samples (step {grid_step})",
        "",
        picture,
        "",
        "## Evaluation",
        "",
        *evaluation,
        "",
    ]
    out = run.path / "report.md"
    write_text_atomic(out, "\n".join(lines))
    return out
