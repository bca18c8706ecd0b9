"""Annealed importance sampling of log p(x) (kdegen.stats.ais) against the closed form of
a linear-Gaussian generator: x = W z + b with z ~ N(0, I) has p(x) = N(b, W W^T + s^2 I)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import multivariate_normal

from kdegen.stats.ais import ais_log_likelihood, gaussian_log_likelihood, sigmoid_schedule

K, D, SIGMA = 3, 6, 0.4


def linear_model(n: int) -> tuple[object, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generator, n codes, the data they made (with observation noise), log p(x)."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(D, K, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    z = torch.randn(n, K, generator=g, dtype=torch.float64)
    x = z @ W.T + b + SIGMA * torch.randn(n, D, generator=g, dtype=torch.float64)
    cov = (W @ W.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)).numpy()
    exact = torch.from_numpy(multivariate_normal(b.numpy(), cov).logpdf(x.numpy()))
    return (lambda codes: codes @ W.T + b), z, x, exact


def test_the_schedule_rises_from_0_to_1() -> None:
    beta = sigmoid_schedule(50)
    assert beta[0] == 0 and beta[-1] == 1 and bool((beta.diff() > 0).all())
    with pytest.raises(ValueError):
        sigmoid_schedule(0)


def test_the_observation_model_is_scipys_gaussian() -> None:
    x, mean = torch.randn(4, 1, 2, 3, dtype=torch.float64), torch.randn(4, 1, 2, 3)
    want = [
        multivariate_normal(m.flatten().numpy(), 0.3**2).logpdf(v.flatten().numpy())
        for v, m in zip(x, mean.double(), strict=True)
    ]
    torch.testing.assert_close(gaussian_log_likelihood(mean.double(), x, 0.3), torch.tensor(want))


def test_the_estimate_converges_to_the_exact_log_density() -> None:
    G, _, x, exact = linear_model(12)
    errors = []
    for steps in (5, 50, 400):
        est = ais_log_likelihood(G, x, K, SIGMA, steps=steps, chains=32,
                                 rng=torch.Generator().manual_seed(1))  # fmt: skip
        errors.append(float((est.log_px - exact).abs().mean()))
        assert 0.3 < est.acceptance <= 1
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.1  # nats per example, log p(x) being -6 to -10 here


def test_forward_and_reverse_runs_bracket_the_truth_on_simulated_data() -> None:
    """Wu et al.'s bidirectional Monte Carlo: from the codes that made x, the reverse run
    gives an upper bound; the forward run a lower bound; the gap closes as steps grow."""
    G, z, x, exact = linear_model(24)
    gaps = []
    for steps in (5, 300):
        rng = torch.Generator().manual_seed(steps)
        low = ais_log_likelihood(G, x, K, SIGMA, steps=steps, chains=16, rng=rng).log_px
        high = ais_log_likelihood(G, x, K, SIGMA, steps=steps, chains=16, reverse_from=z,
                                  rng=rng).log_px  # fmt: skip
        # bounds in expectation: each mean within 3 standard errors of its side
        for bound, side in ((low - exact, 1.0), (high - exact, -1.0)):
            stderr = float(bound.std()) / math.sqrt(len(bound))
            assert side * float(bound.mean()) <= 3 * stderr, (steps, side, bound)
        gaps.append(float((high - low).mean()))
    assert float((low - exact).mean()) > -0.2 and float((high - exact).mean()) < 0.2
    assert gaps[0] > 1.0 > 0.4 > gaps[1], gaps  # a wide bracket at 5 steps, tight at 300


def test_bad_settings_are_refused() -> None:
    G, _, x, _ = linear_model(2)
    for kw in ({"sigma": 0.0}, {"sigma": math.inf}, {"sigma": 0.1, "chains": 0}):
        with pytest.raises(ValueError):
            ais_log_likelihood(G, x, K, **kw)  # type: ignore[arg-type]
