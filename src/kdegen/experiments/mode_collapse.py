"""Mode collapse on the 2-D mixtures (tutorial "Mode Collapse: Solutions"; Metz et al. 2017,
Fig. 2; Lin et al. 2018, Table 1 and Fig. 2; Generator Reversal, Sec. 4).

Every method of the GAN family trains on ``ring8`` (8 Gaussians on a circle) and
``grid25`` (25 Gaussians on a 5 x 5 grid) with the same networks (MLPs of 3 hidden layers
of 128 units, 2-D noise), minibatches of 128, Adam with a learning rate decaying linearly
to 0, and the same number of steps:

- ``gan``: the non-saturating GAN;
- ``wgan-gp``: the Wasserstein critic with gradient penalty (3 critic steps, penalty 1,
  learning rate 2e-3, beta2 0.9: the settings under which it covers grid25 in
  ``tests/test_modes.py``);
- ``unrolled``: the generator's loss through 5 unrolled Adam updates of D (Metz et al.);
- ``pacgan2``: the discriminator sees pairs of samples (Lin et al.'s PacGAN2);
- ``minibatch``: the GAN with minibatch discrimination, 5 kernels of dimension 3
  (Salimans et al. Sec. 3.2);
- ``bigan``: BiGAN / ALI, a discriminator on (x, z) pairs and an encoder;
- ``veegan``: VEEGAN, ALI's pairs with a reconstructor F trained to invert G in code space
  (Srivastava et al. 2017);
- ``kdegan``: noise from a KDE of the data's reversed codes (Generator Reversal, Alg. 2).

Each run draws 2,500 samples (VEEGAN's and PacGAN's count). A sample is of high quality
when it lies within 3 standard deviations of its nearest centre, and a mode is covered
when at least one high-quality sample falls on it (:func:`kdegen.evaluation.metrics.
mode_count`); ``modes_10hq`` counts the modes with at least 10 (a diffuse generator
scatters single samples over modes it does not really model), and the KL divergence
of the high-quality samples' mode histogram from uniform
tells how evenly the covered modes are filled. Full: 3 seeds, 3,000 steps on ring8 and
6,000 on grid25. Quick: ring8 only, 1 seed, 1,000 steps (half of the time is the
unrolled GAN's): most methods cover the
ring by then; the PacGAN2 question is about grid25 and needs the full run (or ``--data
grid25``). Each trained model is a part (``OUT/parts``): an interrupted run redoes only the
models it had not finished, and ``--jobs N`` trains N at a time. The runs are kept under
``OUT/runs``; the scatter plot shows each method's samples of the first seed over the data.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kdegen import runs
from kdegen.config import RunConfig, from_dict
from kdegen.data import ImageData, load
from kdegen.errors import UsageError
from kdegen.evaluation.metrics import mode_count
from kdegen.experiments.base import (
    Outcome,
    Part,
    Settings,
    experiment,
    run_parts,
    run_training,
    write_outputs,
)
from kdegen.methods import METHODS

SAMPLES = 2500
BATCH = 128
SOLID = 10  # high-quality samples of a "solidly" covered mode (a tenth of grid25's fair share)

# label -> (method, options beyond the shared ones)
METHOD_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "gan": ("gan", {}),
    "wgan-gp": (
        "gan",
        {"objective": "wgan-gp", "n_critic": 3, "gp_weight": 1.0, "lr_g": 2e-3, "beta2": 0.9},
    ),
    "unrolled": ("unrolled", {"unroll_steps": 5}),
    "pacgan2": ("pacgan", {"pack": 2}),
    "minibatch": ("gan", {"minibatch_discrimination": 5, "minibatch_dim": 3}),
    "bigan": ("bigan", {}),
    "veegan": ("veegan", {}),
    "kdegan": ("kdegan", {}),
}
SHARED: dict[str, Any] = {"hidden": 128, "layers": 3, "lr_decay": "linear"}


@dataclass(frozen=True)
class Size:
    """Seeds per method and training steps per dataset (the datasets run by default)."""

    seeds: int
    steps: dict[str, int]


SIZES = {False: Size(3, {"ring8": 3000, "grid25": 6000}), True: Size(1, {"ring8": 1000})}


@contextmanager
def _one_thread() -> Iterator[None]:
    """Small MLPs step fastest on one thread (and leave other cores to other work)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _datasets(settings: Settings) -> list[str]:
    if settings.data is None:
        return list(SIZES[settings.quick].steps)
    data = load(settings.data, "test")
    if data.centres is None or data.std is None:
        raise UsageError(f"mode-collapse needs a Gaussian mixture (ring8, grid25), not {data.name}")
    return [settings.data]


def train_and_count(
    data: str, label: str, seed: int, steps: int, folder: str, device: str, keep_samples: bool
) -> dict[str, Any]:
    """Train one method on one mixture and count its modes (a part of run_parts)."""
    start = time.perf_counter()
    name, extra = METHOD_OPTIONS[label]
    cls = METHODS.get(name)
    train = run_training(data, steps, seed, device, batch_size=BATCH, log_every=100)
    config = RunConfig(name, from_dict(cls.Config, {**SHARED, **extra}, name), train)
    run = runs.start(config, folder, force=True, progress=False)
    method = runs.load_run(run.path, "cpu").method
    mixture = load(data, "test")
    samples = method.sample(SAMPLES, torch.Generator().manual_seed(seed)).cpu()
    assert mixture.centres is not None and mixture.std is not None
    count = mode_count(samples, mixture.centres, mixture.std)
    result: dict[str, Any] = {
        "data": data,
        "method": label,
        "seed": seed,
        "modes": count.modes_hit,
        "of": count.modes,
        f"modes_{SOLID}hq": int((count.counts >= SOLID).sum()),
        "high_quality": count.high_quality,
        "kl_to_uniform": count.kl_to_uniform,
        "seconds": time.perf_counter() - start,
    }
    if keep_samples:
        result["samples"] = [[round(float(v), 4) for v in row] for row in samples.tolist()]
    return result


def _row(data: str, label: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    modes = [r["modes"] for r in results]
    n_modes = results[0]["of"]
    return {
        "data": data,
        "method": label,
        "seeds": len(results),
        "modes_mean": statistics.fmean(modes),
        "modes_min": min(modes),
        "modes_max": max(modes),
        "all_modes": f"{sum(m == n_modes for m in modes)}/{len(modes)}",
        f"modes_{SOLID}hq": statistics.fmean(r[f"modes_{SOLID}hq"] for r in results),
        "high_quality": statistics.fmean(r["high_quality"] for r in results),
        "kl_to_uniform": statistics.fmean(r["kl_to_uniform"] for r in results),
        "seconds": statistics.fmean(r["seconds"] for r in results),
    }


def _summary(rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    by_data: dict[str, list[str]] = {}
    for r in rows:
        by_data.setdefault(r["data"], []).append(f"{r['method']} {r['modes_mean']:.3g}")
    text = "Mean modes covered: " + "; ".join(f"{d}: {', '.join(p)}" for d, p in by_data.items())
    text += "."
    grid = {r["method"]: r for r in rows if r["data"].startswith("grid25")}
    if "gan" not in grid or "pacgan2" not in grid:
        text += " The tutorial's PacGAN2 figure is about grid25: run without --quick to see it."
        return text, {}
    gan, pac = grid["gan"], grid["pacgan2"]
    solid = f"modes_{SOLID}hq"
    seeds = pac["seeds"]
    pac_all, gan_all = (int(r["all_modes"].split("/")[0]) for r in (pac, gan))
    reproduced = pac_all == seeds and gan_all < seeds
    findings = {
        "pacgan2_all_25_seeds": pac_all,
        "gan_all_25_seeds": gan_all,
        "pacgan_claim_reproduced": reproduced,
    }
    text += (
        f" On grid25 PacGAN2 covered all 25 modes in {pac_all}/{seeds} seeds "
        f"(mean {pac['modes_mean']:.3g}, {pac[solid]:.3g} with {SOLID}+ samples, "
        f"{pac['high_quality']:.0%} high quality) and the plain GAN in {gan_all}/{seeds} "
        f"(mean {gan['modes_mean']:.3g}, {gan[solid]:.3g} with {SOLID}+ samples, "
        f"{gan['high_quality']:.0%} high quality): kdegen "
        f"{'reproduces' if reproduced else 'does not reproduce'} the tutorial's PacGAN2 "
        "figure (all 25 modes where the GAN misses some)."
    )
    return text, findings


def _plot(samples: dict[tuple[str, str], Tensor], mixtures: dict[str, ImageData]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets, labels = list(mixtures), list(METHOD_OPTIONS)
    size = (2.2 * (len(labels) + 1), 2.3 * len(datasets))
    fig, axes = plt.subplots(len(datasets), len(labels) + 1, squeeze=False, figsize=size, dpi=100)
    for i, data in enumerate(datasets):
        real = mixtures[data].images[:SAMPLES]
        lim = float(real.abs().max()) * 1.3
        panels = [("data", real), *((lab, samples[(data, lab)]) for lab in labels)]
        for ax, (title, points) in zip(axes[i], panels, strict=True):
            ax.scatter(real[:, 0], real[:, 1], s=1, c="0.8")
            if title != "data":
                ax.scatter(points[:, 0], points[:, 1], s=1, c="tab:blue", alpha=0.5)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[])
            ax.set_title(f"{data.split(':')[0]}: {title}", fontsize=8)
            ax.set_aspect("equal")
    fig.tight_layout()
    return fig


@experiment("mode-collapse", "modes covered on ring8 and grid25 by the GAN family, 3 seeds")
def mode_collapse(settings: Settings) -> Outcome:
    """Train each method on each mixture and count covered modes (see the module)."""
    size = SIZES[settings.quick]
    mixtures = {d: load(d, "test") for d in _datasets(settings)}
    parts: list[Part] = []
    for data in mixtures:
        steps = size.steps.get(data.split(":")[0], max(size.steps.values()))
        for label in METHOD_OPTIONS:
            for k in range(size.seeds):
                seed = settings.seed + k
                key = f"{data.split(':')[0]}-{label}-seed{seed}"
                folder = str(settings.out / "runs" / key)
                name, extra = METHOD_OPTIONS[label]
                spec = {
                    "data": data,
                    "method": name,
                    "options": {**SHARED, **extra},
                    "seed": seed,
                    "steps": steps,
                    "batch": BATCH,
                    "samples": SAMPLES,
                }
                args = (data, label, seed, steps, folder, settings.device, k == 0)
                parts.append(Part(key, train_and_count, args, spec))
    with _one_thread():
        results = run_parts(settings, parts, "mode-collapse")
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    shown: dict[tuple[str, str], Tensor] = {}
    for p in parts:  # parts run data by data, method by method, seed by seed
        r = dict(results[p.key])
        if "samples" in r:
            shown[(r["data"], r["method"])] = torch.tensor(r.pop("samples"))
        grouped.setdefault((r["data"], r["method"]), []).append(r)
    rows = [_row(data, label, found) for (data, label), found in grouped.items()]
    details = [r for found in grouped.values() for r in found]
    summary, findings = _summary(rows)
    meta = {
        "samples": SAMPLES,
        "batch_size": BATCH,
        "steps": size.steps,
        "shared": SHARED,
        "methods": {k: {"method": m, **o} for k, (m, o) in METHOD_OPTIONS.items()},
        "runs": details,
        **findings,
    }
    files = write_outputs(
        settings, "Mode collapse on ring8 and grid25", rows, summary, meta, _plot(shown, mixtures)
    )
    return Outcome(rows, summary, files)
