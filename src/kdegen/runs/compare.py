"""Comparing runs by a metric logged during training (``--eval-every``): ``kdegen compare``.

The look of Generator Reversal's Fig. 5: a metric against training steps and against
wall time, runs that differ only in their seed drawn as one line (the mean over seeds)
with a shaded band (one standard deviation), one line per configuration. Lines are
labelled by the options in which the configurations differ.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdegen.errors import UsageError
from kdegen.runs.directory import RunDir

# fields that say where or how a run was watched, not what was trained
IGNORED = {
    ("train", "seed"),
    ("train", "eval_every"),
    ("train", "eval_metrics"),
    ("train", "eval_n"),
    ("train", "log_every"),
    ("train", "sample_every"),
    ("train", "checkpoint_every"),
    ("train", "keep_checkpoints"),
    ("train", "grid_size"),
    ("train", "device"),
}


@dataclass
class Curve:
    """One run's values of a metric: the steps, training seconds and values."""

    run: Path
    config: dict[str, Any]
    steps: list[int]
    times: list[float]
    values: list[float]


@dataclass
class Group:
    """Runs of one configuration (other seeds), averaged at the steps they share."""

    label: str
    curves: list[Curve] = field(default_factory=list)

    def steps(self) -> list[int]:
        shared = set(self.curves[0].steps)
        for c in self.curves[1:]:
            shared &= set(c.steps)
        return sorted(shared)

    def at(self, what: str) -> list[list[float]]:
        """Per shared step, the runs' values (``what`` = "values") or times ("times")."""
        out = []
        for s in self.steps():
            out.append([getattr(c, what)[c.steps.index(s)] for c in self.curves])
        return out

    def summary(self) -> dict[str, Any]:
        """The last shared step: mean and std over the seeds of the value and the time."""
        steps = self.steps()
        last = self.at("values")[-1]
        times = self.at("times")[-1]
        return {
            "label": self.label,
            "runs": len(self.curves),
            "step": steps[-1],
            "mean": statistics.fmean(last),
            "std": _std(last),
            "time": statistics.fmean(times),
        }


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _flatten(config: dict[str, Any]) -> dict[tuple[str, str], Any]:
    flat: dict[tuple[str, str], Any] = {("method", ""): config.get("method")}
    for part in ("options", "train"):
        for k, v in (config.get(part) or {}).items():
            flat[(part, k)] = json.dumps(v, sort_keys=True)
    return flat


def read_curve(path: str | Path, metric: str) -> Curve:
    """The values of ``metric`` a run logged during training.

    Raises:
        UsageError: not a run directory, or no value of ``metric`` in its metrics.jsonl.
    """
    run = RunDir(path)
    run.check_existing()
    config = json.loads(run.config.read_text())
    steps, times, values = [], [], []
    for record in run.read_metrics():
        value = record.get(metric)
        if isinstance(value, int | float) and math.isfinite(value):
            steps.append(int(record["step"]))
            times.append(float(record.get("time", math.nan)))
            values.append(float(value))
    if not values:
        raise UsageError(
            f"{run.path} logged no {metric}; train it with --eval-every N (and --eval-metrics "
            f"including {metric}), or see which metrics its metrics.jsonl holds"
        )
    return Curve(run.path, config, steps, times, values)


def group_runs(curves: list[Curve]) -> list[Group]:
    """Runs whose configurations differ only in seed (and in what was logged) form a group;
    each group is labelled by the options that tell it from the others."""
    keys = [{k: v for k, v in _flatten(c.config).items() if k not in IGNORED} for c in curves]
    groups: list[tuple[dict[tuple[str, str], Any], Group]] = []
    for key, curve in zip(keys, curves, strict=True):
        for k, g in groups:
            if k == key:
                g.curves.append(curve)
                break
        else:
            groups.append((key, Group("", [curve])))
    for key, group in groups:
        group.label = _label(key, [k for k, _ in groups])
    return [g for _, g in groups]


def _label(key: dict[tuple[str, str], Any], keys: list[dict[tuple[str, str], Any]]) -> str:
    """The method (when the methods differ) and the options whose values differ among the
    configurations that have them."""
    method = ("method", "")
    parts = [str(key[method])] if len({str(k.get(method)) for k in keys}) > 1 else []
    for f in sorted(f for f in key if f != method):
        having = [k[f] for k in keys if f in k]
        if len(having) > 1 and len(set(having)) > 1:
            parts.append(f"{f[1]}={json.loads(key[f])}")
    return ", ".join(parts) or str(key[method])


def plot_groups(groups: list[Group], metric: str, out: Path) -> None:
    """Two panels, the metric against steps and against training seconds: a mean line per
    group and a band of one standard deviation over its seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for group in groups:
        values, times = group.at("values"), group.at("times")
        mean = [statistics.fmean(v) for v in values]
        std = [_std(v) for v in values]
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        label = f"{group.label} ({len(group.curves)} run{'s' * (len(group.curves) > 1)})"
        for ax, x in ((axes[0], group.steps()), (axes[1], [statistics.fmean(t) for t in times])):
            (line,) = ax.plot(x, mean, label=label)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training time (s)")
    for ax in axes:
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
