"""``kdegen reverse``, ``traverse``, ``explore`` and ``analyze latent``: a run's latent space."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdegen import latent, runs
from kdegen.cli.base import Parser, command, output_path
from kdegen.config import RunConfig, replace
from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.images import save_grid
from kdegen.reversal import INITS, LOSSES, OPTIMIZERS, STOPS


def reversal_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that reverses data through a run's generator."""
    p.add_argument("run", help="run directory")
    p.add_argument("--data", required=True, help="dataset name or image folder/.npz")
    p.add_argument("--split", default="test", choices=("train", "test"), help="(default test)")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of initial codes (default 0)")
    g = p.add_argument_group("reversal (Algorithm 1)")
    g.add_argument("--steps", type=int, default=200, help="steps, or the cap (default 200)")
    g.add_argument("--stop", choices=STOPS, default="steps", help="stop rule (default steps)")
    g.add_argument("--lr", type=float, default=0.2,
                   help="step size; normalized: the first step length (default 0.2)")  # fmt: skip
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="normalized",
                   help="step rule (default normalized)")  # fmt: skip
    g.add_argument("--init", choices=INITS, default="prior",
                   help="initial codes: the run's prior, normal (init std) or zeros")  # fmt: skip
    g.add_argument("--init-std", type=float, default=1e-4, help="std of normal init codes")
    g.add_argument("--loss", choices=tuple(LOSSES), default="l2", help="(default l2)")
    g.add_argument("--l2", type=float, default=0.0, help="weight of l2/2 ||z||^2 (default 0)")
    g.add_argument("--tol", type=float, default=1e-4, help="loss or MMD^2 threshold")
    g.add_argument("--level", type=float, default=None, help="MMD permutation-test level")
    g.add_argument("--mmd-bandwidth", type=float, default=None,
                   help="kernel width h of the MMD rule (default: median heuristic)")  # fmt: skip
    g.add_argument("--batch-size", type=int, default=256, help="examples per reversal batch")


def invert_options(args: argparse.Namespace, method: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`kdegen.reversal.invert` from the flags."""
    return dict(
        steps=args.steps, lr=args.lr, optimizer=args.optimizer, init=args.init,
        init_std=args.init_std, loss=args.loss, stop=args.stop, tol=args.tol, level=args.level,
        mmd_bandwidth=args.mmd_bandwidth, prior=method.prior_for_sampling(), l2=args.l2,
    )  # fmt: skip


def _load(args: argparse.Namespace, n: int | None) -> tuple[runs.LoadedRun, Any]:
    loaded = runs.load_run(args.run, args.device)
    data = load(args.data, split=args.split)
    if n is not None:
        if n < 1:
            raise UsageError(f"--n must be at least 1, got {n}")
        data = type(data)(data.images[:n], None if data.labels is None else data.labels[:n],
                          data.name, data.kind, data.num_classes)  # fmt: skip
    return loaded, data


def _reverse(loaded: runs.LoadedRun, images: torch.Tensor, args: argparse.Namespace,
             progress: bool = True) -> latent.ReversedSet:  # fmt: skip
    G = loaded.method.generator()
    device = next(G.parameters()).device
    return latent.reverse_images(G, images.to(device), args.batch_size, progress, args.seed,
                                 **invert_options(args, loaded.method))  # fmt: skip


@command("reverse")
def cmd_reverse(argv: list[str]) -> int:
    """Reverse data through a run's generator: codes, loss and steps to an .npz, and a PNG."""
    p = Parser(prog="kdegen reverse", description=cmd_reverse.__doc__)
    reversal_flags(p)
    p.add_argument("--n", type=int, default=None, help="first N examples only")
    p.add_argument("--out", required=True, help="codes file (.npz); a .png is written beside it")
    args = p.parse_args(argv)
    out = output_path(args.out, (".npz",))
    loaded, data = _load(args, args.n)
    result = _reverse(loaded, data.images, args)
    latent.save_codes(out, result, data.labels)
    shown = min(16, len(data))
    if len(loaded.method.spec.shape) == 3:
        pair = torch.cat([data.images[:shown].cpu(), result.reconstructions[:shown]])
        save_grid(pair, out.with_suffix(".png"), nrow=shown)
    print(f"reversed {len(data)} examples: mean loss {float(result.loss.mean()):.4g}, "
          f"mean steps {float(result.steps.float().mean()):.1f}; wrote {out}")  # fmt: skip
    return 0


@command("encode")
def cmd_encode(argv: list[str]) -> int:
    """Encode data with a run's encoder: codes and reconstruction errors to an .npz."""
    p = Parser(prog="kdegen encode", description=cmd_encode.__doc__)
    p.add_argument("run", help="run directory")
    p.add_argument("--data", required=True, help="dataset name or image folder/.npz")
    p.add_argument("--split", default="test", choices=("train", "test"), help="(default test)")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default auto)")
    p.add_argument("--n", type=int, default=None, help="first N examples only")
    p.add_argument("--out", required=True, help="codes file (.npz); a .png is written beside it")
    args = p.parse_args(argv)
    out = output_path(args.out, (".npz",))
    loaded, data = _load(args, args.n)
    method = loaded.method
    x = data.images.to(_device(loaded))
    codes = method.encode(x)
    recon = latent.generate(method.generator(), codes)
    error = (recon - x).pow(2).flatten(1).mean(1).cpu()
    result = latent.ReversedSet(codes.cpu(), error, torch.zeros(len(x), dtype=torch.long),
                                recon.cpu())  # fmt: skip
    latent.save_codes(out, result, data.labels)
    if len(method.spec.shape) == 3:
        shown = min(16, len(x))
        pair = torch.cat([data.images[:shown].cpu(), result.reconstructions[:shown]])
        save_grid(pair, out.with_suffix(".png"), nrow=shown)
    print(f"encoded {len(x)} examples: mean squared error {float(error.mean()):.4g}; wrote {out}")
    return 0


@command("traverse")
def cmd_traverse(argv: list[str]) -> int:
    """Interpolate linearly between the reversed codes of pairs of data images (Fig. 8)."""
    p = Parser(prog="kdegen traverse", description=cmd_traverse.__doc__)
    reversal_flags(p)
    p.add_argument("--pairs", type=int, default=4, help="image pairs (default 4)")
    p.add_argument("--points", type=int, default=8, help="codes per segment (default 8)")
    p.add_argument("--out", required=True, help="output .png")
    args = p.parse_args(argv)
    out = output_path(args.out, (".png",))
    loaded, data = _load(args, None)
    _need_images(loaded)
    if not 1 <= args.pairs <= len(data) // 2:
        raise UsageError(f"--pairs must be between 1 and {len(data) // 2}")
    g = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(data), generator=g)[: 2 * args.pairs]
    codes = _reverse(loaded, data.images[pick], args, progress=False).codes
    path = latent.interpolate(codes[0::2], codes[1::2], args.points)
    images = latent.generate(loaded.method.generator(), path.to(_device(loaded)))
    save_grid(images, out, nrow=args.points)
    print(f"wrote {args.pairs} traversals of {args.points} points to {out}")
    return 0


@command("explore")
def cmd_explore(argv: list[str]) -> int:
    """Decode codes drawn uniformly from a ball around the reversed code of data images."""
    p = Parser(prog="kdegen explore", description=cmd_explore.__doc__)
    reversal_flags(p)
    p.add_argument("--radius", type=float, default=0.5, help="ball radius (default 0.5)")
    p.add_argument("--images", type=int, default=4, help="data images (rows, default 4)")
    p.add_argument("--per-image", type=int, default=8, help="neighbours per image (default 8)")
    p.add_argument("--out", required=True, help="output .png")
    args = p.parse_args(argv)
    out = output_path(args.out, (".png",))
    if args.images < 1 or args.per_image < 1:
        raise UsageError("--images and --per-image must be at least 1")
    loaded, data = _load(args, args.images)
    _need_images(loaded)
    codes = _reverse(loaded, data.images, args, progress=False).codes
    g = torch.Generator().manual_seed(args.seed)
    near = torch.cat([latent.ball(c, args.radius, args.per_image, g) for c in codes.cpu()])
    decoded = latent.generate(loaded.method.generator(), near.to(_device(loaded)))
    rows = [torch.cat([data.images[i : i + 1].cpu(),
                       decoded[i * args.per_image : (i + 1) * args.per_image].cpu()])
            for i in range(len(codes))]  # fmt: skip
    save_grid(torch.cat(rows), out, nrow=args.per_image + 1)
    print(f"wrote the neighbourhoods (radius {args.radius}) of {len(codes)} images to {out}")
    return 0


def _need_images(loaded: runs.LoadedRun) -> None:
    if len(loaded.method.spec.shape) != 3:
        raise UsageError("this command draws images; the run was trained on points")


def _device(loaded: runs.LoadedRun) -> torch.device:
    return next(loaded.method.generator().parameters()).device


@command("analyze")
def cmd_analyze(argv: list[str]) -> int:
    """Analyses of a run: `kdegen analyze latent RUN --data D --out DIR` (Figs. 1-4, 10)."""
    if not argv or argv[0] != "latent":
        raise UsageError("say what to analyze: `kdegen analyze latent RUN --data D --out DIR`")
    p = Parser(prog="kdegen analyze latent", description=cmd_analyze.__doc__)
    reversal_flags(p)
    p.add_argument("--n", type=int, default=1024, help="examples (default 1024)")
    p.add_argument("--curve-steps", type=int, default=400,
                   help="steps of the loss and MMD curves (default 400)")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv[1:])
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    loaded, data = _load(args, args.n)
    from kdegen.analysis import analyze_latent, reinitialize

    out.mkdir(parents=True, exist_ok=True)
    G = loaded.method.generator()
    device = _device(loaded)
    # the same network with fresh random weights
    train = replace(loaded.config.train, {"seed": loaded.config.train.seed + 1})
    fresh = RunConfig(loaded.config.method, loaded.config.options, train)
    random_G = reinitialize(runs.build_method(fresh, loaded.method.spec, device).generator())
    train_codes = loaded.method.latent_codes()
    if train_codes is None:  # no bank: reverse as many training images
        train_images = load(args.data, split="train").images[: args.n]
        train_codes = _reverse(loaded, train_images, args).codes
    summary = analyze_latent(
        G, random_G, data.images.to(device), data.labels, train_codes,
        invert_options(args, loaded.method), out, args.curve_steps, args.batch_size, args.seed,
    )  # fmt: skip
    (out / "latent.json").write_text(json.dumps(summary, indent=2) + "\n")
    for key, value in summary.items():
        if not isinstance(value, list | dict):
            print(f"{key}: {value}")
    print(f"wrote plots and latent.json to {out}")
    return 0


@command("novelty")
def cmd_novelty(argv: list[str]) -> int:
    """Outlier scores -log p(x) from an autoencoder run (GENs Eq. 10-11), grids and AUROC."""
    p = Parser(prog="kdegen novelty", description=cmd_novelty.__doc__)
    p.add_argument("run", help="run directory of an autoencoder method (gen, vae, aae, ae)")
    p.add_argument("--data", required=True, help="dataset name or image folder/.npz")
    p.add_argument("--split", default="test", choices=("train", "test"), help="(default test)")
    p.add_argument("--inlier-class", type=int, default=None,
                   help="report the AUROC of telling this class from the others")  # fmt: skip
    p.add_argument("--sigma", type=float, default=None,
                   help="off-manifold std (default: from training reconstructions)")  # fmt: skip
    p.add_argument("--n", type=int, default=None, help="first N examples only")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default auto)")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    loaded, data = _load(args, args.n)
    if args.inlier_class is not None and (
        data.labels is None or args.inlier_class not in set(data.labels.tolist())
    ):
        raise UsageError(f"--inlier-class {args.inlier_class} is not among the labels")
    from kdegen import novelty

    method, device = loaded.method, _device(loaded)
    decoder, x = method.generator(), data.images.to(device)
    z = method.encode(x)
    sigma2 = args.sigma**2 if args.sigma is not None else _train_noise(args, method, device)
    scores = novelty.outlier_scores(decoder, method.prior_for_sampling(), x, z, sigma2)
    out.mkdir(parents=True, exist_ok=True)
    order = torch.argsort(scores.score.cpu())
    shown = min(100, len(order))
    save_grid(data.images[order[:shown]].cpu(), out / "most_likely.png", nrow=10)
    save_grid(data.images[order.flip(0)[:shown]].cpu(), out / "least_likely.png", nrow=10)
    summary: dict[str, Any] = {"n": len(x), "sigma": sigma2**0.5,
                               "mean_score": float(scores.score.mean())}  # fmt: skip
    if args.inlier_class is not None:
        assert data.labels is not None
        summary["inlier_class"] = args.inlier_class
        summary["auroc"] = novelty.auroc(scores.score, data.labels != args.inlier_class)
    np.savez(out / "scores.npz", score=scores.score.cpu().numpy(),
             log_latent=scores.log_latent.cpu().numpy(),
             log_volume=scores.log_volume.cpu().numpy(),
             squared_error=scores.squared_error.cpu().numpy())  # fmt: skip
    (out / "novelty.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(" ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                   for k, v in summary.items()) + f"; wrote {out}")  # fmt: skip
    return 0


def _train_noise(args: argparse.Namespace, method: Any, device: torch.device) -> float:
    """sigma^2 from the training split (of the inlier class when one is named)."""
    from kdegen import novelty

    train = load(args.data, split="train")
    x = train.images
    if args.inlier_class is not None and train.labels is not None:
        x = x[train.labels == args.inlier_class]
    x = x[:2000].to(device)
    return novelty.noise_variance(method.generator(), x, method.encode(x))
