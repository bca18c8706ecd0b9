"""Working in a generator's latent space: reversing datasets, resampling, traversals and
the latent-structure analyses of Generator Reversal (Sec. 2.2, 3.1; Figs. 1-4, 8, 10).

These functions take a generator (codes (B, k) -> data) and plain tensors; the command
line (``kdegen reverse / traverse / explore / analyze latent``) wires them to runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm  # type: ignore[import-untyped]

from kdegen.errors import UsageError
from kdegen.files import atomic_path
from kdegen.nets.modes import frozen
from kdegen.priors import KDE, Prior
from kdegen.reversal import ReversalConfig, check_data_shape, invert


@dataclass
class ReversedSet:
    """Codes of a dataset, found chunk by chunk.

    Attributes:
        codes: (N, k).
        loss: (N,) final per-example reconstruction loss.
        steps: (N,) reversal steps taken for each example's chunk.
        reconstructions: (N, *shape) generator(codes).
    """

    codes: Tensor
    loss: Tensor
    steps: Tensor
    reconstructions: Tensor


def reverse_images(
    generator: nn.Module,
    images: Tensor,
    config: ReversalConfig = ReversalConfig(),  # noqa: B008 (frozen)
    *,
    prior: Prior | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> ReversedSet:
    """Reverse ``images`` (N, *shape) in chunks of ``batch_size`` with :func:`invert`.

    Each chunk stops by its own rule (for stop="mmd", against its own reference batch);
    ``prior`` drives the generator (init="prior" and the mmd rule's reference).
    """
    if batch_size < 2:
        raise UsageError(f"--batch-size must be at least 2, got {batch_size}")
    check_data_shape(generator, images[:1])
    rng = torch.Generator(device=images.device).manual_seed(seed)
    parts = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, disable=not progress, unit="batch", desc="reversing"):
        chunk = images[start : start + batch_size]
        r = invert(generator, chunk, config, prior=prior, rng=rng)
        assert r.example_loss is not None and r.reconstructions is not None
        steps = torch.full((len(r.codes),), r.steps_taken, dtype=torch.long)
        parts.append((r.codes, r.example_loss, steps, r.reconstructions))
    return ReversedSet(*(torch.cat([p[i].cpu() for p in parts]) for i in range(4)))


def save_codes(
    path: Path,
    reversed_set: ReversedSet,
    labels: Tensor | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write codes, per-example loss and steps (and labels, and ``extra`` arrays by name)
    to an .npz."""
    arrays = {
        "codes": reversed_set.codes.numpy(),
        "loss": reversed_set.loss.numpy(),
        "steps": reversed_set.steps.numpy(),
        **(extra or {}),
    }
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy()
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)


def read_codes(path: str | Path) -> Tensor:
    """The ``codes`` array (n, k) of an .npz written by :func:`save_codes`."""
    try:
        with np.load(path) as f:
            if "codes" not in f:
                raise UsageError(
                    f"{path} has no 'codes' array (keys: {', '.join(f.files)}); "
                    "write one with `kdegen reverse`"
                )
            codes = torch.from_numpy(np.asarray(f["codes"], dtype=np.float32))
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read codes from {path}: {e}") from None
    if codes.dim() != 2 or not bool(torch.isfinite(codes).all()):
        raise UsageError(f"{path}: codes must be a finite (n, k) array")
    return codes


@torch.no_grad()
def generate(generator: nn.Module, codes: Tensor, batch_size: int = 1024) -> Tensor:
    """generator(codes) in eval mode, in chunks."""
    with frozen(generator):
        return torch.cat(
            [generator(codes[i : i + batch_size]) for i in range(0, len(codes), batch_size)]
        )


def sample_prior(
    generator: nn.Module, prior: Prior, n: int, rng: torch.Generator | None = None
) -> Tensor:
    """n samples of generator(z), z ~ prior."""
    device = next(generator.parameters()).device
    return generate(generator, prior.sample(n, rng).to(device))


def kde_of(codes: Tensor, bandwidth: float | str, background: float, latent: int) -> KDE:
    """A KDE prior fitted on ``codes`` (checked against the generator's latent size)."""
    if codes.dim() != 2 or len(codes) == 0:
        raise UsageError(f"the code set is empty or not (n, k): {tuple(codes.shape)}")
    if codes.shape[1] != latent:
        raise UsageError(f"codes of dimension {codes.shape[1]} do not fit a generator of {latent}")
    return KDE(bandwidth, background).fit(codes)


def interpolate(a: Tensor, b: Tensor, steps: int) -> Tensor:
    """Codes on the segments a_i -> b_i: (pairs * steps, k), row-major by pair."""
    if steps < 2:
        raise UsageError(f"--steps must be at least 2, got {steps}")
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device)[None, :, None]
    return ((1 - t) * a[:, None] + t * b[:, None]).reshape(-1, a.shape[1])


def ball(centre: Tensor, radius: float, n: int, rng: torch.Generator | None = None) -> Tensor:
    """n codes uniform in the ball of ``radius`` around ``centre`` (k,): (n, k)."""
    if not radius > 0:
        raise UsageError(f"--radius must be positive, got {radius}")
    k = centre.shape[0]
    direction = torch.randn(n, k, generator=rng, dtype=centre.dtype)
    direction /= direction.norm(dim=1, keepdim=True)
    r = radius * torch.rand(n, 1, generator=rng, dtype=centre.dtype) ** (1.0 / k)
    return centre[None].cpu() + r * direction


def cluster_ratio(points: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Mean distance between class centroids over mean distance of points to their centroid.

    The latent-structure number of Fig. 3 (1.9 trained, 0.1 random weights in the paper).
    """
    x, y = np.asarray(points, dtype=np.float64), np.asarray(labels)
    classes = np.unique(y)
    if len(classes) < 2:
        raise UsageError("the latent-structure ratio needs at least two classes")
    centroids = np.stack([x[y == c].mean(0) for c in classes])
    within = np.mean(
        [np.linalg.norm(x[y == c] - centroids[i], axis=1).mean() for i, c in enumerate(classes)]
    )
    i, j = np.triu_indices(len(classes), 1)
    between = np.linalg.norm(centroids[i] - centroids[j], axis=1).mean()
    return float(between / within)


def holdout_log_likelihood(
    train_codes: Tensor, test_codes: Tensor, bandwidths: list[float]
) -> list[float]:
    """Mean log-likelihood of test codes under a KDE of training codes, per bandwidth (Fig. 10)."""
    return [float(KDE(h).fit(train_codes).log_prob(test_codes).mean()) for h in bandwidths]


def log_grid(low: float, high: float, n: int) -> list[float]:
    """n values log-spaced from low to high."""
    return [float(v) for v in np.exp(np.linspace(math.log(low), math.log(high), n))]
