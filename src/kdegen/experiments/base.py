"""The experiment registry and what every experiment writes: a table (markdown, JSON), a plot.

An experiment is a function ``(Settings) -> Outcome`` registered by name with
:func:`experiment`; ``Settings.quick`` selects its small size. :func:`write_outputs`
puts ``table.md``, ``results.json`` and the figure into ``Settings.out``.

Experiments that train many independent models (gen-entropy's 15) hand them to
:func:`run_parts`: each finished model's measurements are saved at once under
``out/parts/`` (atomically), so an interrupted run restarted with the same settings
redoes only the models it had not finished, and ``Settings.jobs`` trains several at a
time, each in its own process.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import statistics
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm  # type: ignore[import-untyped]

from kdegen import distributed
from kdegen.config import Config, TrainConfig, option
from kdegen.data import ImageData, load
from kdegen.errors import UsageError, show_warning
from kdegen.evaluation.embed import Embedded, EmbedSettings, Reference, classifier_embedding
from kdegen.files import atomic_path, write_text_atomic
from kdegen.registry import Registry


@dataclass(frozen=True)
class Settings(Config):
    """How to run an experiment (the options of ``kdegen experiment NAME``)."""

    out: Path = option(help="folder for the table, JSON and plot (created)")
    quick: bool = option(False, "the small version (fewer sizes, repeats and steps)")
    data: str | None = option(None, "dataset (none: the experiment's own, mostly mnist5k)")
    seed: int = option(0, "seed of every random choice")
    device: str = option("auto", "cpu, cuda, cuda:N, mps or auto")
    progress: bool = option(True, "show progress bars")
    jobs: int = option(
        1,
        "models trained at once, one process each, where an experiment trains many "
        "independent ones (gen-entropy, mode-collapse, learning-speed)",
        ge=1,
    )


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


def experiment(
    name: str, description: str
) -> Callable[[Callable[[Settings], Outcome]], Callable[[Settings], Outcome]]:
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


def run_training(data: str, steps: int, seed: int, device: str, **more: Any) -> TrainConfig:
    """The trainer config of a run inside an experiment: no sample grid or checkpoint but
    the last (an experiment reruns a part rather than resuming it); ``more`` sets the rest."""
    return TrainConfig(
        data=data,
        steps=steps,
        seed=seed,
        device=device,
        sample_every=steps,
        checkpoint_every=steps,
        keep_checkpoints=0,
        **more,
    )


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


@dataclass(frozen=True)
class Part:
    """One independent unit of an experiment, e.g. one model trained and measured.

    Attributes:
        key: its name, unique in the experiment (the file ``out/parts/KEY.json``).
        fn: a module-level function (it may run in another process) returning a dict of
            JSON values.
        args: the arguments of ``fn`` (picklable).
        spec: JSON values that must match for a saved result to be reused (steps, seed,
            config, data, ...).
    """

    key: str
    fn: Callable[..., dict[str, Any]]
    args: tuple[Any, ...]
    spec: dict[str, Any]


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


def _saved_part(path: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("spec") != _canonical(spec):
        return None
    result = saved.get("result")
    return result if isinstance(result, dict) else None


def _worker_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    warnings.showwarning = show_warning  # one line, as in the command line's process


def run_parts(settings: Settings, parts: Sequence[Part], desc: str) -> dict[str, dict[str, Any]]:
    """Run ``parts`` (reusing saved ones), ``settings.jobs`` at a time; results by key.

    A part whose ``out/parts/KEY.json`` holds a result of the same spec is not run again;
    every other part's result is written there as soon as it finishes. With ``jobs > 1``
    the parts run in a pool of spawned processes, each with its share of torch's threads;
    a part's result does not depend on which process ran it (its seed is in its args).
    """
    keys = [p.key for p in parts]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run_parts: duplicate part keys in {keys}")
    folder = settings.out / "parts"
    done: dict[str, dict[str, Any]] = {}
    for p in parts:
        saved = _saved_part(folder / f"{p.key}.json", p.spec)
        if saved is not None:
            done[p.key] = saved
    if done:
        print(
            f"{desc}: reusing {len(done)} of {len(parts)} finished parts in {folder}",
            file=sys.stderr,
        )
    todo = [p for p in parts if p.key not in done]
    folder.mkdir(parents=True, exist_ok=True)

    def finish(p: Part, result: dict[str, Any]) -> None:
        record = {"spec": _canonical(p.spec), "result": _canonical(result)}
        write_text_atomic(folder / f"{p.key}.json", json.dumps(record, indent=1) + "\n")
        done[p.key] = record["result"]

    bar = tqdm(total=len(todo), desc=desc, unit="part", disable=not settings.progress)
    with bar:
        if settings.jobs == 1 or len(todo) <= 1:
            for p in todo:
                finish(p, p.fn(*p.args))
                bar.update()
        else:
            workers = min(settings.jobs, len(todo))
            threads = max(1, torch.get_num_threads() // workers)
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, context, _worker_threads, (threads,)) as pool:
                futures = {pool.submit(p.fn, *p.args): p for p in todo}
                try:
                    for future in as_completed(futures):
                        finish(futures[future], future.result())
                        bar.update()
                except BaseException:  # a failed part stops the rest (finished ones stay)
                    for future in futures:
                        future.cancel()
                    raise
    return {k: done[k] for k in keys}


def write_outputs(
    settings: Settings,
    title: str,
    rows: list[dict[str, Any]],
    summary: str,
    meta: dict[str, Any],
    figure: Any,
) -> list[Path]:
    """Write table.md (title, summary, table), results.json and plot.png into ``out``."""
    out = settings.out
    table = f"# {title}\n\n{summary}\n\n{markdown_table(rows)}\n![plot](plot.png)\n"
    write_text_atomic(out / "table.md", table)
    clean = json.loads(
        json.dumps(
            {"title": title, "summary": summary, **meta, "rows": rows}, default=float
        ).replace("NaN", "null")
    )
    write_text_atomic(out / "results.json", json.dumps(clean, indent=2) + "\n")
    with atomic_path(out / "plot.png") as tmp:
        figure.savefig(tmp, format="png")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return [out / "table.md", out / "results.json", out / "plot.png"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the values of the seeds (std 0 for one)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def draw_band(
    ax: Any, x: Sequence[float], per_point: Sequence[Sequence[float]], label: str, alpha: float
) -> Any:
    """The mean over seeds at each x as a line, with a band of one standard deviation in
    its colour; ``per_point[i]`` holds the seeds' values at ``x[i]``. Returns the line."""
    stats = [mean_std(v) for v in per_point]
    (line,) = ax.plot(x, [m for m, _ in stats], label=label)
    low, high = [m - s for m, s in stats], [m + s for m, s in stats]
    ax.fill_between(x, low, high, color=line.get_color(), alpha=alpha, lw=0)
    return line


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
