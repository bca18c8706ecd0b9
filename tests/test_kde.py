"""The KDE prior against scikit-learn, bandwidth rules against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import multivariate_normal
from sklearn.neighbors import KernelDensity

from kdegen.errors import UsageError
from kdegen.priors import KDE, select_bandwidth

rng = np.random.default_rng(0)
CODES = rng.normal(size=(300, 3)) * [1.0, 2.0, 0.5] + [1.0, -1.0, 0.0]
QUERY = rng.normal(size=(50, 3)) * 1.5


def t(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


@pytest.mark.parametrize("block", [7, 2048])
def test_log_prob_matches_scikit_learn(block: int) -> None:
    kde = KDE(bandwidth=0.4, block=block).fit(t(CODES))
    ref = KernelDensity(kernel="gaussian", bandwidth=0.4).fit(CODES).score_samples(QUERY)
    np.testing.assert_allclose(kde.log_prob(t(QUERY)).numpy(), ref, rtol=1e-5)
    assert kde.bandwidth == 0.4


def test_background_mixture_log_prob() -> None:
    kde = KDE(bandwidth=0.4, background=0.25).fit(t(CODES))
    dens = np.exp(KernelDensity(bandwidth=0.4).fit(CODES).score_samples(QUERY))
    normal = multivariate_normal(np.zeros(3), np.eye(3)).pdf(QUERY)
    expected = np.log(0.75 * dens + 0.25 * normal)
    np.testing.assert_allclose(kde.log_prob(t(QUERY)).numpy(), expected, rtol=1e-6)


def test_samples_have_the_mixture_moments() -> None:
    """KDE samples: mean of the codes, covariance cov(codes) + h^2 I."""
    kde = KDE(bandwidth=0.3).fit(t(CODES))
    z = kde.sample(200_000, generator=torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(z.mean(0), CODES.mean(0), atol=0.02)
    cov = np.cov(CODES.T, bias=True) + 0.09 * np.eye(3)
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.03)
    mixed = KDE(bandwidth=0.3, background=0.5).fit(t(CODES))
    w = mixed.sample(200_000, generator=torch.Generator().manual_seed(1)).numpy()
    np.testing.assert_allclose(w.mean(0), 0.5 * CODES.mean(0), atol=0.02)
    again = kde.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, kde.sample(5, generator=torch.Generator().manual_seed(3)))


def test_rules_of_thumb() -> None:
    n, d = CODES.shape
    sigma = math.sqrt(np.var(CODES, axis=0, ddof=1).mean())
    assert select_bandwidth(t(CODES), "scott") == pytest.approx(sigma * n ** (-1 / (d + 4)))
    silverman = sigma * (n * (d + 2) / 4) ** (-1 / (d + 4))
    assert select_bandwidth(t(CODES), "silverman") == pytest.approx(silverman)
    assert KDE("scott").fit(t(CODES)).bandwidth == pytest.approx(sigma * n ** (-1 / (d + 4)))


def test_ml_bandwidth_is_the_fixed_point_of_eq5() -> None:
    """h^2 = (1/(d n)) sum_i sum_{j!=i} ||z_i - z_j||^2 w_ij, computed here directly."""
    h = select_bandwidth(t(CODES), "ml")
    n, d = CODES.shape
    d2 = cdist(CODES, CODES, "sqeuclidean")
    w = np.exp(-d2 / (2 * h * h))
    np.fill_diagonal(w, 0)
    rhs = ((w * d2).sum(1) / w.sum(1)).sum() / (d * n)
    assert h * h == pytest.approx(rhs, rel=1e-6)

    # and it maximises the leave-one-out likelihood along h
    def loo(hh: float) -> float:
        k = np.exp(-d2 / (2 * hh * hh))
        np.fill_diagonal(k, 0)
        return float(np.log(k.sum(1) / ((n - 1) * (2 * np.pi * hh * hh) ** (d / 2))).mean())

    assert loo(h) > loo(0.9 * h) and loo(h) > loo(1.1 * h)


def test_bad_inputs() -> None:
    with pytest.raises(UsageError, match="positive"):
        KDE(bandwidth=0.0)
    with pytest.raises(UsageError, match="positive"):
        KDE(bandwidth=-1.0)
    with pytest.raises(UsageError, match="neither a number"):
        KDE(bandwidth="wide")
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        KDE(background=1.5)
    with pytest.raises(UsageError, match="non-empty"):
        KDE().fit(torch.zeros(0, 3))
    with pytest.raises(UsageError, match="not fitted"):
        KDE().sample(3)
    with pytest.raises(UsageError, match="shape"):
        KDE(0.5).fit(t(CODES)).log_prob(torch.zeros(2, 4, dtype=torch.float64))
    assert KDE("0.25").fit(t(CODES)).bandwidth == 0.25


def test_nn_bandwidth_against_a_direct_computation() -> None:
    """Median over distinct codes of the distance to the nearest other code, over sqrt(d);
    a copy of a code does not make its nearest distance 0."""
    g = torch.Generator().manual_seed(3)
    codes = torch.randn(200, 5, generator=g, dtype=torch.float64)
    doubled = torch.cat([codes, codes[:50]])
    d = torch.cdist(codes, codes) + torch.diag(
        torch.full((200,), float("inf"), dtype=torch.float64)
    )
    expected = float(d.min(1).values.median()) / 5**0.5
    assert select_bandwidth(doubled, "nn") == pytest.approx(expected, rel=1e-9)
    assert select_bandwidth(doubled, "0.3*nn") == pytest.approx(0.3 * expected, rel=1e-9)


@pytest.mark.parametrize("rule", ["nn", "std", "scott", "silverman", "ml", "0.3*nn"])
def test_rules_refuse_codes_without_spread(rule: str) -> None:
    """One code, or copies of one code, have no scale: a rule used to fall back silently
    on h = 1; now it says so (a number still works)."""
    one = torch.randn(1, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for codes in (one, one.repeat(4, 1)):
        with pytest.raises(UsageError, match="not all equal"):
            select_bandwidth(codes, rule)
    assert select_bandwidth(one.repeat(4, 1), 0.2) == 0.2


@pytest.mark.parametrize(
    ("rule", "expect"),
    [("0.3*std", 0.3), ("2*scott", None), ("std", 1.0), ("0.5", 0.5)],
)
def test_bandwidth_rules_with_factors(rule: str, expect: float | None) -> None:
    codes = torch.randn(400, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = float(codes.var(0, unbiased=True).mean().sqrt())
    h = select_bandwidth(codes, rule)
    if rule == "2*scott":
        assert h == pytest.approx(2 * sigma * 400 ** (-1 / 7))
    elif rule == "0.5":
        assert h == 0.5
    else:
        assert h == pytest.approx(expect * sigma)


@pytest.mark.parametrize("rule", ["0.3*foo", "-1*std", "x*nn", "0*std", "nan"])
def test_bad_bandwidth_rules(rule: str) -> None:
    with pytest.raises(UsageError, match="bandwidth"):
        KDE(rule)


def _direct_log_kde(z: torch.Tensor, centres: torch.Tensor, h: float) -> torch.Tensor:
    """log (1/m) sum_i N(z; c_i, h^2 I) written out over all pairs (autograd traces it)."""
    d2 = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    log_norm = 0.5 * z.shape[1] * math.log(2 * math.pi * h * h)
    return torch.logsumexp(-d2 / (2 * h * h), 1) - math.log(len(centres)) - log_norm


@pytest.mark.parametrize("background", [0.0, 0.3])
def test_log_prob_is_differentiable_with_the_direct_gradient(background: float) -> None:
    """One KDE log density for every caller: the prior's is differentiable in its queries."""
    kde = KDE(bandwidth=0.5, background=background, block=16).fit(t(CODES))
    z = t(QUERY).requires_grad_(True)
    kde.log_prob(z).sum().backward()
    z_ref = t(QUERY).requires_grad_(True)
    log_kde = _direct_log_kde(z_ref, t(CODES), 0.5)
    if background:
        log_bg = torch.distributions.Normal(0.0, 1.0).log_prob(z_ref).sum(1)
        log_kde = torch.logaddexp(log_kde + math.log1p(-background), log_bg + math.log(background))
    log_kde.sum().backward()
    assert z.grad is not None and z_ref.grad is not None
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["query", "centres"])
def test_non_finite_points_are_refused(bad: float, where: str) -> None:
    from kdegen.kernels import kde_log_prob

    z, centres = t(QUERY), t(CODES)
    (z if where == "query" else centres)[3, 1] = bad
    with pytest.raises(UsageError, match="NaN or infinite"):
        kde_log_prob(z, centres, 0.4)
    if where == "query":
        with pytest.raises(UsageError, match="NaN or infinite"):
            KDE(bandwidth=0.4).fit(t(CODES)).log_prob(z)


def test_leave_one_out_density_with_and_without_gradient() -> None:
    """exclude_self (the entropy's density) equals a direct leave-one-out sum, on both
    the tiled path (no gradient) and the differentiable one."""
    from kdegen.kernels import kde_log_prob

    z = t(CODES[:60])
    d2 = torch.tensor(cdist(CODES[:60], CODES[:60], "sqeuclidean"))
    d2.fill_diagonal_(math.inf)
    h = 0.7
    expected = (
        torch.logsumexp(-d2 / (2 * h * h), 1) - math.log(59) - 1.5 * math.log(2 * math.pi * h * h)
    )
    torch.testing.assert_close(kde_log_prob(z, z, h, 16, exclude_self=True), expected)
    zg = z.clone().requires_grad_(True)
    torch.testing.assert_close(kde_log_prob(zg, z, h, 16, exclude_self=True).detach(), expected)
