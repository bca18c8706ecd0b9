"""k-NN metrics at exact distance ties: integer lattices, duplicates and memorised copies.

Precision/recall and density/coverage use closed balls (a point is in a ball when its
distance is <= the radius). At ties that decision must follow the exact distances: here
they are checked against a direct O(n^2) reference in integer arithmetic (exact), and on
copies against closed forms. A pair's distance must not depend on which set is the query.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from kdegen import kernels
from kdegen.evaluation import metrics as M


def exact_sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) squared distances of integer points, in int64 (exact)."""
    diff = a.astype(np.int64)[:, None, :] - b.astype(np.int64)[None, :, :]
    return (diff * diff).sum(-1)


def exact_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point (itself excluded
    by index; copies of it count, at distance 0)."""
    d = exact_sq_dists(x, x).astype(float)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def exact_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, ...]:
    """(precision, recall, density, coverage) with closed balls, by the O(n^2) definitions."""
    d = exact_sq_dists(real, fake)  # (real, fake)
    rr, rf = exact_radii(real, k), exact_radii(fake, k)
    in_real_balls = d <= rr[:, None]
    precision = in_real_balls.any(0).mean()
    recall = (d <= rf[None, :]).any(1).mean()
    density = in_real_balls.sum() / (k * len(fake))
    coverage = (d.min(1) <= rr).mean()
    return float(precision), float(recall), float(density), float(coverage)


def lattice(n: int, dim: int, top: int, seed: int) -> np.ndarray:
    """n points of {0, ..., top}^dim drawn with replacement: many exact ties and copies."""
    return np.random.default_rng(seed).integers(0, top + 1, size=(n, dim))


@pytest.mark.parametrize(
    ("dtype", "offset"), [(np.float64, 0.0), (np.float32, 0.0), (np.float32, 1000.0)]
)
@pytest.mark.parametrize(("dim", "top"), [(2, 3), (5, 2)])
def test_prdc_on_an_integer_lattice_match_exact_closed_balls(
    dtype: type, offset: float, dim: int, top: int
) -> None:
    real, fake = lattice(70, dim, top, 1), lattice(55, dim, top + 1, 2)
    r, f = (real + offset).astype(dtype), (fake + offset).astype(dtype)  # exact in float32 too
    for k in (1, 3, 5):
        precision, recall, density, coverage = exact_prdc(real, fake, k)
        pr = M.precision_recall(r, f, k=k, block=16)
        dc = M.density_coverage(r, f, k=k, block=16)
        assert (pr.precision, pr.recall) == (precision, recall)
        assert dc.density == pytest.approx(density, rel=1e-15)
        assert dc.coverage == coverage


def test_swapping_real_and_generated_swaps_precision_and_recall() -> None:
    a, b = lattice(60, 3, 2, 3).astype(np.float32), lattice(45, 3, 3, 4).astype(np.float32)
    ab, ba = M.precision_recall(a, b, block=8), M.precision_recall(b, a, block=8)
    assert (ab.precision, ab.recall) == (ba.recall, ba.precision)


def noisy(n: int, dim: int, offset: float, seed: int) -> torch.Tensor:
    """float32 features far from the origin (a large mean, as of unnormalised embeddings)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g) + offset


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_a_pair_has_one_distance_whichever_set_is_the_query(offset: float) -> None:
    a, b = noisy(40, 7, offset, 5), noisy(30, 7, offset, 6)
    d_ab = torch.empty(40, 30, dtype=torch.float64)
    d_ba = torch.empty(30, 40, dtype=torch.float64)
    v, i = kernels.nearest(a, b, k=30, block=8)  # every point: the full matrix, sorted
    d_ab.scatter_(1, i, v.double())
    v, i = kernels.nearest(b, a, k=40, block=16)
    d_ba.scatter_(1, i, v.double())
    assert torch.equal(d_ab, d_ba.T)


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_copies_are_at_distance_exactly_zero(offset: float) -> None:
    real = noisy(300, 16, offset, 7)
    fake = real[torch.randperm(300, generator=torch.Generator().manual_seed(8))]
    assert bool((kernels.nearest(fake, real, k=1, block=64)[0] == 0).all())
    assert bool((kernels.nearest(real, fake, k=1, block=64)[0] == 0).all())
    nn = M.nearest_neighbour_distance(fake, real, block=64)
    assert nn.mean == 0.0 and bool((nn.distances == 0).all())


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_copies_score_the_closed_forms(offset: float) -> None:
    """fake = real (reordered): every fake point is a real one, so precision = recall =
    coverage = 1; each real ball holds its own centre and its k nearest neighbours (the
    k-th on the sphere: a closed ball), so density = (k + 1) / k when distances are
    distinct."""
    real = noisy(300, 16, offset, 9)
    fake = real[torch.randperm(300, generator=torch.Generator().manual_seed(10))]
    for k in (1, 3, 5):
        pr = M.precision_recall(real, fake, k=k, block=64)
        dc = M.density_coverage(real, fake, k=k, block=64)
        assert (pr.precision, pr.recall, dc.coverage) == (1.0, 1.0, 1.0)
        assert dc.density == (k + 1) / k


def test_duplicated_real_points_have_balls_of_radius_zero() -> None:
    """A real point repeated k + 1 times has radius 0: its copies in the generated set
    are inside (closed ball), points a hair away are not."""
    base = noisy(50, 4, 1000.0, 11)
    real = torch.cat([base, base[:10].repeat(3, 1)])  # the first 10 occur 4 times: r = 0 (k=3)
    fake = torch.cat([base[:10], base[:10] + 2.0**-10])  # 10 copies, 10 near misses
    radii = M.neighbours._radii_sq(real, 3, 16)
    assert radii[:10].tolist() == [0.0] * 10
    counts = kernels.count_within(fake, real, radii, block=16)
    d = cdist(fake.double().numpy(), real.double().numpy(), "sqeuclidean")  # direct, float64
    expected = (d <= radii.double().numpy()[None, :]).sum(1)
    assert counts.tolist() == expected.tolist()
    assert bool((counts[:10] >= 4).all())  # each copy: in all 4 balls of radius 0
