"""KDE-JSD, optimal bandwidths (GENs Table 1) and KDE entropy against direct formulas."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from kdegen.errors import UsageError
from kdegen.priors import GaussianMixture, Normal, select_bandwidth
from kdegen.stats import (
    entropy_bandwidth,
    kde_entropy,
    kde_jsd,
    kde_jsd_terms,
    kde_log_prob,
    optimal_jsd_bandwidth,
)
from kdegen.stats import jsd as jsd_module

# GENs Table 1: optimal h (mean, error bar over 10 trials) for a standard-normal target;
# None: "> 1.0" (the latent dimension is beyond what m samples support).
TABLE1: dict[int, list[tuple[float, float] | None]] = {
    2: [(0.46, 0.08), (0.41, 0.04), (0.38, 0.03), (0.34, 0.02), (0.31, 0.03), (0.28, 0.01)],
    5: [(0.65, 0.03), (0.59, 0.02), (0.55, 0.02), (0.51, 0.01), (0.47, 0.01), (0.44, 0.01)],
    10: [(0.77, 0.02), (0.73, 0.01), (0.69, 0.01), (0.66, 0.01), (0.63, 0.01), (0.60, 0.01)],
    20: [(0.92, 0.01), (0.89, 0.01), (0.86, 0.00), (0.82, 0.01), (0.80, 0.00), (0.77, 0.00)],
    40: [None, None, None, (0.98, 0.00), (0.95, 0.00), (0.94, 0.00)],
}
SIZES = [250, 500, 1000, 2000, 4000, 8000]
CELLS = [(dim, m) for dim in TABLE1 for m in SIZES]
QUICK_CELLS = [(2, 500), (5, 250), (10, 500), (20, 250), (40, 250)]
ROUNDING = 0.01  # both the mean and its error bar are printed rounded to 0.005


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # The kernel tiles here are small: on 2 shared cores, OpenMP threads waiting for each
    # other at every tile cost far more than the parallel work saves.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def check_table_cell(dim: int, m: int) -> None:
    expected = TABLE1[dim][SIZES.index(m)]
    if expected is None:
        with pytest.raises(UsageError, match="more samples m or a smaller latent dimension"):
            optimal_jsd_bandwidth(dim, m, Normal(dim), trials=10, seed=0, cache=False)
        return
    h, _ = optimal_jsd_bandwidth(dim, m, Normal(dim), trials=10, seed=0, cache=False)
    mean, err = expected
    assert abs(h - mean) <= err + ROUNDING, (dim, m, h, mean, err)


def log_kde_direct(z: np.ndarray, centres: np.ndarray, h: float) -> np.ndarray:
    d2 = cdist(z, centres, "sqeuclidean")
    norm = math.log(len(centres)) + 0.5 * z.shape[1] * math.log(2 * math.pi * h * h)
    return logsumexp(-d2 / (2 * h * h), axis=1) - norm


def jsd_direct(z1: np.ndarray, centres: np.ndarray, z2: np.ndarray, h: float) -> tuple:
    """Both halves of Eq. 2 for the standard-normal target, in NumPy/SciPy."""
    normal = multivariate_normal(np.zeros(z1.shape[1]), np.eye(z1.shape[1]))
    pe1, pt1 = log_kde_direct(z1, centres, h), normal.logpdf(z1)
    pe2, pt2 = log_kde_direct(z2, centres, h), normal.logpdf(z2)
    first = 0.5 * np.mean(math.log(2) + pe1 - np.logaddexp(pe1, pt1))
    second = 0.5 * np.mean(math.log(2) + pt2 - np.logaddexp(pe2, pt2))
    return first, second


def normal_samples(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64) + shift


@pytest.mark.parametrize("block", [7, 1024])
def test_kde_jsd_matches_direct_formula(block: int) -> None:
    z1, centres, z2 = (normal_samples(n, 3, s) for n, s in [(40, 1), (90, 2), (60, 3)])
    centres = centres * 1.3 + 0.2  # p_e differs from the target
    first, second = kde_jsd_terms(z1, centres, Normal(3), 0.5, z_target=z2, block=block)
    ref = jsd_direct(z1.numpy(), centres.numpy(), z2.numpy(), 0.5)
    np.testing.assert_allclose([float(first), float(second)], ref, rtol=1e-10)
    total = kde_jsd(z1, centres, Normal(3), 0.5, z_target=z2, block=block)
    np.testing.assert_allclose(float(total), sum(ref), rtol=1e-10)
    only = kde_jsd(z1, centres, Normal(3), 0.5, first_only=True, block=block)
    np.testing.assert_allclose(float(only), ref[0], rtol=1e-10)


def test_kde_log_prob_matches_direct_formula() -> None:
    z, centres = normal_samples(30, 4, 1) * 3, normal_samples(200, 4, 2)
    got = kde_log_prob(z, centres, 0.3, block=16).numpy()
    np.testing.assert_allclose(got, log_kde_direct(z.numpy(), centres.numpy(), 0.3), rtol=1e-10)


@pytest.mark.parametrize("block", [2, 7, 1024])  # 7: a ragged last tile
def test_kde_log_prob_leaves_out_same_ids(block: int) -> None:
    """Leave-one-out by id equals the KDE over the other centres (SciPy), gradients too."""
    z, centres = normal_samples(9, 3, 1) * 2, normal_samples(40, 3, 2)
    centre_ids = torch.arange(40) % 12  # ids 0-3 appear 4 times, the rest 3
    query_ids = torch.tensor([0, 1, 5, 11, 99, 3, 3, 7, -1])  # 99, -1: nothing to leave out
    z.requires_grad_(True)
    got = kde_log_prob(z, centres, 0.4, block=block, ids=(query_ids, centre_ids))
    keep = [(centre_ids != q).numpy() for q in query_ids]
    want = [log_kde_direct(z.detach().numpy()[i : i + 1], centres.numpy()[k], 0.4)[0]
            for i, k in enumerate(keep)]  # fmt: skip
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10)
    (grad,) = torch.autograd.grad(got.sum(), z)
    d2 = ((z[:, None] - centres[None]) ** 2).sum(-1)
    mask = query_ids[:, None] == centre_ids[None]
    direct = torch.logsumexp((-d2 / 0.32).masked_fill(mask, -math.inf), 1)
    (want_grad,) = torch.autograd.grad(direct.sum(), z)
    torch.testing.assert_close(grad, want_grad)


def test_leave_out_is_exact_where_the_own_kernel_dominates() -> None:
    """A query far out beside its own centre: the others' density is e^-7000 smaller."""
    centres = normal_samples(50, 3, 4)
    z = centres[:1] + torch.tensor([[30.0, 0.0, 0.0]])
    centres[0] = z[0] - 0.01
    got = kde_log_prob(z, centres, 0.4, ids=(torch.tensor([0]), torch.arange(50)))
    want = log_kde_direct(z.numpy(), centres[1:].numpy(), 0.4)
    assert float(want[0]) < -2000
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_equal_distributions_give_near_zero() -> None:
    # KDE centres, minibatch and target samples: three independent N(0, I) sets
    z1, centres, z2 = (normal_samples(2000, 2, s) for s in (1, 2, 3))
    value = float(kde_jsd(z1, centres, Normal(2), 0.34, z_target=z2))
    assert abs(value) < 0.01


def test_disjoint_distributions_give_log2() -> None:
    centres, z1 = normal_samples(500, 2, 1, shift=20.0), normal_samples(300, 2, 2, shift=20.0)
    g = torch.Generator().manual_seed(0)
    value = float(kde_jsd(z1, centres, Normal(2), 0.4, n_target=300, generator=g))
    assert value == pytest.approx(math.log(2), abs=1e-6)


def test_gradient_reaches_queries_and_matches_autograd() -> None:
    z1 = normal_samples(25, 3, 1).requires_grad_(True)
    centres = normal_samples(80, 3, 2) + 0.5
    kde_jsd(z1, centres, Normal(3), 0.6, first_only=True, block=9).backward()
    assert z1.grad is not None and bool(torch.isfinite(z1.grad).all()) and z1.grad.abs().sum() > 0
    # the same loss written with differentiable dense torch operations
    z_ref = z1.detach().clone().requires_grad_(True)
    d2 = torch.cdist(z_ref, centres).pow(2)
    log_pe = (
        torch.logsumexp(-d2 / (2 * 0.36), 1) - math.log(80) - 1.5 * math.log(2 * math.pi * 0.36)
    )
    log_pt = Normal(3).log_prob(z_ref)
    (0.5 * (math.log(2) + log_pe - torch.logaddexp(log_pe, log_pt)).mean()).backward()
    assert z_ref.grad is not None
    torch.testing.assert_close(z1.grad, z_ref.grad, rtol=1e-8, atol=1e-12)
    # the full JSD has the same gradient: the second half does not depend on z'
    z_full = z1.detach().clone().requires_grad_(True)
    kde_jsd(z_full, centres, Normal(3), 0.6, z_target=normal_samples(50, 3, 3)).backward()
    torch.testing.assert_close(z_full.grad, z1.grad)


def test_kde_log_prob_gradcheck() -> None:
    z = normal_samples(6, 2, 1).requires_grad_(True)
    centres = normal_samples(20, 2, 2)
    assert torch.autograd.gradcheck(lambda q: kde_log_prob(q, centres, 0.7, block=4), (z,))


def test_bad_inputs_say_what_to_do() -> None:
    z = normal_samples(10, 2, 1)
    with pytest.raises(UsageError, match="bandwidth"):
        kde_jsd(z, z, Normal(2), 0.0)
    with pytest.raises(UsageError, match=r"\(n, 2\)"):
        kde_jsd(normal_samples(10, 3, 1), z, Normal(2), 0.5)
    with pytest.raises(UsageError, match="m >= 2"):
        optimal_jsd_bandwidth(2, 1, cache=False)


@pytest.mark.parametrize(("dim", "m"), QUICK_CELLS)
def test_table1_quick_cells(dim: int, m: int) -> None:
    check_table_cell(dim, m)


@pytest.mark.slow
@pytest.mark.parametrize(("dim", "m"), CELLS)
def test_table1_all_cells(dim: int, m: int) -> None:
    check_table_cell(dim, m)


def test_bandwidth_scales_with_the_target() -> None:
    # N(0, 4 I) samples are exactly twice N(0, I) samples from the same seed
    h1, s1 = optimal_jsd_bandwidth(3, 300, Normal(3), trials=3, cache=False)
    h2, s2 = optimal_jsd_bandwidth(3, 300, Normal(3, std=2.0), trials=3, cache=False)
    assert h2 == pytest.approx(2 * h1, rel=3e-3)
    assert s2 == pytest.approx(2 * s1, rel=0.05)


def test_bandwidth_for_a_mixture_target() -> None:
    target = GaussianMixture.on_circle(10)
    h, h_std = optimal_jsd_bandwidth(2, 1000, target, trials=3, cache=False)
    # modes 6 stds apart: the KDE resolves each mode with ~100 samples, as for N(0, s^2 I)
    # with m = 100 (h / s between the table's 0.46 at m = 250 and the 2-D rule of thumb)
    assert 0.3 * target.stds[0] < h < 0.8 * target.stds[0]
    assert 0 <= h_std < 0.2 * h


def test_cache_hit_skips_the_solver(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KDEGEN_CACHE", str(tmp_path))
    first = optimal_jsd_bandwidth(2, 250, trials=2, seed=1)
    files = list((tmp_path / "bandwidths").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["key"]["m"] == 250

    def fail(*args: object) -> list[float]:
        raise AssertionError("the solver ran although the result was cached")

    monkeypatch.setattr(jsd_module, "_solve_trials", fail)
    assert optimal_jsd_bandwidth(2, 250, trials=2, seed=1) == first
    with pytest.raises(AssertionError):  # another seed is another key
        optimal_jsd_bandwidth(2, 250, trials=2, seed=2)


def test_corrupt_cache_is_ignored_and_rewritten(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KDEGEN_CACHE", str(tmp_path))
    first = optimal_jsd_bandwidth(2, 250, trials=2, seed=1)
    (path,) = (tmp_path / "bandwidths").glob("*.json")
    path.write_text('{"key": {"m": 2')
    assert optimal_jsd_bandwidth(2, 250, trials=2, seed=1) == first
    assert json.loads(path.read_text())["h"]
    assert not list(path.parent.glob("*.tmp"))


def test_too_many_dimensions_for_m_says_what_to_do() -> None:
    with pytest.raises(UsageError, match=r"h = 1\.\d+ is not below .*more samples m"):
        optimal_jsd_bandwidth(40, 250, Normal(40), trials=2, cache=False)


# ---- entropy (Eq. 9) ---------------------------------------------------------------------


def entropy_direct(z: np.ndarray, h: float) -> float:
    d2 = cdist(z, z, "sqeuclidean")
    np.fill_diagonal(d2, np.inf)  # leave one out
    m, dim = z.shape
    log_p = logsumexp(-d2 / (2 * h * h), axis=1) - math.log(m - 1)
    return -float(np.mean(log_p - 0.5 * dim * math.log(2 * math.pi * h * h)))


@pytest.mark.parametrize("block", [13, 2048])
def test_entropy_matches_direct_formula(block: int) -> None:
    z = normal_samples(300, 3, 1) * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    assert kde_entropy(z, 0.4, block=block) == pytest.approx(entropy_direct(z.numpy(), 0.4))


def test_entropy_bandwidth_is_the_fixed_point_of_eq5() -> None:
    z = normal_samples(400, 3, 2).numpy()
    h = entropy_bandwidth(torch.from_numpy(z))
    assert h == select_bandwidth(torch.from_numpy(z), "ml")
    d2 = cdist(z, z, "sqeuclidean")
    w = np.exp(-d2 / (2 * h * h))
    np.fill_diagonal(w, 0.0)
    h2 = np.sum((w * d2).sum(1) / w.sum(1)) / (3 * 400)
    assert h * h == pytest.approx(h2, rel=1e-6)
    assert kde_entropy(torch.from_numpy(z)) == pytest.approx(entropy_direct(z, h))


def check_normal_entropy(dim: int, m: int) -> float:
    # The leave-one-out KDE over-estimates the entropy: the kernel smooths the density,
    # an O(h^2) bias that grows with the dimension (GENs Table 2: 11.62 for l = 8,
    # m = 2000, against the exact 11.35, i.e. +2.4 %). Hence a one-sided 5 % tolerance.
    got = kde_entropy(normal_samples(m, dim, dim))
    exact = 0.5 * dim * math.log(2 * math.pi * math.e)
    assert -0.01 * exact < got - exact < 0.05 * exact
    return got


@pytest.mark.parametrize(("dim", "m"), [(2, 1000), (5, 2000)])
def test_entropy_of_standard_normal(dim: int, m: int) -> None:
    check_normal_entropy(dim, m)


@pytest.mark.slow
@pytest.mark.parametrize(("dim", "m"), [(2, 4000), (5, 3000), (8, 4000)])
def test_entropy_of_standard_normal_large(dim: int, m: int) -> None:
    check_normal_entropy(dim, m)


def test_entropy_of_standard_normal_matches_table2() -> None:
    # GENs Table 2, "Standard Normal", l = 8, m = 2000: 11.621 +- 0.0597 (over 5 draws)
    got = check_normal_entropy(8, 2000)
    assert abs(got - 11.621) < 2 * 0.0597


def test_entropy_and_log_density_refuse_bad_input_in_one_line() -> None:
    """kde_entropy on NaN codes said "the ml bandwidth did not converge"; kde_log_prob with
    mismatched dimensions raised a bare ValueError (issue 14, 17)."""
    z = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    z[2, 1] = math.nan
    with pytest.raises(UsageError, match="NaN or infinite"):
        kde_entropy(z)
    with pytest.raises(UsageError, match=r"\(4, 3\) and \(5, 2\)"):
        kde_log_prob(torch.randn(4, 3), torch.randn(5, 2), 0.3)
