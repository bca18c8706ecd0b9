"""The experiment registry and what every experiment writes: a table (markdown, JSON), a plot.

An experiment is a function ``(Settings) -> Outcome`` registered by name with
:func:`experiment`; ``Settings.quick`` selects its small size. :func:`write_outputs`
puts ``table.md``, ``results.json`` and the figure into ``Settings.out``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kdegen import distributed
from kdegen.data import ImageData, load
from kdegen.errors import UsageError
from kdegen.evaluation.embed import Embedded, EmbedSettings, Reference, classifier_embedding
from kdegen.registry import Registry


@dataclass(frozen=True)
class Settings:
    """How to run an experiment.

    Attributes:
        out: folder for the table, JSON and plot (created).
        quick: the small version (fewer sizes, repeats and steps).
        data: dataset, or None for the experiment's own (mnist5k).
        seed: seed of every random choice.
        device: cpu, cuda, ... or auto.
        progress: show progress bars.
    """

    out: Path
    quick: bool = False
    data: str | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = True


@dataclass(frozen=True)
class Outcome:
    """What an experiment found: its table rows, a one-paragraph summary, the files written."""

    rows: list[dict[str, Any]]
    summary: str
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    """A registered experiment."""

    name: str
    run: Callable[[Settings], Outcome]
    description: str


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def experiment(name: str, description: str) -> Callable[
    [Callable[[Settings], Outcome]], Callable[[Settings], Outcome]
]:  # fmt: skip
    """Decorator registering an experiment function under ``name``."""

    def add(fn: Callable[[Settings], Outcome]) -> Callable[[Settings], Outcome]:
        EXPERIMENTS.add(name, Experiment(name, fn, description))
        return fn

    return add


def run_experiment(name: str, settings: Settings) -> Outcome:
    """Run the experiment ``name`` (unknown names: UsageError with suggestions)."""
    entry = EXPERIMENTS.get(name)
    existed = settings.out.exists()
    settings.out.mkdir(parents=True, exist_ok=True)
    try:
        return entry.run(settings)
    except UsageError:  # bad input leaves nothing behind: drop the folder made for it
        if not existed and not any(settings.out.iterdir()):
            settings.out.rmdir()
        raise


# ----- shared pieces -----------------------------------------------------------------


def reference_classifier(data: str, settings: Settings, features: str = "logits") -> Any:
    """The data's (cached) classifier embedding and its Reference (test + train splits)."""
    ref = Reference(data, load(data, "test"), load(data, "train"))
    device = distributed.pick_device(settings.device)
    embed = classifier_embedding(ref, EmbedSettings(features, 500, device, settings.progress))
    return embed, ref


def embed_all(embedding: Any, images: Tensor) -> Embedded:
    """Embed ``images`` with the experiments' batch size."""
    out: Embedded = embedding.embed(images, 500)
    return out


def subset(data: ImageData, n: int, seed: int) -> Tensor:
    """A seeded random ``n`` of the images of ``data`` (all of them when n >= len)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.images[order[: min(n, len(data))]]


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.5g}"
    return str(v)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows of equal keys as a markdown table."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_outputs(settings: Settings, title: str, rows: list[dict[str, Any]], summary: str,
                  meta: dict[str, Any], figure: Any) -> list[Path]:  # fmt: skip
    """Write table.md (title, summary, table), results.json and plot.png into ``out``."""
    out = settings.out
    table = f"# {title}\n\n{summary}\n\n{markdown_table(rows)}\n![plot](plot.png)\n"
    _atomic_text(out / "table.md", table)
    clean = json.loads(json.dumps({"title": title, "summary": summary, **meta, "rows": rows},
                                  default=float).replace("NaN", "null"))  # fmt: skip
    _atomic_text(out / "results.json", json.dumps(clean, indent=2) + "\n")
    figure.savefig(out / "plot.png")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return [out / "table.md", out / "results.json", out / "plot.png"]


def new_figure(panels: int, width: float = 4.5) -> tuple[Any, Any]:
    """A matplotlib figure with ``panels`` axes side by side (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width * panels, 3.6), dpi=100, squeeze=False)
    return fig, list(axes[0])


def is_monotone(
    values: Sequence[float], increasing: bool = True, slack: Sequence[float] | None = None
) -> bool:
    """Whether ``values`` never step the wrong way (by more than ``slack[i] + slack[i+1]``)."""
    sign = 1.0 if increasing else -1.0
    room = [0.0] * len(values) if slack is None else list(slack)
    steps = zip(itertools.pairwise(values), itertools.pairwise(room), strict=True)
    return all(sign * (b - a) >= -(ra + rb) for (a, b), (ra, rb) in steps)
