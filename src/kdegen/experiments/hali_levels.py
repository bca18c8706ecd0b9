"""What each level of hierarchical ALI keeps, against BiGAN (tutorial, the HALI slides;
Belghazi et al. 2018, Sec. 5).

The tutorial shows HALI's reconstructions through z1 staying close to the input and those
through z2 keeping what the digit is more than how it is drawn. Here ``bigan`` (latent 64)
and ``hali`` (z1 of 128, z2 of 64 dimensions) train with the same DCGAN networks, batches
of 64 and Adam 2e-4 on ``mnist5k``. For 1,000 test images each run reports the mean
squared error of the reconstructions (BiGAN's G(E(x)); HALI's through z1 and through z2)
and their class agreement: the share whose class the dataset's evaluation classifier
reads as the input's label (the classifier's accuracy on the test images themselves is
the ceiling). The plot shows inputs and reconstructions.

Full: 3,000 steps, 1 seed (a BiGAN step on mnist5k costs about three GAN steps). Quick:
digits, 60 steps, 1 seed. Each run is a part (``OUT/parts``): an interrupted run trains
only what is missing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kdegen import runs
from kdegen.config import RunConfig, from_dict
from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.experiments.base import (
    Outcome,
    Part,
    Settings,
    embed_all,
    experiment,
    reference_classifier,
    run_parts,
    run_training,
    write_outputs,
)
from kdegen.methods import METHODS
from kdegen.methods.bigan import BiGAN
from kdegen.methods.capabilities import ReconstructsLevels

BATCH = 64
SHOWN = 12
COMPARED: dict[str, dict[str, Any]] = {
    "bigan": {"latent": 64},
    "hali": {"latent": 64, "latent1": 128},
}


@dataclass(frozen=True)
class Size:
    data: str
    steps: int
    seeds: int
    test: int


FULL = Size("mnist5k", 3000, 1, 1000)
QUICK = Size("digits", 60, 1, 200)


def test_set(data: str, n: int) -> tuple[Tensor, Tensor]:
    """A seeded random ``n`` test images of ``data`` and their labels."""
    test = load(data, "test")
    if test.labels is None or len(test.shape) != 3:
        raise UsageError(f"hali-levels needs labelled images (mnist5k, digits), not {data}")
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:n]
    return test.images[order], test.labels[order]


def reconstructions(name: str, folder: str, x: Tensor) -> dict[str, Tensor]:
    """Reconstructions of ``x`` by the trained run in ``folder``, by level."""
    method = runs.load_run(folder, "cpu").method
    if isinstance(method, ReconstructsLevels):
        return {f"{name} via {k}": v for k, v in method.level_reconstructions(x).items()}
    assert isinstance(method, BiGAN)
    return {name: method.reconstruct(x)}  # G(E(x)) in eval mode, as the levels are


def train_and_measure(
    name: str, data: str, steps: int, seed: int, n_test: int, folder: str, settings: Settings
) -> dict[str, Any]:
    """Train one run; errors and class agreement of its reconstructions (a part)."""
    train = run_training(data, steps, seed, settings.device, batch_size=BATCH, log_every=100)
    options: Any = from_dict(METHODS.get(name).Config, COMPARED[name], name)
    runs.start(RunConfig(name, options, train), folder, force=True, progress=False)
    x, y = test_set(data, n_test)
    embedding, _ = reference_classifier(data, settings)
    out: dict[str, Any] = {"levels": {}, "shown": {}}
    for level, r in reconstructions(name, folder, x).items():
        read = embed_all(embedding, r.clamp(-1, 1)).probs
        assert read is not None
        out["levels"][level] = {
            "mse": float((r - x).pow(2).flatten(1).mean(1).mean()),
            "class_agreement": float((read.argmax(1) == y).double().mean()),
        }
        out["shown"][level] = r[:SHOWN].tolist()
    return out


def _plot(x: Tensor, shown: dict[str, Tensor]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("input", x), *shown.items()]
    fig, axes = plt.subplots(len(rows), SHOWN, figsize=(SHOWN * 0.9, len(rows) * 1.0), dpi=100)
    for i, (title, images) in enumerate(rows):
        for j in range(SHOWN):
            ax = axes[i][j]
            ax.imshow(images[j].squeeze(0).numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i][0].set_ylabel(title, fontsize=7, rotation=0, ha="right")
    fig.tight_layout()
    return fig


@experiment("hali-levels", "HALI's reconstructions through z1 and z2 against BiGAN's on mnist5k")
def hali_levels(settings: Settings) -> Outcome:
    """Train bigan and hali, measure what each reconstruction keeps (see the module)."""
    size = QUICK if settings.quick else FULL
    data = settings.data or size.data
    x, y = test_set(data, size.test)
    parts = []
    for name in COMPARED:
        for k in range(size.seeds):
            seed = settings.seed + k
            key = f"{data.split(':')[0]}-{name}-seed{seed}"
            folder = str(settings.out / "runs" / key)
            spec = {"data": data, "options": COMPARED[name], "steps": size.steps, "seed": seed,
                    "test": size.test, "batch": BATCH}  # fmt: skip
            args = (name, data, size.steps, seed, size.test, folder, settings)
            parts.append(Part(key, train_and_measure, args, spec))
    results = run_parts(settings, parts, "hali-levels")
    per_level: dict[str, list[dict[str, float]]] = {}
    shown: dict[str, Tensor] = {}
    for p in parts:
        for level, numbers in results[p.key]["levels"].items():
            per_level.setdefault(level, []).append(numbers)
            shown.setdefault(level, torch.tensor(results[p.key]["shown"][level]))
    embedding, _ = reference_classifier(data, settings)
    probs = embed_all(embedding, x).probs
    assert probs is not None
    ceiling = float((probs.argmax(1) == y).double().mean())
    rows: list[dict[str, Any]] = [
        {
            "reconstruction": level,
            "seeds": len(found),
            "mse": statistics.fmean(f["mse"] for f in found),
            "class_agreement": statistics.fmean(f["class_agreement"] for f in found),
        }
        for level, found in per_level.items()
    ]
    rows.append({"reconstruction": "test images (ceiling)", "seeds": 0, "mse": 0.0,
                 "class_agreement": ceiling})  # fmt: skip
    by = {r["reconstruction"]: r for r in rows}
    z1, z2, bi = by["hali via z1"], by["hali via z2"], by["bigan"]
    deeper_keeps_less = z2["mse"] > z1["mse"]
    verdict = "keeps less" if deeper_keeps_less else "does not keep less"
    summary = (
        f"On {data} ({size.steps} steps, {size.seeds} seeds), HALI's reconstructions through z1 "
        f"have squared error {z1['mse']:.3g} and class agreement {z1['class_agreement']:.1%}, "
        f"through z2 {z2['mse']:.3g} and {z2['class_agreement']:.1%}; BiGAN's {bi['mse']:.3g} "
        f"and {bi['class_agreement']:.1%} (the classifier reads {ceiling:.1%} of the test "
        f"images right). The deeper level {verdict} of the input than the first (the "
        "tutorial shows it keeping less)."
    )
    findings = {"deeper_level_keeps_less": deeper_keeps_less, "ceiling": ceiling}
    meta = {"data": data, "steps": size.steps, "seeds": size.seeds, "compared": COMPARED,
            "test_images": size.test, **findings}  # fmt: skip
    files = write_outputs(
        settings, "HALI's levels against BiGAN", rows, summary, meta, _plot(x[:SHOWN], shown)
    )
    return Outcome(rows, summary, files)
