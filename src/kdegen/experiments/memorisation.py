"""Does KDE-GAN copy its training set? (Generator Reversal, Appendix C, Table 1.)

The nearest-neighbour test: for generated samples, the mean (and std) Euclidean pixel
distance to the nearest training image. The paper reports 4.56 +- 0.34 ("normal") and
4.26 +- 0.37 ("kde") on MNIST and concludes that KDE-GAN does not simply memorise. Its
columns can be read two ways, so every reading is measured: a ``gan`` and a ``kdegan``
(kdegen's default) are trained with the same networks and schedule, and the table gives
the distance of samples of the gan, of the kdegan's generator driven by N(0, I), of the
kdegan driven by its KDE (how it samples), and of the held-out test images themselves
(real digits the training set has not seen: the distance a model that generalises
should show). The closest pairs of the KDE samples are drawn in ``closest.png``.

Beside the mean, each row gives the share of samples closer to the training set than 95%
of the test images are (the test distances' 5th percentile: 5% for data that copies no
more than unseen digits do) and the Inception Score of the samples under the data's
classifier; rows with the KDE's bandwidth multiplied by 2 and 4 show how the copying and
the quality trade off against the width of the KDE (the generator is the same).
A finished run under ``OUT/runs`` with the same configuration is reused.

kdegen's images span [-1, 1]; the table gives distances in [0, 1] pixel units (half
of them), the paper's scale. Full: mnist5k, 3,000 steps with the learning rate decaying
linearly (``make run``'s schedule), 5,000 samples against the 4,000 training images.
Quick: 400 steps and 1,000 samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from kdegen import runs
from kdegen.config import RunConfig
from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.evaluation.metrics import inception_score
from kdegen.evaluation.metrics.neighbours import nearest_neighbour_distance, save_nearest_pairs
from kdegen.experiments.base import (
    Outcome,
    Settings,
    embed_all,
    experiment,
    new_figure,
    reference_classifier,
    run_training,
    write_outputs,
)
from kdegen.methods import METHODS
from kdegen.nets.modes import evaluating, sizes
from kdegen.priors import KDE, Normal

PAPER = {"normal": (4.56, 0.34), "kde": (4.26, 0.37)}  # MNIST, [0, 1] pixels


@dataclass(frozen=True)
class Size:
    steps: int
    samples: int


FULL, QUICK = Size(3000, 5000), Size(400, 1000)
WIDER = (2.0, 4.0)  # KDE bandwidth multipliers of the trade-off rows


def _train(name: str, data: str, size: Size, settings: Settings) -> Any:
    cls = METHODS.get(name)
    train = run_training(data, size.steps, settings.seed, settings.device, batch_size=64)
    config = RunConfig(name, cls.Config(lr_decay="linear"), train)
    folder = settings.out / "runs" / name
    try:
        done = runs.load_run(folder, "cpu")
    except UsageError:
        done = None
    if (
        done is not None
        and done.step == size.steps
        and done.config == runs.resolve(config, runs.spec_of(load(data, "train")))
    ):
        return done.method
    run = runs.start(config, folder, force=True, progress=settings.progress)
    return runs.load_run(run.path, "cpu").method


def _draw(G: torch.nn.Module, prior: Any, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    with evaluating(G):
        return torch.cat([G(prior.sample(m, g)) for m in sizes(n, 500)])


@experiment(
    "memorisation",
    "Generator Reversal Table 1: nearest-neighbour distance of "
    "samples to the training set, gan vs kdegan",
)
def memorisation(settings: Settings) -> Outcome:
    """Train gan and kdegan; distance of their samples and of test images to the training set."""
    size = QUICK if settings.quick else FULL
    data = settings.data or "mnist5k"
    train, test = load(data, "train"), load(data, "test")
    if train.kind != "image":
        raise UsageError(f"memorisation measures pixel distances of images, not {data}")
    gan, kde = _train("gan", data, size, settings), _train("kdegan", data, size, settings)
    k = kde.generator().latent
    sets = {
        "gan (N(0, I))": gan.sample(size.samples, torch.Generator().manual_seed(settings.seed)),
        "kdegan, N(0, I)": _draw(kde.generator(), Normal(k), size.samples, settings.seed),
        "kdegan, its KDE": kde.sample(size.samples, torch.Generator().manual_seed(settings.seed)),
    }
    fitted = kde.kde
    for factor in WIDER:
        wide = KDE(fitted.bandwidth * factor, fitted.background).fit(fitted.codes)
        sets[f"kdegan, KDE at {factor:g}x its bandwidth"] = _draw(
            kde.generator(), wide, size.samples, settings.seed
        )
    sets["test images"] = test.images
    embedding, _ = reference_classifier(data, settings)
    found = {label: nearest_neighbour_distance(x.cpu(), train.images) for label, x in sets.items()}
    close = float(torch.quantile(found["test images"].distances.double(), 0.05))
    rows = []
    for label, images in sets.items():
        r = found[label]
        probs = embed_all(embedding, images.cpu()).probs
        assert probs is not None  # the classifier embedding classifies
        rows.append(
            {
                "samples": label,
                "n": len(images),
                "mean_distance": r.mean / 2,
                "std": r.std / 2,
                "median": float(r.distances.median()) / 2,
                "closer_than_95pct_test": float((r.distances < close).double().mean()),
                "inception_score": inception_score(probs).mean,
            }
        )
    rows.append(
        {
            "samples": "paper: normal",
            "n": None,
            "mean_distance": PAPER["normal"][0],
            "std": PAPER["normal"][1],
            "median": None,
            "closer_than_95pct_test": None,
            "inception_score": None,
        }
    )
    rows.append(
        {
            "samples": "paper: kde",
            "n": None,
            "mean_distance": PAPER["kde"][0],
            "std": PAPER["kde"][1],
            "median": None,
            "closer_than_95pct_test": None,
            "inception_score": None,
        }
    )
    save_nearest_pairs(
        sets["kdegan, its KDE"].cpu(),
        train.images,
        found["kdegan, its KDE"],
        settings.out / "closest.png",
    )
    ours = {label: r.mean / 2 for label, r in found.items()}
    summary = (
        f"Mean distance to the nearest of {len(train)} training images ([0, 1] pixels): "
        + ", ".join(f"{k} {v:.2f}" for k, v in ours.items())
        + f" (paper, MNIST: normal {PAPER['normal'][0]}, kde {PAPER['kde'][0]}). KDE samples "
        + (
            "lie closer to the training set than test images do: they copy more than unseen "
            "data would."
            if ours["kdegan, its KDE"] < ours["test images"]
            else "lie no closer to the training set than test images do: no sign of copying."
        )
        + " Closer than 95% of test images: "
        + ", ".join(
            f"{r['samples']} {r['closer_than_95pct_test']:.0%}"
            for r in rows
            if r["n"] is not None and r["samples"] != "test images"
        )
        + "; Inception Score: "
        + ", ".join(
            f"{r['samples']} {r['inception_score']:.2f}" for r in rows if r["n"] is not None
        )
        + "."
    )
    fig, (ax,) = new_figure(1, 7)
    for label, r in found.items():
        ax.hist((r.distances / 2).numpy(), bins=40, histtype="step", density=True, label=label)
    ax.set(xlabel="distance to the nearest training image ([0, 1] pixels)", ylabel="density")
    ax.legend(fontsize=8)
    meta = {"data": data, "steps": size.steps, "samples": size.samples, "train_size": len(train)}
    files = write_outputs(
        settings, "Memorisation (Generator Reversal Table 1)", rows, summary, meta, fig
    )
    return Outcome(rows, summary, [*files, settings.out / "closest.png"])
