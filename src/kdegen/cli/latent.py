"""``kdegen reverse``, ``traverse``, ``explore`` and ``analyze latent``: a run's latent space."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdegen import latent, runs
from kdegen.cli.base import DataOptions, command, output_path
from kdegen.cli.flags import parse
from kdegen.config import option, replace
from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.files import atomic_path, write_text_atomic
from kdegen.images import save_grid
from kdegen.methods.capabilities import (
    Autoencodes,
    HasGenerator,
    KeepsCodes,
    ReconstructsLevels,
    capable,
)
from kdegen.reversal import ReversalConfig


@dataclass(frozen=True, kw_only=True)
class LatentOptions(DataOptions):
    """What every command that reverses data through a run's generator takes."""

    seed: int = option(0, "seed of the initial codes")
    batch_size: int = option(256, "examples per reversal batch", ge=2)
    reversal: ReversalConfig = option(ReversalConfig(), "reversal (Algorithm 1)", prefix="")


@dataclass(frozen=True, kw_only=True)
class ReverseOptions(LatentOptions):
    n: int | None = option(None, "first N examples only (none: all)", ge=1)
    out: str = option(help="codes file (.npz); a .png is written beside it")


def _load(options: DataOptions, n: int | None) -> tuple[runs.LoadedRun, Any]:
    loaded = runs.load_run(options.run, options.device)
    data = load(options.data, split=options.split)
    if n is not None:
        labels = None if data.labels is None else data.labels[:n]
        data = type(data)(data.images[:n], labels, data.name, data.kind, data.num_classes)
    return loaded, data


def _generating(loaded: runs.LoadedRun) -> HasGenerator:
    method: HasGenerator = capable(
        loaded.method,
        HasGenerator,
        loaded.config.method,
        "no generator that maps latent codes to data; reverse a gan-family or autoencoder run",
    )
    return method


def _autoencoding(loaded: runs.LoadedRun) -> Autoencodes:
    method: Autoencodes = capable(
        loaded.method,
        Autoencodes,
        loaded.config.method,
        "no encoder; use `kdegen reverse` to find codes through its generator",
    )
    return method


def _reverse(
    loaded: runs.LoadedRun, images: torch.Tensor, options: LatentOptions, progress: bool = True
) -> latent.ReversedSet:
    method = _generating(loaded)
    G = method.generator()
    device = next(G.parameters()).device
    return latent.reverse_images(
        G,
        images.to(device),
        options.reversal,
        prior=method.prior_for_sampling(),
        batch_size=options.batch_size,
        seed=options.seed,
        progress=progress,
    )


@command("reverse")
def cmd_reverse(argv: list[str]) -> int:
    """Reverse data through a run's generator: codes, loss and steps to an .npz, and a PNG."""
    o = parse(ReverseOptions, argv, "kdegen reverse", cmd_reverse.__doc__)
    out = output_path(o.out, (".npz",))
    loaded, data = _load(o, o.n)
    result = _reverse(loaded, data.images, o)
    latent.save_codes(out, result, data.labels)
    shown = min(16, len(data))
    if len(loaded.method.spec.shape) == 3:
        pair = torch.cat([data.images[:shown].cpu(), result.reconstructions[:shown]])
        save_grid(pair, out.with_suffix(".png"), nrow=shown)
    loss, steps = float(result.loss.mean()), float(result.steps.float().mean())
    print(
        f"reversed {len(data)} examples: mean loss {loss:.4g}, mean steps {steps:.1f}; wrote {out}"
    )
    return 0


@dataclass(frozen=True, kw_only=True)
class EncodeOptions(DataOptions):
    n: int | None = option(None, "first N examples only (none: all)", ge=1)
    out: str = option(help="codes file (.npz); a .png is written beside it")


@command("encode")
def cmd_encode(argv: list[str]) -> int:
    """Encode data with a run's encoder: codes and reconstruction errors to an .npz."""
    o = parse(EncodeOptions, argv, "kdegen encode", cmd_encode.__doc__)
    out = output_path(o.out, (".npz",))
    loaded, data = _load(o, o.n)
    method = _autoencoding(loaded)
    x = data.images.to(_device(loaded))
    codes = method.encode(x)
    recon = latent.generate(method.generator(), codes)
    error = (recon - x).pow(2).flatten(1).mean(1).cpu()
    result = latent.ReversedSet(
        codes.cpu(), error, torch.zeros(len(x), dtype=torch.long), recon.cpu()
    )
    # a latent hierarchy (hali): a reconstruction through each level, the deepest last
    levels = method.level_reconstructions(x) if isinstance(method, ReconstructsLevels) else {}
    extra = {f"reconstructions_{k}": v.cpu().numpy() for k, v in levels.items()}
    errors = {k: (v - x).pow(2).flatten(1).mean(1).cpu() for k, v in levels.items()}
    extra.update({f"errors_{k}": e.numpy() for k, e in errors.items()})
    latent.save_codes(out, result, data.labels, extra)
    if len(loaded.method.spec.shape) == 3:
        shown = min(16, len(x))
        rows = [v.cpu() for v in levels.values()] or [result.reconstructions]
        grid = torch.cat([data.images[:shown].cpu(), *(r[:shown] for r in rows)])
        save_grid(grid, out.with_suffix(".png"), nrow=shown)
    by_level = "".join(f", through {k} {float(e.mean()):.4g}" for k, e in errors.items())
    print(
        f"encoded {len(x)} examples: mean squared error {float(error.mean()):.4g}{by_level}; "
        f"wrote {out}"
    )
    return 0


@dataclass(frozen=True, kw_only=True)
class TraverseOptions(LatentOptions):
    pairs: int = option(4, "image pairs", ge=1)
    points: int = option(8, "codes per segment", ge=2)
    out: str = option(help="output .png")


@command("traverse")
def cmd_traverse(argv: list[str]) -> int:
    """Interpolate linearly between the reversed codes of pairs of data images (Fig. 8)."""
    o = parse(TraverseOptions, argv, "kdegen traverse", cmd_traverse.__doc__)
    out = output_path(o.out, (".png",))
    loaded, data = _load(o, None)
    _need_images(loaded)
    if o.pairs > len(data) // 2:
        raise UsageError(f"--pairs must be between 1 and {len(data) // 2}")
    g = torch.Generator().manual_seed(o.seed)
    pick = torch.randperm(len(data), generator=g)[: 2 * o.pairs]
    codes = _reverse(loaded, data.images[pick], o, progress=False).codes
    path = latent.interpolate(codes[0::2], codes[1::2], o.points)
    images = latent.generate(_generating(loaded).generator(), path.to(_device(loaded)))
    save_grid(images, out, nrow=o.points)
    print(f"wrote {o.pairs} traversals of {o.points} points to {out}")
    return 0


@dataclass(frozen=True, kw_only=True)
class ExploreOptions(LatentOptions):
    radius: float = option(0.5, "ball radius", gt=0)
    images: int = option(4, "data images (rows)", ge=1)
    per_image: int = option(8, "neighbours per image", ge=1)
    out: str = option(help="output .png")


@command("explore")
def cmd_explore(argv: list[str]) -> int:
    """Decode codes drawn uniformly from a ball around the reversed code of data images."""
    o = parse(ExploreOptions, argv, "kdegen explore", cmd_explore.__doc__)
    out = output_path(o.out, (".png",))
    loaded, data = _load(o, o.images)
    _need_images(loaded)
    codes = _reverse(loaded, data.images, o, progress=False).codes
    g = torch.Generator().manual_seed(o.seed)
    near = torch.cat([latent.ball(c, o.radius, o.per_image, g) for c in codes.cpu()])
    decoded = latent.generate(_generating(loaded).generator(), near.to(_device(loaded))).cpu()
    k = o.per_image
    rows = [
        torch.cat([data.images[i : i + 1].cpu(), decoded[i * k : (i + 1) * k]])
        for i in range(len(codes))
    ]
    save_grid(torch.cat(rows), out, nrow=k + 1)
    print(f"wrote the neighbourhoods (radius {o.radius}) of {len(codes)} images to {out}")
    return 0


def _need_images(loaded: runs.LoadedRun) -> None:
    if len(loaded.method.spec.shape) != 3:
        raise UsageError("this command draws images; the run was trained on points")


def _device(loaded: runs.LoadedRun) -> torch.device:
    return next(_generating(loaded).generator().parameters()).device


@dataclass(frozen=True, kw_only=True)
class AnalyzeOptions(LatentOptions):
    n: int = option(1024, "examples", ge=2)
    curve_steps: int = option(400, "steps of the loss and MMD curves", ge=1)
    out: str = option(help="output folder")


@command("analyze")
def cmd_analyze(argv: list[str]) -> int:
    """Analyses of a run: `kdegen analyze latent RUN --data D --out DIR` (Figs. 1-4, 10)."""
    if not argv or argv[0] != "latent":
        raise UsageError("say what to analyze: `kdegen analyze latent RUN --data D --out DIR`")
    o = parse(AnalyzeOptions, argv[1:], "kdegen analyze latent", cmd_analyze.__doc__)
    out = Path(o.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    loaded, data = _load(o, o.n)
    from kdegen.analysis import analyze_latent, reinitialize

    out.mkdir(parents=True, exist_ok=True)
    method = _generating(loaded)
    G = method.generator()
    device = _device(loaded)
    # the same network with fresh random weights
    train = replace(loaded.config.train, {"seed": loaded.config.train.seed + 1})
    fresh = loaded.config.with_train(train)
    random_method = runs.build_method(fresh, loaded.method.spec, device)
    random_G = reinitialize(random_method.generator())  # type: ignore[attr-defined]
    if isinstance(method, KeepsCodes):
        train_codes = method.latent_codes()
    else:  # no bank: reverse as many training images
        train_images = load(o.data, split="train").images[: o.n]
        train_codes = _reverse(loaded, train_images, o).codes
    summary = analyze_latent(
        G,
        random_G,
        data.images.to(device),
        data.labels,
        train_codes,
        o.reversal,
        out,
        prior=method.prior_for_sampling(),
        curve_steps=o.curve_steps,
        batch_size=o.batch_size,
        seed=o.seed,
    )
    write_text_atomic(out / "latent.json", json.dumps(summary, indent=2) + "\n")
    for key, value in summary.items():
        if not isinstance(value, list | dict):
            print(f"{key}: {value}")
    print(f"wrote plots and latent.json to {out}")
    return 0


@dataclass(frozen=True, kw_only=True)
class NoveltyOptions(DataOptions):
    inlier_class: int | None = option(
        None, "report the AUROC of telling this class from the others"
    )
    sigma: float | None = option(
        None, "off-manifold std (none: from training reconstructions)", gt=0
    )
    n: int | None = option(None, "first N examples only (none: all)", ge=1)
    out: str = option(help="output folder")


@command("novelty")
def cmd_novelty(argv: list[str]) -> int:
    """Outlier scores -log p(x) from an autoencoder run (GENs Eq. 10-11), grids and AUROC."""
    args = parse(NoveltyOptions, argv, "kdegen novelty", cmd_novelty.__doc__)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    loaded, data = _load(args, args.n)
    if args.inlier_class is not None and (
        data.labels is None or args.inlier_class not in set(data.labels.tolist())
    ):
        raise UsageError(f"--inlier-class {args.inlier_class} is not among the labels")
    from kdegen import novelty

    method, device = _autoencoding(loaded), _device(loaded)
    decoder, x = method.generator(), data.images.to(device)
    z = method.encode(x)
    sigma2 = args.sigma**2 if args.sigma is not None else _train_noise(args, method, device)
    scores = novelty.outlier_scores(decoder, method.prior_for_sampling(), x, z, sigma2)
    out.mkdir(parents=True, exist_ok=True)
    order = torch.argsort(scores.score.cpu())
    shown = min(100, len(order))
    save_grid(data.images[order[:shown]].cpu(), out / "most_likely.png", nrow=10)
    save_grid(data.images[order.flip(0)[:shown]].cpu(), out / "least_likely.png", nrow=10)
    summary: dict[str, Any] = {
        "n": len(x),
        "sigma": sigma2**0.5,
        "mean_score": float(scores.score.mean()),
    }
    if args.inlier_class is not None:
        assert data.labels is not None
        summary["inlier_class"] = args.inlier_class
        summary["auroc"] = novelty.auroc(scores.score, data.labels != args.inlier_class)
    with atomic_path(out / "scores.npz") as tmp, tmp.open("wb") as handle:
        np.savez(
            handle,
            score=scores.score.cpu().numpy(),
            log_latent=scores.log_latent.cpu().numpy(),
            log_volume=scores.log_volume.cpu().numpy(),
            squared_error=scores.squared_error.cpu().numpy(),
        )
    write_text_atomic(out / "novelty.json", json.dumps(summary, indent=2) + "\n")
    print(
        " ".join(
            f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in summary.items()
        )
        + f"; wrote {out}"
    )
    return 0


def _train_noise(args: NoveltyOptions, method: Autoencodes, device: torch.device) -> float:
    """sigma^2 from the training split (of the inlier class when one is named)."""
    from kdegen import novelty

    train = load(args.data, split="train")
    x = train.images
    if args.inlier_class is not None and train.labels is not None:
        x = x[train.labels == args.inlier_class]
    x = x[:2000].to(device)
    return novelty.noise_variance(method.generator(), x, method.encode(x))
