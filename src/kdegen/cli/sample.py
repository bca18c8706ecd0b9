"""``kdegen sample``: draw samples from a trained run into a picture, an .npz or a folder.

An ``.npz`` or a folder of PNGs is written as it is drawn: ``CHUNK_SAMPLES`` samples at a
time (fewer where a chunk would pass ``CHUNK_BYTES``), all from one seeded generator, so
memory holds one chunk whatever ``--n`` is. A ``.png`` is one picture drawn in one piece,
so it shows at most ``PICTURE_MAX_SAMPLES`` samples. Before anything is drawn the output's
size is checked against the disk's free space: a request that cannot fit is refused.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from tqdm import tqdm  # type: ignore[import-untyped]

from kdegen import runs
from kdegen.cli.base import command, is_folder_output, output_folder, output_path
from kdegen.cli.flags import parse
from kdegen.config import Config, option
from kdegen.errors import UsageError
from kdegen.files import human_size
from kdegen.methods.capabilities import HasGenerator, KeepsCodes, SamplesClasses, capable
from kdegen.nets.modes import sizes
from kdegen.priors import DEFAULT_KDE_BANDWIDTH, parse_bandwidth
from kdegen.reversal import latent_dim

CHUNK_SAMPLES = 10_000
CHUNK_BYTES = 256 * 2**20  # a chunk of large images stays under this (float32)
PICTURE_MAX_SAMPLES = 10_000
PICTURE_MAX_PIXELS = 50_000_000  # below Pillow's decompression-bomb warning (89 megapixels)

Draw = Callable[[int, torch.Generator], torch.Tensor]  # (n, rng) -> n samples


@dataclass(frozen=True, kw_only=True)
class SampleOptions(Config):
    run: str = option(help="run directory", positional=True)
    out: str = option(
        help="output: a .png (grid or scatter plot), an .npz, or a folder of one PNG per "
        "image (a path ending in /, or an existing empty folder)"
    )
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
    progress: bool = option(True, "show a progress bar (on a terminal, for long runs)")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_bandwidth(self.bandwidth)


@dataclass(frozen=True)
class Target:
    """Where the samples go: a ``png`` picture, an ``npz`` file or a ``folder`` of PNGs."""

    path: Path
    kind: Literal["png", "npz", "folder"]

    def __str__(self) -> str:
        return f"{self.path}{os.sep}" if self.kind == "folder" else str(self.path)


def _target(value: str) -> Target:
    if is_folder_output(value):
        return Target(output_folder(value), "folder")
    if Path(value).suffix not in (".png", ".npz"):
        raise UsageError(
            f"--out {value}: give a file name ending in .png or .npz, or a folder ending in /"
        )
    out = output_path(value, (".png", ".npz"))
    return Target(out, "png" if out.suffix == ".png" else "npz")


@command("sample")
def cmd_sample(argv: list[str]) -> int:
    """Draw samples from a trained run into a PNG (grid or scatter plot), an .npz or a folder."""
    args = parse(SampleOptions, argv, "kdegen sample", cmd_sample.__doc__)
    target = _target(args.out)
    loaded = runs.load_run(args.run, args.device)
    shape = loaded.method.spec.shape
    _check_fits(target, args.n, shape)
    draw = _checked(_drawer(loaded, args), args.run, loaded.step)
    rng = torch.Generator().manual_seed(args.seed)
    # a write that fails (full disk, permissions) leaves the old output; the command line
    # reports it in one line (kdegen.files.describe_write_error)
    with torch.no_grad():
        if target.kind == "png":
            from kdegen.images import save_samples

            save_samples(draw(args.n, rng), target.path)
        else:
            _stream(draw, rng, target, (args.n, *shape), args.progress)
    print(f"wrote {args.n} samples of step {loaded.step} to {target}")
    return 0


def _check_fits(target: Target, n: int, shape: tuple[int, ...]) -> None:
    """Refuse an output that cannot hold the samples, or a disk that cannot hold the output."""
    from kdegen.data import npz_size
    from kdegen.images import SCATTER_PIXELS, grid_size, png_size

    points = len(shape) == 1
    if target.kind == "folder" and points:
        raise UsageError(
            f"--out {target}: a folder holds one PNG per image, but this run draws "
            f"points of dimension {shape[0]}; use --out s.npz"
        )
    if target.kind == "png":
        _check_picture(target.path, n, shape)
    if target.kind == "npz":
        needed = npz_size((n, *shape))
    elif target.kind == "folder":
        needed = n * png_size(*shape)
    elif points:
        needed = png_size(4, SCATTER_PIXELS, SCATTER_PIXELS)  # RGBA
    else:
        needed = png_size(shape[0], *grid_size(n, *shape[1:]))
    folder = target.path.resolve().parent  # where a temporary file or folder is written
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UsageError(
            f"--out {target}: {n:,} samples need {human_size(needed)}, "
            f"{human_size(free)} free in {folder}; lower --n or free disk space"
        )


def _check_picture(out: Path, n: int, shape: tuple[int, ...]) -> None:
    from kdegen.images import grid_size

    if len(shape) == 1 and shape[0] != 2:
        raise UsageError(f"samples of dimension {shape[0]} cannot be drawn; use --out x.npz")
    elsewhere = "an .npz" if len(shape) == 1 else "an .npz or a folder (--out DIR/)"
    if n > PICTURE_MAX_SAMPLES:
        raise UsageError(
            f"--out {out}: one picture shows at most {PICTURE_MAX_SAMPLES:,} samples, not "
            f"{n:,}; write them to {elsewhere}"
        )
    if len(shape) == 3:
        height, width = grid_size(n, *shape[1:])
        if height * width > PICTURE_MAX_PIXELS:
            raise UsageError(
                f"--out {out}: a grid of {n:,} images is {width}x{height} pixels, over "
                f"{PICTURE_MAX_PIXELS / 1e6:g} megapixels; lower --n or write them to {elsewhere}"
            )


def _drawer(loaded: runs.LoadedRun, args: SampleOptions) -> Draw:
    """``draw(n, rng)``: n samples from the run's prior, a KDE over codes, or one class."""
    if args.label is not None:
        if args.prior != "run":
            raise UsageError("--label draws from the run's own prior; leave out --prior kde")
        conditional: SamplesClasses = capable(
            loaded.method,
            SamplesClasses,
            loaded.config.method,
            "no class-conditional generator; --label needs a cgan or acgan run",
        )
        label = args.label
        return lambda n, rng: conditional.sample_class(n, label, rng)
    if args.prior == "kde":
        from kdegen import latent

        method: HasGenerator = capable(
            loaded.method, HasGenerator, loaded.config.method, "no generator for --prior kde"
        )
        G = method.generator()
        codes = _codes_for_kde(loaded.method, args.codes)
        kde = latent.kde_of(codes, args.bandwidth, args.background, latent_dim(G))
        print(f"KDE over {len(codes)} codes, bandwidth {kde.bandwidth:.4g}")
        return lambda n, rng: latent.sample_prior(G, kde, n, rng)
    return lambda n, rng: loaded.method.sample(n, generator=rng)


def _checked(draw: Draw, run: str, step: int) -> Draw:
    """``draw`` that refuses samples that are not all finite (a diverged run)."""

    def finite(n: int, rng: torch.Generator) -> torch.Tensor:
        samples = draw(n, rng)
        if not bool(torch.isfinite(samples).all()):
            raise UsageError(
                f"{run} produced NaN or infinite samples (its weights diverged at step "
                f"{step}); sample an earlier numbered checkpoint or train it again"
            )
        return samples

    return finite


class Stream(Protocol):
    """An output being written chunk by chunk (:func:`kdegen.data.streamed_npz`,
    :func:`kdegen.images.streamed_pngs`)."""

    def write(self, samples: torch.Tensor) -> None: ...


def chunk_sizes(shape: tuple[int, ...]) -> Iterator[int]:
    """Sizes of the chunks the samples of ``shape`` (N, ...) are drawn and written in."""
    per_chunk = max(1, min(CHUNK_SAMPLES, CHUNK_BYTES // (4 * math.prod(shape[1:]))))
    yield from sizes(shape[0], per_chunk)


def _stream(
    draw: Draw, rng: torch.Generator, target: Target, shape: tuple[int, ...], progress: bool
) -> None:
    """Draw and write chunk by chunk; the output appears only once every chunk is written."""
    from kdegen.data import streamed_npz
    from kdegen.images import streamed_pngs

    writer: AbstractContextManager[Stream] = (
        streamed_npz(target.path, shape)
        if target.kind == "npz"
        else streamed_pngs(target.path, shape[0])
    )
    bar = tqdm(
        total=shape[0],
        unit="sample",
        desc="sampling",
        disable=None if progress else True,  # None: off when stderr is not a terminal
        delay=1.0,
        leave=False,
        dynamic_ncols=True,
    )
    with writer as stream, bar:
        for size in chunk_sizes(shape):
            stream.write(draw(size, rng))
            bar.update(size)


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
