"""The training heuristics of Basart's thesis (Sec. 2.4.1), measured.

The thesis reports that freezing layers of the discriminator "outperform[s] adding noise
or label flipping and can be augmented with label flipping", without numbers. Here the
plain non-saturating GAN and each heuristic (:mod:`kdegen.methods.heuristics`) train with
the same networks, data order and seeds:

- ``plain``: the non-saturating GAN;
- ``g-steps-2``: two generator updates per discriminator update (the first GAN paper);
- ``smooth-0.9``: one-sided label smoothing, real targets 0.9;
- ``flip-0.1``: each real target flipped to fake with probability 0.1;
- ``noise-0.2``: instance noise of std 0.2 on D's inputs, falling by e every fifth of
  training;
- ``freeze-1``: D's first weight layer (at its input) kept at its random initialisation;
- ``freeze-1+flip-0.1``: both.

On ``grid25`` (MLPs of 3 x 128 units, batches of 128, Adam with linear decay, as in
``mode-collapse``) each run draws 2,500 samples and counts the modes covered and the
share of high-quality samples (within 3 standard deviations of a centre). On ``mnist5k``
(DCGAN networks, batches of 64) the trainer scores 2,000 samples every ``every`` steps
under the dataset's evaluation classifier (``--eval-every``): Inception Score and FID.
The table gives means and standard deviations over seeds; the plot draws IS and FID
against steps (mean line, band of one std over seeds) and the grid25 modes covered.

Full: grid25 4,000 steps, mnist5k 2,000 steps evaluated every 250 on 2,000 samples, 3
seeds each. Quick (a check that it all runs; its numbers mean little): grid25 150 steps and
digits 60 steps (evaluated every 30 on 500 samples), 1 seed. Each run is a part
(``OUT/parts``): an interrupted run trains only what is missing, ``--jobs N`` trains N at
a time.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch

from kdegen import runs
from kdegen.config import RunConfig, from_dict
from kdegen.data import load
from kdegen.evaluation.metrics import mode_count
from kdegen.experiments.base import (
    Outcome,
    Part,
    Settings,
    draw_band,
    experiment,
    mean_std,
    run_parts,
    run_training,
    write_outputs,
)
from kdegen.methods import METHODS

NOISE_FOLDS = 5  # the instance noise falls by e this many times over a run
HEURISTICS: dict[str, dict[str, Any]] = {
    "plain": {},
    "g-steps-2": {"g_steps": 2},
    "smooth-0.9": {"label_smoothing": 0.9},
    "flip-0.1": {"label_flip": 0.1},
    "noise-0.2": {"instance_noise": 0.2},
    "freeze-1": {"freeze_d_layers": 1},
    "freeze-1+flip-0.1": {"freeze_d_layers": 1, "label_flip": 0.1},
}
POINTS_OPTIONS: dict[str, Any] = {"hidden": 128, "layers": 3, "lr_decay": "linear"}
SAMPLES = 2500


@dataclass(frozen=True)
class Size:
    """Per dataset (steps, evaluate every; 0 for the mixtures) and seeds."""

    schedule: dict[str, tuple[int, int]]
    batch: dict[str, int]
    seeds: int
    eval_n: int


FULL = Size({"grid25": (4000, 0), "mnist5k": (2000, 250)}, {"grid25": 128, "mnist5k": 64}, 3, 2000)
QUICK = Size({"grid25": (150, 0), "digits": (60, 30)}, {"grid25": 128, "digits": 32}, 1, 500)


def options_of(label: str, steps: int, points: bool) -> dict[str, Any]:
    """The gan options of heuristic ``label`` in a run of ``steps`` steps."""
    chosen = dict(HEURISTICS[label])
    if "instance_noise" in chosen:
        chosen["instance_noise_decay"] = steps / NOISE_FOLDS
    return {**(POINTS_OPTIONS if points else {}), **chosen}


def train_one(
    label: str,
    data: str,
    steps: int,
    every: int,
    batch: int,
    eval_n: int,
    seed: int,
    folder: str,
    device: str,
) -> dict[str, Any]:
    """Train one GAN with heuristic ``label``; its mode counts (mixtures) or its curves of
    Inception Score and FID over training (images). A part of run_parts."""
    mixture = load(data, "test")
    points = mixture.centres is not None
    more: dict[str, Any] = {"batch_size": batch, "log_every": max(1, steps // 10)}
    if not points:
        more.update(eval_every=every, eval_metrics="inception_score,fid", eval_n=eval_n)
    train = run_training(data, steps, seed, device, **more)
    cls = METHODS.get("gan")
    options: Any = from_dict(cls.Config, options_of(label, steps, points), label)
    run = runs.start(RunConfig("gan", options, train), folder, force=True, progress=False)
    if points:
        assert mixture.centres is not None and mixture.std is not None
        method = runs.load_run(run.path, "cpu").method
        samples = method.sample(SAMPLES, torch.Generator().manual_seed(seed)).cpu()
        count = mode_count(samples, mixture.centres, mixture.std)
        return {"modes": count.modes_hit, "of": count.modes, "high_quality": count.high_quality}
    curve: dict[str, list[float]] = {"steps": [], "inception_score": [], "fid": []}
    for record in run.read_metrics():
        if "eval_seconds" in record:
            curve["steps"].append(int(record["step"]))
            curve["inception_score"].append(float(record["inception_score"]))
            curve["fid"].append(float(record["fid"]))
    return curve


COLUMNS = ("modes_mean", "modes_std", "high_quality", "is_final", "is_final_std", "is_best",
           "fid_final", "fid_final_std")  # fmt: skip


def _row(data: str, label: str, found: list[dict[str, Any]]) -> dict[str, Any]:
    """A table row: mode counts for a mixture, scores for images (the other cells None)."""
    row: dict[str, Any] = {"data": data, "heuristic": label, "seeds": len(found)}
    row.update(dict.fromkeys(COLUMNS))
    if "modes" in found[0]:
        row["modes_mean"], row["modes_std"] = mean_std([r["modes"] for r in found])
        row["high_quality"] = statistics.fmean(r["high_quality"] for r in found)
    else:
        row["is_final"], row["is_final_std"] = mean_std([r["inception_score"][-1] for r in found])
        row["is_best"] = statistics.fmean(max(r["inception_score"]) for r in found)
        row["fid_final"], row["fid_final_std"] = mean_std([r["fid"][-1] for r in found])
    return row


def _summary(rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Does freezing beat noise and flipping (the thesis's finding)? Per dataset, by the
    mean over seeds of its main number (modes covered; final Inception Score)."""
    texts: list[str] = []
    findings: dict[str, Any] = {}
    for data in dict.fromkeys(r["data"] for r in rows):
        mine = {r["heuristic"]: r for r in rows if r["data"] == data}
        key = "modes_mean" if mine["plain"]["modes_mean"] is not None else "is_final"
        what = "modes covered" if key == "modes_mean" else "final Inception Score"
        score = {label: float(r[key]) for label, r in mine.items()}
        best_freeze = max(score["freeze-1"], score["freeze-1+flip-0.1"])
        beats = best_freeze > max(score["noise-0.2"], score["flip-0.1"])
        ranking = sorted(score, key=lambda k: -score[k])
        findings[f"{data}_freezing_beats_noise_and_flip"] = beats
        findings[f"{data}_ranking"] = ranking
        texts.append(
            f"{data} ({what}, mean over {mine['plain']['seeds']} seeds): "
            + ", ".join(f"{k} {score[k]:.3g}" for k in ranking)
            + f"; freezing {'beats' if beats else 'does not beat'} noise and flipping"
        )
    return "; ".join(texts) + ".", findings


def _plot(curves: dict[tuple[str, str], list[dict[str, Any]]], rows: list[dict[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = list(dict.fromkeys(d for d, _ in curves))
    mixtures = list(dict.fromkeys(r["data"] for r in rows if r["modes_mean"] is not None))
    panels = 2 * len(images) + len(mixtures)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), dpi=100, squeeze=False)
    ax_iter = iter(axes[0])
    for data in images:
        for metric in ("inception_score", "fid"):
            ax = next(ax_iter)
            for label in HEURISTICS:
                found = curves[(data, label)]
                steps = found[0]["steps"]
                per_step = [[c[metric][i] for c in found] for i in range(len(steps))]
                draw_band(ax, steps, per_step, label, alpha=0.15)
            ax.set(xlabel="training step", ylabel=metric.replace("_", " "), title=data)
            ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for data in mixtures:
        ax = next(ax_iter)
        mine = [r for r in rows if r["data"] == data]
        labels = [r["heuristic"] for r in mine]
        ax.bar(
            range(len(mine)), [r["modes_mean"] for r in mine], yerr=[r["modes_std"] for r in mine]
        )
        ax.set_xticks(range(len(mine)), labels, rotation=45, ha="right", fontsize=7)
        ax.set(ylabel="modes covered", title=data)
    fig.tight_layout()
    return fig


def _schedule(settings: Settings, size: Size) -> dict[str, tuple[int, int, int]]:
    """Dataset -> (steps, evaluate every, batch size)."""
    if settings.data is None:
        return {d: (*size.schedule[d], size.batch[d]) for d in size.schedule}
    points = load(settings.data, "test").centres is not None
    steps, every = size.schedule["grid25" if points else list(size.schedule)[-1]]
    batch = size.batch["grid25" if points else list(size.batch)[-1]]
    return {settings.data: (steps, every, batch)}


@experiment("heuristics", "the thesis's GAN training heuristics on grid25 and mnist5k, 3 seeds")
def heuristics(settings: Settings) -> Outcome:
    """Train the GAN with each heuristic on each dataset (see the module)."""
    size = QUICK if settings.quick else FULL
    parts: list[Part] = []
    schedule = _schedule(settings, size)
    for data, (steps, every, batch) in schedule.items():
        points = load(data, "test").centres is not None
        for label in HEURISTICS:
            for k in range(size.seeds):
                seed = settings.seed + k
                key = f"{data.split(':')[0]}-{label}-seed{seed}"
                folder = str(settings.out / "runs" / key)
                args = (
                    label,
                    data,
                    steps,
                    every,
                    batch,
                    size.eval_n,
                    seed,
                    folder,
                    settings.device,
                )
                spec = {
                    "data": data,
                    "options": options_of(label, steps, points),
                    "steps": steps,
                    "every": every,
                    "batch": batch,
                    "eval_n": size.eval_n,
                    "seed": seed,
                }
                parts.append(Part(key, train_one, args, spec))
    results = run_parts(settings, parts, "heuristics")
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in parts:
        grouped.setdefault((p.args[1], p.args[0]), []).append(results[p.key])
    rows = [_row(data, label, found) for (data, label), found in grouped.items()]
    curves = {k: v for k, v in grouped.items() if "steps" in v[0]}
    summary, findings = _summary(rows)
    meta = {
        "heuristics": HEURISTICS,
        "schedule": {d: {"steps": s, "every": e, "batch": b} for d, (s, e, b) in schedule.items()},
        "seeds": size.seeds,
        "noise_folds": NOISE_FOLDS,
        "curves": {f"{d}/{label}": v for (d, label), v in curves.items()},
        **findings,
    }
    title = "Training heuristics of the thesis (Sec. 2.4.1)"
    files = write_outputs(settings, title, rows, summary, meta, _plot(curves, rows))
    return Outcome(rows, summary, files)
