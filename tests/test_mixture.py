"""GaussianMixture prior against SciPy, its sample moments, the circle layout and Eq. 8."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from kdegen.errors import UsageError
from kdegen.priors import GaussianMixture, Normal, Prior, converged_prior

MEANS = [[0.0, 0.0, 0.0], [3.0, -1.0, 0.5], [-2.0, 2.0, 1.0]]
STDS = [1.0, 0.5, 2.0]
WEIGHTS = [0.2, 0.5, 0.3]


def mixture() -> GaussianMixture:
    return GaussianMixture(MEANS, STDS, WEIGHTS)


def scipy_components(z: np.ndarray) -> np.ndarray:
    """(n, K) component densities from SciPy."""
    return np.stack(
        [
            multivariate_normal(mu, s * s * np.eye(3)).pdf(z)
            for mu, s in zip(MEANS, STDS, strict=True)
        ],
        1,
    )


def test_is_a_prior() -> None:
    gm = mixture()
    assert isinstance(gm, Prior)
    assert (gm.dim, gm.n_components) == (3, 3)


def test_log_prob_matches_scipy() -> None:
    z = np.random.default_rng(0).normal(size=(200, 3)) * 3
    dens = scipy_components(z)
    expected = np.log(dens @ np.array(WEIGHTS))
    got = mixture().log_prob(torch.tensor(z))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(
        mixture().component_log_prob(torch.tensor(z)).numpy(), np.log(dens), rtol=1e-10
    )
    resp = mixture().responsibilities(torch.tensor(z)).numpy()
    weighted = dens * np.array(WEIGHTS)
    np.testing.assert_allclose(resp, weighted / weighted.sum(1, keepdims=True), atol=1e-10)


def test_log_prob_is_differentiable_and_keeps_dtype() -> None:
    z = torch.randn(5, 3, requires_grad=True)
    out = mixture().log_prob(z)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert z.grad is not None and bool(torch.isfinite(z.grad).all())


def test_sample_moments() -> None:
    n = 200_000
    z = mixture().sample(n, generator=torch.Generator().manual_seed(0)).double().numpy()
    mu, s, w = np.array(MEANS), np.array(STDS), np.array(WEIGHTS)
    mean = w @ mu
    # Cov = sum_k w_k (s_k^2 I + mu_k mu_k^T) - mean mean^T
    cov = np.einsum(
        "k,kij->ij", w, s[:, None, None] ** 2 * np.eye(3) + mu[:, :, None] * mu[:, None]
    )
    cov -= np.outer(mean, mean)
    np.testing.assert_allclose(z.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.05)
    # the fraction of points nearest each mean's component follows the weights
    labels = mixture().responsibilities(torch.tensor(z)).argmax(1).numpy()
    assert abs(np.mean(labels == 1) - 0.5) < 0.02


def test_sampling_repeats_with_a_seed() -> None:
    a = mixture().sample(50, generator=torch.Generator().manual_seed(3))
    b = mixture().sample(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (50, 3) and a.dtype == torch.float32
    assert mixture().sample(0).shape == (0, 3)


@pytest.mark.parametrize(("k", "dim"), [(10, 2), (4, 5)])
def test_on_circle_geometry(k: int, dim: int) -> None:
    gm = GaussianMixture.on_circle(k, dim=dim, radius=4.0, std=0.3)
    means = gm.means.numpy()
    assert means.shape == (k, dim) and np.allclose(means[:, 2:], 0)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 4.0)
    angles = np.sort(np.mod(np.arctan2(means[:, 1], means[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(angles), 2 * np.pi / k)
    np.testing.assert_allclose(gm.weights.numpy(), 1 / k)
    np.testing.assert_allclose(gm.stds.numpy(), 0.3)


def test_default_circle_modes_are_separated() -> None:
    gm = GaussianMixture.on_circle(10)
    gap = float(torch.linalg.norm(gm.means[0] - gm.means[1]))
    assert gap / float(gm.stds[0]) > 6  # a point's mode is unambiguous
    z = gm.sample(5000, generator=torch.Generator().manual_seed(0))
    # almost every sample is assigned with near certainty to one mode
    assert float((gm.responsibilities(z).max(1).values > 0.99).float().mean()) > 0.97


def test_shrunk_subtracts_the_kernel_variance() -> None:
    # GENs Eq. 8 per component: the codes' mixture convolved with G_h is the target
    gm = mixture().shrunk(0.4)
    np.testing.assert_allclose(gm.stds.numpy() ** 2, np.array(STDS) ** 2 - 0.16)
    np.testing.assert_allclose(gm.weights.numpy(), WEIGHTS)
    g = torch.Generator().manual_seed(1)
    z = gm.sample(100_000, generator=g).double() + 0.4 * torch.randn(100_000, 3, generator=g)
    target = mixture().sample(100_000, generator=g).double()
    np.testing.assert_allclose(np.cov(z.numpy().T), np.cov(target.numpy().T), atol=0.08)
    with pytest.raises(UsageError, match="smallest component std"):
        mixture().shrunk(0.5)


def test_converged_prior_of_the_standard_normal() -> None:
    prior = converged_prior(Normal(4), 0.6)
    assert isinstance(prior, Normal) and prior.std == pytest.approx(math.sqrt(1 - 0.36))
    assert isinstance(converged_prior(mixture(), 0.3), GaussianMixture)
    with pytest.raises(UsageError, match="more KDE samples m or a smaller latent dimension"):
        converged_prior(Normal(4), 1.0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0.0, 1.0],), "shape"),
        ((MEANS, [1.0, -1.0, 1.0]), "stds positive"),
        ((MEANS, 1.0, [1.0, 2.0]), "one entry per mean"),
        ((MEANS, 1.0, [1.0, -2.0, 1.0]), "non-negative"),
    ],
)
def test_bad_parameters_say_what_is_wrong(args: tuple, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        GaussianMixture(*args)


def test_circle_needs_two_dimensions() -> None:
    with pytest.raises(UsageError, match="at least 2"):
        GaussianMixture.on_circle(10, dim=1)
