"""How fast KDE-GAN learns against the plain GAN (Generator Reversal, Fig. 5).

The paper's claim: KDE-GAN "reaches higher scores more quickly and retains this advantage
until the end of training", with the reversal steps per iteration (set by the MMD rule)
rising only slightly. Here ``gan``, ``kdegan`` (kdegen's default) and ``kdegan`` with
``--preset paper`` (the paper's scheme: cold starts, plain gradient descent at lr 1,
Claim 4's test as the stopping rule, the KDE of each minibatch's codes) train with the
same DCGAN networks, batches of 64 and Adam 2e-4 on each dataset, 3 seeds each, and every
``eval_every`` steps the trainer scores 2,000 samples under the dataset's evaluation
classifier (``--eval-every``): the Inception Score (10 classes on mnist5k, the 1,000
three-digit numbers on digits1000) and FID in the classifier's logit space. Wall time is
training time only (the evaluations are not counted).

The table gives, per dataset and method, the mean (and std) over seeds of the Inception
Score at a quarter, half, three quarters and the end of training, the final FID, seconds
per step and reversal steps per iteration, and for each seed the step and the training
time at which the run first reached the plain GAN's final score (mean over its seeds).
The summary says whether kdegan's mean score is at least gan's at every evaluation from
a quarter of training on. The plot has a row per dataset: the score against steps and
against training time (mean line, band of one std over seeds; the dashed line is the
score of 2,000 real test images) and the reversal steps per iteration.

Full: mnist5k 3,000 steps (evaluated every 250) and digits1000 2,000 (every 100), 3
seeds (``--jobs 2`` halves the time, but two runs then share the cores, so compare wall
times from a ``--jobs 1`` run). Quick: digits1000, 600 steps, 2 seeds. Each finished
run's curve is kept in ``OUT/parts``, so the same command after an interruption trains
only what is missing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from kdegen import runs
from kdegen.config import RunConfig, from_dict
from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.evaluation.metrics import inception_score
from kdegen.experiments.base import (
    Outcome,
    Part,
    Settings,
    draw_band,
    embed_all,
    experiment,
    mean_std,
    reference_classifier,
    run_parts,
    run_training,
    subset,
    write_outputs,
)
from kdegen.methods import METHODS
from kdegen.methods.kdegan import KDEGAN

BATCH = 64
EVAL_N = 2000
METRICS = "inception_score,fid"
# label -> (method, options)
COMPARED: dict[str, tuple[str, dict[str, Any]]] = {
    "gan": ("gan", {}),
    "kdegan": ("kdegan", {}),
    "kdegan-paper": ("kdegan", dict(KDEGAN.presets["paper"])),
}


@dataclass(frozen=True)
class Size:
    """Datasets with (steps, evaluate every), and seeds."""

    schedule: dict[str, tuple[int, int]]
    seeds: int


FULL = Size({"mnist5k": (3000, 250), "digits1000": (2000, 100)}, 3)
QUICK = Size({"digits1000": (600, 100)}, 2)


def train_curve(
    label: str,
    data: str,
    steps: int,
    every: int,
    seed: int,
    folder: str,
    device: str,
    progress: bool,
) -> dict[str, Any]:
    """Train one run with evaluation during training; its curves (a part of run_parts)."""
    name, options = COMPARED[label]
    cls = METHODS.get(name)
    train = run_training(
        data,
        steps,
        seed,
        device,
        batch_size=BATCH,
        eval_every=every,
        eval_metrics=METRICS,
        eval_n=EVAL_N,
    )
    config = RunConfig(name, from_dict(cls.Config, options, label), train)
    run = runs.start(config, folder, force=True, progress=progress)
    out: dict[str, Any] = {
        "steps": [],
        "time": [],
        "inception_score": [],
        "fid": [],
        "rev_step": [],
        "rev_steps": [],
    }
    for record in run.read_metrics():
        if "eval_seconds" in record:
            for key in ("time", "inception_score", "fid"):
                out[key].append(float(record[key]))
            out["steps"].append(int(record["step"]))
        elif "rev_steps" in record:
            out["rev_step"].append(int(record["step"]))
            out["rev_steps"].append(float(record["rev_steps"]))
    return out


def _parts(settings: Settings, size: Size) -> list[Part]:
    parts = []
    for data, (steps, every) in _schedule(settings, size).items():
        for label in COMPARED:
            for k in range(size.seeds):
                seed = settings.seed + k
                key = f"{data.split(':')[0]}-{label}-seed{seed}"
                folder = str(settings.out / "runs" / key)
                args = (label, data, steps, every, seed, folder, settings.device, False)
                spec = {
                    "label": label,
                    "options": COMPARED[label][1],
                    "data": data,
                    "steps": steps,
                    "every": every,
                    "seed": seed,
                    "batch": BATCH,
                    "eval_n": EVAL_N,
                }
                parts.append(Part(key, train_curve, args, spec))
    return parts


def _schedule(settings: Settings, size: Size) -> dict[str, tuple[int, int]]:
    if settings.data is None:
        return size.schedule
    if load(settings.data, "test").kind != "image":
        raise UsageError(f"learning-speed compares Inception Scores of images, not {settings.data}")
    steps, every = max(size.schedule.values())
    return {settings.data: (steps, every)}


def _at(curve: dict[str, Any], step: int) -> float:
    return float(curve["inception_score"][curve["steps"].index(step)])


def _first_reaching(curve: dict[str, Any], target: float) -> tuple[int | None, float | None]:
    for step, t, v in zip(curve["steps"], curve["time"], curve["inception_score"], strict=True):
        if v >= target:
            return step, t
    return None, None


def _rows(
    curves: dict[tuple[str, str], list[dict[str, Any]]], real: dict[str, float]
) -> list[dict[str, Any]]:
    rows = []
    for data in dict.fromkeys(d for d, _ in curves):
        gan_final = statistics.fmean(c["inception_score"][-1] for c in curves[(data, "gan")])
        for label in COMPARED:
            runs_ = curves[(data, label)]
            steps = runs_[0]["steps"]
            marks = [steps[max(0, math.ceil(len(steps) * q) - 1)] for q in (0.25, 0.5, 0.75, 1)]
            row: dict[str, Any] = {"data": data, "method": label, "seeds": len(runs_)}
            for q, s in zip(("q1", "q2", "q3", "end"), marks, strict=True):
                m, sd = mean_std([_at(c, s) for c in runs_])
                row[f"is_{q}"] = f"{m:.4g} ± {sd:.2g} (step {s})"
            row["fid_end"] = statistics.fmean(c["fid"][-1] for c in runs_)
            row["s_per_step"] = statistics.fmean(c["time"][-1] / c["steps"][-1] for c in runs_)
            rev = [statistics.fmean(c["rev_steps"]) for c in runs_ if c["rev_steps"]]
            row["rev_steps_per_it"] = statistics.fmean(rev) if rev else 0.0
            reached = [_first_reaching(c, gan_final) for c in runs_]
            row["steps_to_gan_final"] = "/".join(str(s) if s else "-" for s, _ in reached)
            row["seconds_to_gan_final"] = "/".join(f"{t:.0f}" if t else "-" for _, t in reached)
            rows.append(row)
        rows.append(
            {
                "data": data,
                "method": "real images",
                "seeds": 0,
                "is_q1": "",
                "is_q2": "",
                "is_q3": "",
                "is_end": f"{real[data]:.4g}",
                "fid_end": None,
                "s_per_step": None,
                "rev_steps_per_it": None,
                "steps_to_gan_final": "",
                "seconds_to_gan_final": "",
            }
        )
    return rows


def _claim(curves: dict[tuple[str, str], list[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """Whether kdegan's mean score is at least gan's at every evaluation from a quarter on."""
    texts, findings = [], {}
    for data in dict.fromkeys(d for d, _ in curves):
        gan, kde = curves[(data, "gan")], curves[(data, "kdegan")]
        steps = gan[0]["steps"]
        late = [s for s in steps if s >= steps[-1] / 4]
        ahead = [
            s
            for s in late
            if statistics.fmean(_at(c, s) for c in kde) >= statistics.fmean(_at(c, s) for c in gan)
        ]
        paper = curves[(data, "kdegan-paper")]
        paper_ahead = [
            s
            for s in late
            if statistics.fmean(_at(c, s) for c in paper)
            >= statistics.fmean(_at(c, s) for c in gan)
        ]
        holds = len(ahead) == len(late)
        findings[data] = {
            "kdegan_at_least_gan": f"{len(ahead)}/{len(late)}",
            "paper_at_least_gan": f"{len(paper_ahead)}/{len(late)}",
            "holds": holds,
        }
        texts.append(
            f"{data}: kdegan's mean Inception Score is at least gan's at {len(ahead)} of the "
            f"{len(late)} evaluations from a quarter of training on "
            f"({'the claim holds' if holds else 'the claim does not hold'}); the paper's "
            f"scheme at {len(paper_ahead)} of {len(late)}"
        )
    return "; ".join(texts) + ".", findings


def _real_scores(datasets: list[str], settings: Settings) -> dict[str, float]:
    out = {}
    for data in datasets:
        embedding, ref = reference_classifier(data, settings)
        probs = embed_all(embedding, subset(ref.test, EVAL_N, settings.seed)).probs
        assert probs is not None  # the classifier embedding classifies
        out[data] = inception_score(probs).mean
    return out


def _plot(curves: dict[tuple[str, str], list[dict[str, Any]]], real: dict[str, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(d for d, _ in curves))
    fig, axes = plt.subplots(
        len(datasets), 3, figsize=(15, 3.8 * len(datasets)), dpi=100, squeeze=False
    )
    for row, data in zip(axes, datasets, strict=True):
        for label in COMPARED:
            runs_ = curves[(data, label)]
            steps = runs_[0]["steps"]
            values = [[c["inception_score"][i] for c in runs_] for i in range(len(steps))]
            times = [statistics.fmean(c["time"][i] for c in runs_) for i in range(len(steps))]
            for ax, x in ((row[0], steps), (row[1], times)):
                line = draw_band(ax, x, values, label, alpha=0.2)
            if runs_[0]["rev_steps"]:
                row[2].plot(
                    runs_[0]["rev_step"],
                    [
                        statistics.fmean(v)
                        for v in zip(*(c["rev_steps"] for c in runs_), strict=True)
                    ],
                    label=label,
                    color=line.get_color(),
                )
        for ax, xlabel in zip(
            row, ("training step", "training time (s)", "training step"), strict=True
        ):
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        for ax in row[:2]:
            ax.axhline(real[data], color="0.5", ls="--", lw=1)
            ax.set_ylabel(f"Inception Score ({data})")
        row[2].set_ylabel("reversal steps per iteration")
        row[0].legend(fontsize=8)
        row[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


@experiment(
    "learning-speed",
    "Generator Reversal Fig. 5: Inception Score over training, gan vs kdegan vs the paper's scheme",
)
def learning_speed(settings: Settings) -> Outcome:
    """Train gan, kdegan and kdegan --preset paper with evaluation during training."""
    size = QUICK if settings.quick else FULL
    parts = _parts(settings, size)
    results = run_parts(settings, parts, "learning-speed")
    curves: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in parts:
        curves.setdefault((p.spec["data"], p.spec["label"]), []).append(results[p.key])
    real = _real_scores(list(dict.fromkeys(d for d, _ in curves)), settings)
    summary, findings = _claim(curves)
    meta = {
        "schedule": _schedule(settings, size),
        "seeds": size.seeds,
        "batch_size": BATCH,
        "eval_n": EVAL_N,
        "methods": {k: {"method": m, **o} for k, (m, o) in COMPARED.items()},
        "real_inception_score": real,
        "findings": findings,
        "curves": {f"{d}/{lab}": c for (d, lab), c in curves.items()},
    }
    files = write_outputs(
        settings,
        "Learning speed (Generator Reversal Fig. 5)",
        _rows(curves, real),
        summary,
        meta,
        _plot(curves, real),
    )
    return Outcome(_rows(curves, real), summary, files)
