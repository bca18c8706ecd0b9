"""GENs Sec. 5.4 / Fig. 3: a 10-mode mixture-of-Gaussians target, with and without labels.

A GEN with a two-dimensional latent space is trained on mnist5k towards ten Gaussians on
a circle (:meth:`kdegen.priors.GaussianMixture.on_circle`), once without labels and once
with a fifth of the training set labelled (the paper: 10K of 50K), each labelled example
pulled to its class's mode. The held-out test images are encoded and plotted coloured by
digit, as in Fig. 3. Numbers: the share of test codes whose most probable mode is their
own class's (labelled run), and for both runs the cluster accuracy under the best
one-to-one matching of modes to digits (Hungarian assignment), which needs no labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment

from kdegen.data import load
from kdegen.experiments.autoencoders import fit_autoencoder
from kdegen.experiments.base import Outcome, Settings, experiment, new_figure, write_outputs
from kdegen.methods.gen import GENConfig
from kdegen.priors import GaussianMixture

MODES = 10
LABELLED_SHARE = 0.2


@dataclass(frozen=True)
class Size:
    """Training steps per run."""

    steps: int


FULL, QUICK = Size(4000), Size(400)


def matched_accuracy(modes: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Accuracy of the best one-to-one mapping of modes to labels (Hungarian assignment)."""
    counts = torch.zeros(k, k)
    counts.index_put_((modes, labels), torch.ones(len(modes)), accumulate=True)
    rows, cols = linear_sum_assignment(-counts.numpy())
    return float(counts[rows, cols].sum()) / len(modes)


def _run(labelled: int, settings: Settings, steps: int) -> tuple[dict[str, Any], torch.Tensor]:
    data = settings.data or "mnist5k"
    train, test = load(data, "train"), load(data, "test")
    assert train.labels is not None and test.labels is not None
    config = GENConfig(arch="fc", latent=2, target="mog", modes=MODES, labeled=labelled)
    model = fit_autoencoder(
        "gen",
        config,
        train.images,
        train.labels,
        steps,
        settings.seed,
        progress=settings.progress,
        num_classes=MODES,
    )
    codes = model.encode(test.images)
    assert isinstance(model.target, GaussianMixture)
    modes = model.target.responsibilities(codes.double()).argmax(1)
    row = {
        "labelled": labelled,
        "bandwidth": model.config.bandwidth,
        "own_mode": float((modes == test.labels).double().mean()),
        "matched_accuracy": matched_accuracy(modes, test.labels, MODES),
    }
    return row, codes


def _plot(
    runs: list[tuple[dict[str, Any], torch.Tensor]], labels: torch.Tensor, means: torch.Tensor
) -> Any:
    fig, axes = new_figure(len(runs), 4.5)
    for ax, (row, codes) in zip(axes, runs, strict=True):
        points = ax.scatter(
            codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=4, vmin=-0.5, vmax=9.5
        )
        ax.scatter(means[:, 0], means[:, 1], marker="x", color="black", s=30)
        for k, (x, y) in enumerate(means.tolist()):
            ax.annotate(str(k), (x * 1.15, y * 1.15), ha="center", va="center", fontsize=8)
        ax.set(title=f"{row['labelled']} labelled: own mode {row['own_mode']:.0%}", aspect="equal")
    fig.colorbar(points, ax=axes, ticks=range(10), label="digit")
    return fig


@experiment("gen-mog", "GENs Fig. 3: 10-mode mixture target with and without labels")
def gen_mog(settings: Settings) -> Outcome:
    """Train GENs towards a 10-mode mixture, unlabelled and semi-supervised (see the module)."""
    size = QUICK if settings.quick else FULL
    data = settings.data or "mnist5k"
    train, test = load(data, "train"), load(data, "test")
    if train.labels is None or test.labels is None:
        from kdegen.errors import UsageError

        raise UsageError(f"gen-mog needs labelled data with {MODES} classes; {data} has none")
    runs = [_run(n, settings, size.steps) for n in (0, int(LABELLED_SHARE * len(train)))]
    rows = [row for row, _ in runs]
    unsup, semi = rows
    summary = (
        f"Test codes of the GEN with {semi['labelled']} labelled examples sit at their "
        f"own digit's mode {semi['own_mode']:.1%} of the time (matched accuracy "
        f"{semi['matched_accuracy']:.1%}); without labels the best matching of modes to "
        f"digits reaches {unsup['matched_accuracy']:.1%} (chance 10%)."
    )
    means = GaussianMixture.on_circle(MODES).means.float()
    meta = {"data": data, "steps": size.steps, "modes": MODES}
    files = write_outputs(
        settings,
        "GENs Fig. 3: mixture-of-Gaussians target",
        rows,
        summary,
        meta,
        _plot(runs, test.labels, means),
    )
    return Outcome(rows, summary, files)
