"""Generator Reversal Sec. 2.2 (Figs. 1-2): reversal through a generator with random weights.

The paper reverses data through a DCGAN generator with random weights and finds
"reasonable pre-images": the error falls fast, digits are outlined after 5 steps and
clear after 400. Here a DCGAN generator of kdegen's family, re-initialised with
PyTorch's default layer initialisation (:func:`kdegen.analysis.reinitialize`), reverses
``n`` test images with kdegen's default reversal (normalized steps) for 400 steps, for
a range of latent dimensions k, beside a generator of the default k trained as a plain
GAN. Reported: the mean reconstruction loss (squared error summed over pixels) after 5,
20 and 400 steps and the share of 400-step reconstructions the evaluation classifier
reads as the original's digit (chance: 10%).

What decides the outcome is k against the number of pixels m. A generator's image is a
k-dimensional manifold of the m-dimensional pixel space (the paper's own Sec. 1 remark);
a trained generator lays it along the digits, a random one does not, so with k < m a
random generator cannot reach most digits whatever the descent does, while with k >= m
its range covers them. The plot and grid show both sides (docs/random-reversal.md
has the figures). Full: mnist5k (m = 784) and digits (m = 64), 256 images; quick:
digits, two latent sizes, 64 images and a 200-step GAN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kdegen.analysis import reinitialize
from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.experiments.base import (
    Outcome,
    Settings,
    embed_all,
    experiment,
    new_figure,
    reference_classifier,
    write_outputs,
)
from kdegen.images import save_grid
from kdegen.methods import DataSpec
from kdegen.methods.gan import GAN, GANConfig
from kdegen.reversal import ReversalConfig, invert
from kdegen.runs.training import train_in_memory

STEPS = (5, 20, 400)  # the paper's Fig. 2 columns
TRAINED_LATENT = 100  # kdegen's default DCGAN latent dimension for images


@dataclass(frozen=True)
class Size:
    """The datasets, the latent dimensions of the random generators, images and GAN steps."""

    latents: dict[str, tuple[int, ...]]
    n: int
    gan_steps: int


FULL = Size(
    {"mnist5k": (50, 100, 200, 400, 800, 1600), "digits": (16, 32, 64, 100, 200)}, 256, 2000
)
QUICK = Size({"digits": (16, 100)}, 64, 200)


def _generator(data: Any, latent: int, seed: int) -> nn.Module:
    """A DCGAN generator for ``data``'s images with PyTorch's default random weights."""
    spec = DataSpec(tuple(data.images.shape[1:]), data.num_classes, len(data))
    G = GAN(GANConfig(latent=latent), spec, torch.device("cpu")).generator()
    return reinitialize(G, seed).eval()


def _trained(data: Any, steps: int, seed: int, progress: bool) -> nn.Module:
    """A plain GAN of the default latent size trained ``steps`` steps on ``data``."""
    torch.manual_seed(seed)
    spec = DataSpec(tuple(data.images.shape[1:]), data.num_classes, len(data))
    gan = GAN(GANConfig(latent=TRAINED_LATENT), spec, torch.device("cpu"))
    train_in_memory(gan, data.images, None, steps, 64, seed, progress, desc="gan")
    return gan.generator().eval()


def _reverse(G: nn.Module, x: Tensor, steps: int, seed: int) -> tuple[list[float], Tensor]:
    """Mean loss after each step, and the reconstructions after ``steps`` steps."""
    r = invert(G, x, ReversalConfig(steps=steps), rng=torch.Generator().manual_seed(seed))
    assert r.reconstructions is not None
    return r.losses, r.reconstructions


def _row(
    data: str, pixels: int, name: str, latent: int, curve: list[float], accuracy: float
) -> dict[str, Any]:
    row: dict[str, Any] = {"data": data, "generator": name, "k": latent, "pixels": pixels}
    row.update({f"loss_{s}": curve[s - 1] for s in STEPS if s <= len(curve)})
    row["classifier_accuracy"] = accuracy
    return row


def _accuracy(embedding: Any, images: Tensor, labels: Tensor) -> float:
    """Share of ``images`` the evaluation classifier reads as ``labels``."""
    probs = embed_all(embedding, images).probs
    assert probs is not None  # the classifier embedding classifies
    return float((probs.argmax(1) == labels).double().mean())


def _dataset(
    data: str, size: Size, settings: Settings, ax: Any
) -> tuple[list[dict[str, Any]], Tensor]:
    """The rows, curves (drawn on ``ax``) and grid of one dataset."""
    test, train = load(data, "test"), load(data, "train")
    if test.labels is None:
        raise UsageError(
            f"random-reversal needs labelled data (the classifier's check); {data} has none"
        )
    x, labels = test.images[: size.n], test.labels[: size.n]
    pixels = math.prod(test.images.shape[1:])
    embedding, _ = reference_classifier(data, settings)
    rows: list[dict[str, Any]] = []
    shown = [x[:16]]
    for k in size.latents[data]:
        G = _generator(test, k, settings.seed)
        curve, recon = _reverse(G, x, STEPS[-1], settings.seed)
        rows.append(_row(data, pixels, "random", k, curve, _accuracy(embedding, recon, labels)))
        ax.semilogy(range(1, len(curve) + 1), curve, label=f"random k={k}")
        if k in (TRAINED_LATENT, max(size.latents[data])):  # Fig. 2's columns for these
            shown += [_reverse(G, x[:16], s, settings.seed)[1] for s in STEPS[:-1]] + [recon[:16]]
    G = _trained(train, size.gan_steps, settings.seed, settings.progress)
    curve, recon = _reverse(G, x, STEPS[-1], settings.seed)
    name = f"trained ({size.gan_steps} gan steps)"
    rows.append(
        _row(data, pixels, name, TRAINED_LATENT, curve, _accuracy(embedding, recon, labels))
    )
    ax.semilogy(range(1, len(curve) + 1), curve, "k--", label=f"trained k={TRAINED_LATENT}")
    shown.append(recon[:16])
    ax.set_title(f"{data} ({rows[0]['pixels']} pixels)")
    ax.set_xlabel("reversal step")
    ax.set_ylabel("mean reconstruction loss")
    ax.legend(fontsize=7)
    return rows, torch.cat(shown)


def _summary(rows: list[dict[str, Any]]) -> str:
    parts = []
    for data in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == data]
        random = [r for r in mine if r["generator"] == "random"]
        below = [r for r in random if r["k"] < r["pixels"]]
        above = [r for r in random if r["k"] >= r["pixels"]]
        trained = mine[-1]
        text = f"{data} ({mine[0]['pixels']} pixels): random generators with k < pixels "
        text += (
            (f"reach classifier accuracy {_span(below)}" if below else "were not tried")
            + ", with k >= pixels "
            + (f"{_span(above)}" if above else "not tried")
        )
        text += (
            f"; the trained generator (k = {trained['k']}) "
            f"{trained['classifier_accuracy']:.0%} (chance 10%)"
        )
        parts.append(text)
    return "; ".join(parts) + "."


def _span(rows: list[dict[str, Any]]) -> str:
    values = [r["classifier_accuracy"] for r in rows]
    low, high = min(values), max(values)
    return f"{low:.0%}" if low == high else f"{low:.0%}-{high:.0%}"


@experiment(
    "random-reversal",
    "Generator Reversal Figs. 1-2: reversal through random-weight generators by latent size",
)
def random_reversal(settings: Settings) -> Outcome:
    """Figs. 1-2 on mnist5k and digits (see the module)."""
    size = QUICK if settings.quick else FULL
    datasets = [settings.data] if settings.data else list(size.latents)
    if settings.data and settings.data not in size.latents:
        shape = load(settings.data, "test").images.shape[1:]
        if len(shape) != 3:
            raise UsageError(
                f"random-reversal reverses images through a DCGAN generator; {settings.data} "
                "holds points: give labelled images such as mnist5k or digits"
            )
        pixels = math.prod(shape)
        size = Size({settings.data: (TRAINED_LATENT, pixels)}, size.n, size.gan_steps)
    figure, axes = new_figure(len(datasets), 5.5)
    rows: list[dict[str, Any]] = []
    for data, ax in zip(datasets, axes, strict=True):
        mine, grid = _dataset(data, size, settings, ax)
        rows += mine
        save_grid(grid, settings.out / f"{data}-reconstructions.png", 16)
    figure.tight_layout()
    summary = _summary(rows)
    meta = {"steps": STEPS, "images": size.n, "gan_steps": size.gan_steps}
    title = "Reversal through random-weight generators (Generator Reversal Figs. 1-2)"
    files = write_outputs(settings, title, rows, summary, meta, figure)
    return Outcome(rows, summary, files)
