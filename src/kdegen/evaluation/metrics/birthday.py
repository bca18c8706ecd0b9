"""Birthday-paradox support size (Arora & Zhang 2017; GAN tutorial, "Mode Collapse: Measure").

The tutorial's procedure: (a) draw a batch of s generated samples, (b) flag the most
similar pairs with an automated similarity, (c) inspect them for duplicates, (d) repeat.
If batches of size s hold a duplicate with good probability, the support is about s^2.

Similarity here is Euclidean distance (pixels or features). The ``top`` closest pairs of
a batch come exactly from :func:`kdegen.kernels.nearest` (each of them is among its
points' ``top`` nearest neighbours). Calling a pair a duplicate needs a judgement, so it
is explicit: a pair is a duplicate when its distance is below ``threshold``. Without a
threshold, ``reference`` (real samples, e.g. training images) sets it: the smallest
closest-pair distance found in as many batches of the same size drawn from the reference
set. A generated pair closer than any real pair seen at this batch size is a duplicate;
the reference itself has no collision by this rule. One of the two must be given.

Support estimate. With B batches, p = (batches holding a duplicate) / B. For a uniform
distribution on N items, P(no duplicate among s draws) ~ exp(-s(s-1) / (2N)), so

    N ~ s(s-1) / (2 ln(1 / (1 - p))),

which is s(s-1) ~ s^2 at p = 1 - e^{-1/2} ~ 0.39 (the tutorial's rule of thumb). p = 0
or p = 1 only bound N; p is then clipped to [1/(2B), 1 - 1/(2B)] and ``support_kind``
says "lower bound" or "upper bound" instead of "estimate". Save the pairs with
:func:`save_duplicate_pairs` and look at them: the numbers do not replace step (c).

Sizes. A batch holds at least 10 samples (45 pairs; a batch of 2 holds one pair, and
two images gave a "support" of 19.5). The B batches are drawn from a fixed set of
samples, while the estimate above treats them as independent: they must be able to
differ, so with B > 1 the set holds at least twice the batch size (20 samples at the
least), and so does the reference. ``kdegen evaluate`` uses s = min(400, n / 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.evaluation.metrics.inputs import (
    Array,
    Minimum,
    as_features,
    as_pair,
    at_least,
    positive,
)
from kdegen.evaluation.metrics.neighbours import flatten
from kdegen.evaluation.metrics.registry import Inputs, register_metric

MIN_BATCH = 10  # 45 pairs per batch
BATCH = 400  # the batch size of `kdegen evaluate` when the samples allow it
MINIMUM = Minimum(2 * MIN_BATCH, f"batches of {MIN_BATCH} from twice as many, so that they differ")


def pool_minimum(batch_size: int, batches: int) -> Minimum:
    """Samples needed to draw ``batches`` batches of ``batch_size`` that can differ."""
    if batches == 1:
        return Minimum(batch_size, "one batch of batch_size")
    return Minimum(2 * batch_size, f"twice batch_size, so that the {batches} batches differ")


@dataclass(frozen=True)
class BirthdayResult:
    """Outcome of the birthday test.

    Attributes:
        pairs: (top, 2) indices into ``samples`` of the closest pairs over all batches.
        distances: (top,) their Euclidean distances, ascending.
        threshold: distance below which a pair counts as a duplicate.
        batch_size: s.
        batches: B.
        collisions: batches holding at least one duplicate.
        collision_probability: collisions / batches.
        support_size: s(s-1) / (2 ln(1/(1-p))) with p clipped as described above.
        support_kind: "estimate", "lower bound" (no collision) or "upper bound" (all).
    """

    pairs: Tensor
    distances: Tensor
    threshold: float
    batch_size: int
    batches: int
    collisions: int
    collision_probability: float
    support_size: float
    support_kind: str


def closest_pairs(x: Tensor, top: int, block: int) -> tuple[Tensor, Tensor]:
    """The ``top`` closest pairs (i < j) within ``x``: indices (t, 2), squared distances (t,)."""
    n = x.shape[0]
    k = min(top, n - 1)
    d2, idx = kernels.nearest(x, x, k=k, exclude_self=True, block=block)  # (n, k) each
    rows = torch.arange(n, device=idx.device)[:, None].expand(-1, k)
    keys = (torch.minimum(rows, idx) * n + torch.maximum(rows, idx)).flatten()
    return _unique_smallest(keys, d2.flatten(), n, top)


def _unique_smallest(keys: Tensor, d2: Tensor, n: int, top: int) -> tuple[Tensor, Tensor]:
    """Pairs coded i * n + j, each once (its smallest distance), the ``top`` smallest first."""
    unique, inverse = torch.unique(keys, return_inverse=True)
    best = torch.full(unique.shape, torch.inf, dtype=d2.dtype, device=d2.device)
    best = best.scatter_reduce(0, inverse, d2, reduce="amin")
    order = torch.argsort(best)[:top]
    chosen = unique[order]
    return torch.stack([chosen // n, chosen % n], 1), best[order]


def _batch(n: int, size: int, rng: torch.Generator) -> Tensor:
    return torch.randperm(n, generator=rng)[:size]


def birthday_duplicates(
    samples: Array,
    batch_size: int,
    top: int = 20,
    seed: int = 0,
    threshold: float | None = None,
    reference: Array | None = None,
    batches: int = 10,
    block: int = kernels.DEFAULT_BLOCK,
) -> BirthdayResult:
    """Closest pairs in random batches of ``samples`` and the birthday support estimate.

    Args:
        samples: generated samples (n, d), or images (n, C, H, W) (flattened); n >= 2 s
            when batches > 1 (see the module docstring).
        batch_size: s, samples per batch, at least 10.
        top: closest pairs to return (over all batches).
        seed: seed of the batch draws.
        threshold: duplicate distance; None derives it from ``reference``.
        reference: real samples in the same layout (as many as ``samples`` need), used
            when no threshold is given.
        batches: B, batches drawn (from the samples, and from the reference).
        block: tile size of the distance computations.

    Returns:
        The pairs, the threshold, the collision rate and the support size estimate.
    """
    x = as_features(flatten(samples), "samples")
    s = at_least(batch_size, MIN_BATCH, "batch_size")
    top, batches = at_least(top, 1, "top"), at_least(batches, 1, "batches")
    pool_minimum(s, batches).check("birthday_duplicates", {"samples": x})
    if threshold is None:
        if reference is None:
            raise UsageError("pass threshold= (a distance) or reference= (real samples)")
        threshold = _reference_threshold(x, flatten(reference), s, batches, seed, block)
    limit = positive(threshold, "threshold")
    rng = torch.Generator().manual_seed(seed)
    keys, dists, collisions = [], [], 0
    for _ in range(batches):
        chosen = _batch(x.shape[0], s, rng).to(x.device)
        pairs, d2 = closest_pairs(x[chosen], top, block)
        collisions += int(float(d2[0].sqrt()) < limit)
        global_pairs = chosen[pairs].sort(1).values
        keys.append(global_pairs[:, 0] * x.shape[0] + global_pairs[:, 1])
        dists.append(d2)
    pairs, d2 = _unique_smallest(torch.cat(keys), torch.cat(dists), x.shape[0], top)
    p = collisions / batches
    size, kind = support_size(s, p, batches)
    distances = d2.double().sqrt()
    return BirthdayResult(pairs, distances, limit, s, batches, collisions, p, size, kind)


def support_size(batch_size: int, p: float, batches: int) -> tuple[float, str]:
    """s(s-1) / (2 ln(1/(1-p))), with p clipped to [1/(2B), 1 - 1/(2B)], and its kind."""
    kind = "lower bound" if p == 0 else "upper bound" if p == 1 else "estimate"
    clipped = min(max(p, 1 / (2 * batches)), 1 - 1 / (2 * batches))  # 0.5 for one batch
    pairs = batch_size * (batch_size - 1)
    return pairs / (2 * math.log(1 / (1 - clipped))), kind


def _reference_threshold(
    x: Tensor, reference: Tensor, s: int, batches: int, seed: int, block: int
) -> float:
    """Smallest closest-pair distance over ``batches`` reference batches of size s."""
    ref, _ = as_pair(reference, x, ("reference", "samples"))
    pool_minimum(s, batches).check("birthday_duplicates", {"reference": ref})
    rng = torch.Generator().manual_seed(seed + 1)
    closest = min(
        float(closest_pairs(ref[_batch(ref.shape[0], s, rng).to(ref.device)], 1, block)[1][0])
        for _ in range(batches)
    )
    if closest <= 0:
        raise UsageError("the reference set repeats samples exactly; pass threshold= instead")
    return math.sqrt(closest)


def save_duplicate_pairs(images: Tensor, result: BirthdayResult, path: Path | str) -> None:
    """Write a PNG with one flagged pair per row, closest first, for a person to judge.

    Args:
        images: (n, C, H, W) in [-1, 1], the samples in the order given to the test.
        result: what :func:`birthday_duplicates` returned for them.
        path: PNG file to write.
    """
    from kdegen.images import save_grid

    if int(result.pairs.max()) >= images.shape[0]:
        raise UsageError("the result indexes more images than given; pass the tested samples")
    save_grid(images[result.pairs.flatten()], Path(path), nrow=2)


@register_metric(
    "birthday",
    ("generated_pixels", "train_pixels"),
    f"birthday-paradox support size (s={BATCH})",
    MINIMUM,
)
def _birthday_metric(inputs: Inputs) -> dict[str, float]:
    sets = {"generated": inputs["generated_pixels"], "train": inputs["train_pixels"]}
    MINIMUM.check("birthday", {k: torch.as_tensor(v) for k, v in sets.items()})
    size = min(BATCH, len(sets["generated"]) // 2, len(sets["train"]) // 2)
    r = birthday_duplicates(inputs["generated_pixels"], size, reference=inputs["train_pixels"])
    return {
        "collision_probability": r.collision_probability,
        "support_size": r.support_size,
        "threshold": r.threshold,
    }
