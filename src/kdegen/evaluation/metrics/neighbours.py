"""Nearest-neighbour metrics: memorisation distance, precision/recall, density/coverage.

- Nearest-neighbour test (Generator Reversal, Appendix C, Table 1): the mean (and
  standard deviation, ddof=1) of the Euclidean distance, in pixel space, from each
  generated sample to its nearest training sample; small values flag copies (a copy is
  at distance exactly 0). Distances are in the units of the pixels given (kdegen images
  span [-1, 1], twice the distance of [0, 1] images).
- Improved precision and recall (Kynkaanniemi et al. 2019): with r_k(x) the distance
  from x to its k-th nearest neighbour in its own set (itself excluded, its copies not),
  precision = share of generated g with ||g - x|| <= r_k(x) for some real x, and recall =
  share of real x with ||x - g|| <= r_k(g) for some generated g.
- Density and coverage (Naeem et al. 2020): density = (1 / (k M)) sum_j #{real x :
  ||g_j - x|| <= r_k(x)}, coverage = share of real x whose nearest generated sample
  lies within r_k(x).

Balls are closed throughout: a point is in a ball when its distance is <= the radius,
as Kynkaanniemi et al. write the manifold. The ``prdc`` package of Naeem et al. compares
with < (open balls). The two differ only at exact ties, a distance equal to a radius:
duplicated or quantised features and memorised copies. For instance when the generated
set is a copy of the real one, each real ball holds its centre and its k nearest
neighbours, so density is (k + 1) / k here and 1 with open balls; a real point repeated
k + 1 times has radius 0, whose closed ball holds its copies and whose open ball is
empty. Distances come from :func:`kdegen.kernels.nearest` and
:func:`kdegen.kernels.count_within` in blocks; ties there are exact (the direct float64
sum of squared differences: 0 for a copy, the same value whichever set is the query).

Sizes. A k-NN radius needs k other samples of its set, so precision/recall and
density/coverage need k + 1 samples in each set (density/coverage only build real
balls; the generated set is held to the same floor). The nearest-neighbour test needs 2:
its standard deviation has ddof=1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.evaluation.metrics.inputs import Array, Minimum, as_pair, at_least
from kdegen.evaluation.metrics.registry import Inputs, register_metric

NN_MINIMUM = Minimum(2, "the std of the distances has ddof=1")
PR_K, DC_K = 3, 5  # the k of precision/recall and of density/coverage in `kdegen evaluate`


def knn_minimum(k: int) -> Minimum:
    """k + 1 samples per set: a k-NN radius needs k others."""
    return Minimum(k + 1, f"a k-NN radius needs k = {k} others")


@dataclass(frozen=True)
class NearestNeighbourResult:
    """Distances from generated samples to their nearest training samples.

    Attributes:
        mean: mean Euclidean distance.
        std: standard deviation (ddof=1) of the distances.
        distances: (n,) distance of each generated sample, float64.
        indices: (n,) index of its nearest training sample.
    """

    mean: float
    std: float
    distances: Tensor
    indices: Tensor

    def closest(self, top: int) -> Tensor:
        """Indices of the ``top`` generated samples nearest to the training set, closest first."""
        return torch.argsort(self.distances)[:top]


def flatten(x: Array) -> Tensor:
    """(n, ...) arrays, e.g. image batches (n, C, H, W), as (n, features)."""
    t = torch.as_tensor(x)
    return t.flatten(1) if t.dim() > 2 else t


def nearest_neighbour_distance(
    generated: Array, train: Array, block: int = kernels.DEFAULT_BLOCK
) -> NearestNeighbourResult:
    """Euclidean distance from each generated sample to its nearest training sample.

    Args:
        generated: (n, d) pixels or features, or images (n, C, H, W) (flattened); n >= 2.
        train: (m, d) in the same layout; m >= 2.
        block: tile size (the values do not depend on it).

    Returns:
        Mean, std, and per-sample distances and nearest indices.
    """
    g, t = as_pair(flatten(generated), flatten(train), ("generated", "train"))
    NN_MINIMUM.check("nearest_neighbour_distance", {"generated": g, "train": t})
    d2, idx = kernels.nearest(g, t, k=1, block=block)
    distances = d2[:, 0].sqrt()
    std = float(distances.std(correction=1))
    return NearestNeighbourResult(float(distances.mean()), std, distances, idx[:, 0])


def save_nearest_pairs(
    generated_images: Tensor,
    train_images: Tensor,
    result: NearestNeighbourResult,
    path: Path | str,
    top: int = 16,
) -> None:
    """Write a PNG: the ``top`` closest generated images (left) beside their neighbours (right).

    Args:
        generated_images: (n, C, H, W) in [-1, 1], in the order given to the metric.
        train_images: (m, C, H, W) in [-1, 1].
        result: what :func:`nearest_neighbour_distance` returned for these images.
        path: PNG file to write.
        top: number of pairs (rows).
    """
    from kdegen.images import save_grid

    if generated_images.shape[0] != result.distances.numel():
        raise UsageError(
            f"{generated_images.shape[0]} generated images but the result covers "
            f"{result.distances.numel()}; pass the images the metric was computed on"
        )
    rows = result.closest(at_least(top, 1, "top"))
    pairs = torch.stack([generated_images[rows], train_images[result.indices[rows]]], 1)
    save_grid(pairs.flatten(0, 1), Path(path), nrow=2)  # (2 top, C, H, W), row = one pair


def _radii_sq(x: Tensor, k: int, block: int) -> Tensor:
    """Squared distance from each row to its k-th nearest other row, (n,)."""
    return kernels.nearest(x, x, k=k, exclude_self=True, block=block)[0][:, k - 1]


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019)."""

    precision: float
    recall: float


@dataclass(frozen=True)
class DensityCoverage:
    """Density and coverage (Naeem et al. 2020)."""

    density: float
    coverage: float


def _balls(real: Array, generated: Array, k: int, metric: str) -> tuple[Tensor, Tensor, int]:
    """The real (n, d) and generated (m, d) features, k + 1 or more each, and k >= 1."""
    k = at_least(k, 1, "k")
    x, g = as_pair(real, generated, ("real", "generated"))
    knn_minimum(k).check(metric, {"real": x, "generated": g})
    return x, g, k


def precision_recall(
    real: Array, generated: Array, k: int = PR_K, block: int = kernels.DEFAULT_BLOCK
) -> PrecisionRecall:
    """Share of generated samples on the real manifold and of real ones on the generated.

    A sample lies on a set's manifold when it falls in the closed ball (distance <=
    radius; see the module docstring) around some member of the set whose radius is that
    member's distance to its k-th nearest neighbour in the set.
    ``real`` (n, d) and ``generated`` (m, d) are features, more than k of each;
    ``block`` is the tile size (the values do not depend on it).
    """
    x, g, k = _balls(real, generated, k, "precision_recall")
    in_real = kernels.count_within(g, x, _radii_sq(x, k, block), block) > 0
    in_generated = kernels.count_within(x, g, _radii_sq(g, k, block), block) > 0
    return PrecisionRecall(float(in_real.double().mean()), float(in_generated.double().mean()))


def density_coverage(
    real: Array, generated: Array, k: int = DC_K, block: int = kernels.DEFAULT_BLOCK
) -> DensityCoverage:
    """How many real k-NN balls hold each generated sample, and how many balls are hit.

    Density: the mean count of closed real balls (radius: the real sample's k-th
    neighbour distance among the real ones) around each generated sample, over k;
    coverage: the share of real balls holding at least one generated sample. Arguments
    as :func:`precision_recall`.
    """
    x, g, k = _balls(real, generated, k, "density_coverage")
    radii = _radii_sq(x, k, block)
    counts = kernels.count_within(g, x, radii, block)
    nearest_generated = kernels.nearest(x, g, k=1, block=block)[0][:, 0]
    density = float(counts.double().sum()) / (k * g.shape[0])
    return DensityCoverage(density, float((nearest_generated <= radii).double().mean()))


@register_metric(
    "nearest_neighbour",
    ("generated_pixels", "train_pixels"),
    "mean pixel distance to train NN",
    NN_MINIMUM,
)
def _nearest_metric(inputs: Inputs) -> dict[str, float]:
    r = nearest_neighbour_distance(inputs["generated_pixels"], inputs["train_pixels"])
    return {"mean": r.mean, "std": r.std}


@register_metric(
    "precision_recall",
    ("generated", "test"),
    f"k-NN precision and recall (k={PR_K}, closed balls)",
    knn_minimum(PR_K),
)
def _precision_recall_metric(inputs: Inputs) -> dict[str, float]:
    r = precision_recall(inputs["test"], inputs["generated"])
    return {"precision": r.precision, "recall": r.recall}


@register_metric(
    "density_coverage",
    ("generated", "test"),
    f"k-NN density and coverage (k={DC_K}, closed balls)",
    knn_minimum(DC_K),
)
def _density_coverage_metric(inputs: Inputs) -> dict[str, float]:
    r = density_coverage(inputs["test"], inputs["generated"])
    return {"density": r.density, "coverage": r.coverage}
