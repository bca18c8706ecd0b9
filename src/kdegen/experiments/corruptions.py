"""Corruptions (thesis Sec. 3.4.6): the DDM worsens steadily as real images are degraded.

The thesis takes 1,000 held-out ImageNet images as "samples", corrupts them with additive
Gaussian noise, uniform noise and Gaussian blur of rising strength, and scores them
against a test set: each step of sigma costs about 10-12 bits of the measure. Here the
samples are training images of mnist5k (1,000; 500 when quick), scored against the test
split in the classifier's logit space. Noise is added to pixels in [-1, 1] and clipped;
blur is a separable Gaussian of standard deviation sigma pixels with reflected edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kdegen.evaluation.metrics import ddm
from kdegen.experiments.base import (
    Outcome,
    Settings,
    embed_all,
    experiment,
    is_monotone,
    new_figure,
    reference_classifier,
    subset,
    write_outputs,
)
from kdegen.registry import Registry

Corruption = Callable[[Tensor, float, torch.Generator], Tensor]
CORRUPTIONS: Registry[Corruption] = Registry("corruption")
LEVELS = {
    "gaussian noise": (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0),  # std, in units of [-1, 1] pixels
    "uniform noise": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5),  # half-width a of U(-a, a)
    "gaussian blur": (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),  # std in pixels
}


@CORRUPTIONS.register("gaussian noise")
def gaussian_noise(x: Tensor, std: float, g: torch.Generator) -> Tensor:
    """x + N(0, std^2) per pixel, clipped to [-1, 1]."""
    return (x + std * torch.randn(x.shape, generator=g)).clamp(-1, 1)


@CORRUPTIONS.register("uniform noise")
def uniform_noise(x: Tensor, half_width: float, g: torch.Generator) -> Tensor:
    """x + U(-a, a) per pixel, clipped to [-1, 1]."""
    return (x + half_width * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(-1, 1)


@CORRUPTIONS.register("gaussian blur")
def gaussian_blur(x: Tensor, sigma: float, g: torch.Generator) -> Tensor:
    """Separable Gaussian blur of std ``sigma`` pixels per channel (reflected edges)."""
    if sigma <= 0:
        return x
    radius = min(math.ceil(3 * sigma), min(x.shape[2:]) - 1)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(rows, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _plot(rows: list[dict[str, Any]]) -> Any:
    fig, axes = new_figure(len(LEVELS), width=3.8)
    for ax, kind in zip(axes, LEVELS, strict=True):
        mine = [r for r in rows if r["corruption"] == kind]
        ax.errorbar(
            [r["strength"] for r in mine],
            [r["ddm_bits"] for r in mine],
            [r["stderr_bits"] for r in mine],
            marker="o",
        )
        ax.set(
            title=kind,
            xlabel="strength (std, half-width, sigma px)",
            ylabel="DDM (bits, lower is better)",
        )
        ax.grid(alpha=0.3)
    fig.suptitle("DDM of corrupted real images against the test split")
    fig.tight_layout()
    return fig


@experiment("corruptions", "thesis Sec. 3.4.6: DDM of noisy and blurred real images")
def corruptions(settings: Settings) -> Outcome:
    """Score corrupted training images against the test split (see the module)."""
    data = settings.data or "mnist5k"
    embedding, ref = reference_classifier(data, settings)
    test = embed_all(embedding, ref.test.images).features
    clean = subset(ref.train, 500 if settings.quick else 1000, settings.seed)
    rows: list[dict[str, Any]] = []
    monotone = {}
    for kind, levels in LEVELS.items():
        g = torch.Generator().manual_seed(settings.seed)
        for level in levels[:: 2 if settings.quick else 1]:
            corrupted = CORRUPTIONS.get(kind)(clean, level, g)
            r = ddm(test, embed_all(embedding, corrupted).features)
            rows.append(
                {
                    "corruption": kind,
                    "strength": level,
                    "ddm_bits": r.bits,
                    "stderr_bits": r.stderr_bits,
                    "ddm_nats": r.nats,
                }
            )
        mine = [r for r in rows if r["corruption"] == kind]
        strict = is_monotone([r["ddm_bits"] for r in mine])
        slack = is_monotone([r["ddm_bits"] for r in mine], slack=[r["stderr_bits"] for r in mine])
        monotone[kind] = "yes" if strict else "within 1 stderr" if slack else "no"
    summary = (
        "DDM worsens monotonically with strength: "
        + ", ".join(f"{k} {v}" for k, v in monotone.items())
        + f" ({len(clean)} corrupted {data} training images against its test split)."
    )
    meta = {
        "data": data,
        "samples": len(clean),
        "monotone": monotone,
        "embedding": embedding.describe(),
    }
    files = write_outputs(
        settings, "Corruptions (thesis Sec. 3.4.6)", rows, summary, meta, _plot(rows)
    )
    return Outcome(rows, summary, files)
