"""``kdegen sample``: draw samples from a trained run into a picture or an ``.npz``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from kdegen import runs
from kdegen.cli.base import command, output_path
from kdegen.cli.flags import parse
from kdegen.config import Config, option
from kdegen.errors import UsageError
from kdegen.methods.capabilities import HasGenerator, KeepsCodes, SamplesClasses, capable
from kdegen.priors import DEFAULT_KDE_BANDWIDTH, parse_bandwidth
from kdegen.reversal import latent_dim


@dataclass(frozen=True, kw_only=True)
class SampleOptions(Config):
    run: str = option(help="run directory", positional=True)
    out: str = option(help="output file: .png (grid or scatter plot) or .npz")
    n: int = option(64, "number of samples", ge=1)
    seed: int = option(0, "noise seed")
    device: str = option("auto", "cpu, cuda, cuda:N, mps or auto")
    prior: Literal["run", "kde"] = option("run", "the run's own prior, or a KDE over codes")
    codes: str | None = option(
        None, "an .npz of codes (from `kdegen reverse`) for --prior kde (none: the run's bank)"
    )
    bandwidth: str = option(
        DEFAULT_KDE_BANDWIDTH,
        "KDE bandwidth: a number or [factor*]nn, std, scott, silverman or ml (as kdegan's)",
    )
    background: float = option(0.0, "weight of N(0, I) mixed into the KDE", ge=0, le=1)
    label: int | None = option(None, "class of every sample (conditional runs: cgan, acgan)")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_bandwidth(self.bandwidth)


@command("sample")
def cmd_sample(argv: list[str]) -> int:
    """Draw samples from a trained run into a PNG (grid or scatter plot) or an .npz."""
    args = parse(SampleOptions, argv, "kdegen sample", cmd_sample.__doc__)
    out = output_path(args.out, (".png", ".npz"))
    loaded = runs.load_run(args.run, args.device)
    shape = loaded.method.spec.shape
    if out.suffix == ".png" and len(shape) == 1 and shape[0] != 2:
        raise UsageError(f"samples of dimension {shape[0]} cannot be drawn; use --out x.npz")
    rng = torch.Generator().manual_seed(args.seed)
    if args.label is not None:
        samples = _class_samples(loaded, args.n, args.label, args.prior, rng)
    elif args.prior == "kde":
        from kdegen import latent

        method: HasGenerator = capable(
            loaded.method, HasGenerator, loaded.config.method, "no generator for --prior kde"
        )
        G = method.generator()
        codes = _codes_for_kde(loaded.method, args.codes)
        kde = latent.kde_of(codes, args.bandwidth, args.background, latent_dim(G))
        samples = latent.sample_prior(G, kde, args.n, rng)
        print(f"KDE over {len(codes)} codes, bandwidth {kde.bandwidth:.4g}")
    else:
        samples = loaded.method.sample(args.n, generator=rng)
    if not bool(torch.isfinite(samples).all()):
        raise UsageError(
            f"{args.run} produced NaN or infinite samples (its weights diverged at step "
            f"{loaded.step}); sample an earlier numbered checkpoint or train it again"
        )
    _write_samples(samples, out)
    print(f"wrote {args.n} samples of step {loaded.step} to {out}")
    return 0


def _class_samples(
    loaded: runs.LoadedRun, n: int, label: int, prior: str, rng: torch.Generator
) -> torch.Tensor:
    if prior != "run":
        raise UsageError("--label draws from the run's own prior; leave out --prior kde")
    method: SamplesClasses = capable(
        loaded.method,
        SamplesClasses,
        loaded.config.method,
        "no class-conditional generator; --label needs a cgan or acgan run",
    )
    return method.sample_class(n, label, rng)


def _codes_for_kde(method: Any, path: str | None) -> torch.Tensor:
    if path is not None:
        from kdegen.latent import read_codes

        return read_codes(path)
    if not isinstance(method, KeepsCodes):
        raise UsageError(
            "this run keeps no codes; reverse data first (`kdegen reverse RUN --out c.npz`) "
            "and pass --codes c.npz"
        )
    return method.latent_codes()


def _write_samples(samples: torch.Tensor, out: Path) -> None:
    from kdegen.data import save_npz
    from kdegen.images import save_samples

    if out.suffix == ".npz":
        save_npz(out, samples)
    else:
        save_samples(samples, out)
