"""The latent-space analyses of Generator Reversal, as one report with plots.

* Fig. 3: t-SNE of reversed codes coloured by label for the trained generator and the
  same network with random weights, with the ratio of mean between-centroid distance to
  mean within-class distance (the paper: 1.9 trained, 0.1 random), and the same ratio
  for N(0, I) codes that carry nothing of their images (``ratio_noise_*``): with about
  100 codes a class it is about 0.1, the paper's random-weight value.
* Fig. 10: holdout log-likelihood of reversed test codes under a KDE of training codes,
  against the KDE bandwidth.
* Figs. 1-2: reconstruction loss against steps for the random-weight generator, and a grid
  of reconstructions after 5, 20 and ``curve_steps`` steps. They show digits only when
  the latent dimension reaches the number of pixels (``kdegen experiment
  random-reversal`` measures this); with the run's smaller k they stay noise.
* Fig. 4: MMD^2 between real and generated codes against reversal steps.

The random-weight generator is the run's network re-initialised with PyTorch's default
layer initialisation (DCGAN's N(0, 0.02) weights make an untrained generator's output
nearly constant, which says nothing about the architecture).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kdegen import latent
from kdegen.config import replace, to_dict
from kdegen.errors import UsageError
from kdegen.files import atomic_path
from kdegen.images import save_grid
from kdegen.priors import Prior, select_bandwidth
from kdegen.reversal import ReversalConfig, invert


def _plot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reinitialize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Reset every layer of ``module`` to PyTorch's default random initialisation."""
    torch.manual_seed(seed)
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return module


def tsne(codes: Tensor, seed: int = 0) -> np.ndarray:
    """2-D t-SNE embedding of codes (scikit-learn)."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(codes) - 1) // 3)))
    model = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return model.fit_transform(codes.double().numpy())


def analyze_latent(
    generator: nn.Module,
    random_generator: nn.Module,
    images: Tensor,
    labels: Tensor | None,
    train_codes: Tensor,
    config: ReversalConfig,
    out: Path,
    *,
    prior: Prior | None = None,
    curve_steps: int = 400,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Run every analysis and write its plots into ``out``; returns the numbers.

    Args:
        generator: the run's generator.
        random_generator: the same architecture with fresh random weights.
        images: data to reverse (N, *shape), on the generators' device.
        labels: (N,) labels for colouring and the cluster ratio, or None.
        train_codes: codes of training data for the holdout KDE (e.g. the code bank).
        config: the reversal's options.
        out: an existing folder.
        prior: the distribution driving the trained generator (init="prior").
        curve_steps: length of the loss and MMD curves.
        batch_size: reversal batch size.
        seed: seed of initial codes and t-SNE.
    """
    summary: dict[str, Any] = {"n": len(images), "reversal": to_dict(config)}
    trained, random = (
        latent.reverse_images(
            net, images, config, prior=prior, batch_size=batch_size, seed=seed, progress=True
        )
        for net in (generator, random_generator)
    )
    for name, codes in (("trained", trained.codes), ("random-weight", random.codes)):
        _check_spread(codes, name)
    summary["mean_loss_trained"] = float(trained.loss.mean())
    summary["mean_loss_random"] = float(random.loss.mean())
    if labels is not None:
        summary.update(_structure(trained.codes, random.codes, labels.cpu(), out, seed))
    summary.update(_holdout(train_codes.cpu(), trained.codes, out))
    summary.update(
        _random_reconstruction(random_generator, images[:64], config, prior, curve_steps, out)
    )
    summary.update(
        _mmd_curve(generator, images[: min(len(images), 128)], config, prior, curve_steps, out)
    )
    return summary


def _check_spread(codes: Tensor, name: str) -> None:
    """Refuse codes that are all equal or not finite (t-SNE and the ratios need spread)."""
    if not bool(torch.isfinite(codes).all()):
        raise UsageError(
            f"reversal through the {name} generator gave NaN or infinite codes; "
            "use a smaller --lr or --optimizer normalized"
        )
    if len(codes) > 1 and float(codes.std(0).max()) == 0.0:
        raise UsageError(
            f"every code reversed through the {name} generator is the same (its "
            "gradient at the initial codes is zero, e.g. --init zeros before a "
            "layer without bias); use --init prior or --init normal"
        )


def _structure(
    trained: Tensor, random: Tensor, labels: Tensor, out: Path, seed: int
) -> dict[str, Any]:
    plt = _plot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), dpi=100)
    result: dict[str, Any] = {}
    # codes that say nothing of their images, labelled alike: the ratio's floor (~0.1 for
    # 100 codes a class in 100 dimensions, as the paper's random-weight generator gives)
    noise = torch.randn(trained.shape, generator=torch.Generator().manual_seed(seed))
    result["ratio_noise_codes"] = latent.cluster_ratio(noise, labels)
    result["ratio_noise_tsne"] = latent.cluster_ratio(tsne(noise, seed), labels)
    for ax, name, codes in zip(axes, ("random", "trained"), (random, trained), strict=True):
        emb = tsne(codes, seed)
        result[f"ratio_{name}_codes"] = latent.cluster_ratio(codes, labels)
        result[f"ratio_{name}_tsne"] = latent.cluster_ratio(emb, labels)
        ax.scatter(emb[:, 0], emb[:, 1], c=labels.numpy() % 10, cmap="tab10", s=4)
        ax.set_title(f"{name} weights: ratio {result[f'ratio_{name}_tsne']:.2f} (t-SNE)")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(out / "tsne.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return result


def _holdout(train_codes: Tensor, test_codes: Tensor, out: Path) -> dict[str, Any]:
    h0 = select_bandwidth(train_codes, "scott")
    grid = latent.log_grid(h0 / 10, h0 * 3, 12)
    values = latent.holdout_log_likelihood(train_codes, test_codes, grid)
    plt = _plot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.semilogx(grid, values, marker="o")
    ax.set_xlabel("KDE bandwidth h")
    ax.set_ylabel("mean holdout log-likelihood of test codes")
    fig.tight_layout()
    with atomic_path(out / "holdout.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    best = int(np.argmax(values))
    return {
        "holdout_bandwidths": grid,
        "holdout_log_likelihood": values,
        "holdout_best_bandwidth": grid[best],
        "holdout_best": values[best],
    }


def _random_reconstruction(
    generator: nn.Module,
    images: Tensor,
    config: ReversalConfig,
    prior: Prior | None,
    steps: int,
    out: Path,
) -> dict[str, Any]:
    rows = [images.cpu()]
    curve: list[float] = []
    for k in sorted({min(5, steps), min(20, steps), steps}):
        short = replace(config, {"stop": "steps", "steps": k})
        rng = torch.Generator(device=images.device).manual_seed(0)
        r = invert(generator, images, short, prior=prior, rng=rng)
        assert r.reconstructions is not None
        rows.append(r.reconstructions.cpu())
        curve = r.losses
    shown = min(16, len(images))
    save_grid(torch.cat([r[:shown] for r in rows]), out / "random_reconstructions.png", shown)
    plt = _plot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(range(1, len(curve) + 1), curve)
    ax.set_xlabel("reversal step")
    ax.set_ylabel("mean reconstruction loss")
    ax.set_title("random-weight generator")
    fig.tight_layout()
    with atomic_path(out / "random_loss.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return {"random_loss_curve": curve}


def _mmd_curve(
    generator: nn.Module,
    images: Tensor,
    config: ReversalConfig,
    prior: Prior | None,
    steps: int,
    out: Path,
) -> dict[str, Any]:
    # the paper's start: every code at init_std * N(0, I), so real and generated codes begin
    # alike and part as the reversal proceeds
    curve = {"stop": "mmd", "tol": math.inf, "level": None, "steps": steps, "init": "normal"}
    rng = torch.Generator(device=images.device).manual_seed(0)
    r = invert(generator, images, replace(config, curve), prior=prior, rng=rng)
    plt = _plot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(range(1, len(r.mmd) + 1), r.mmd)
    ax.set_xlabel("reversal step")
    ax.set_ylabel("MMD^2 between real and generated codes")
    fig.tight_layout()
    with atomic_path(out / "mmd.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return {"mmd_curve": r.mmd}
