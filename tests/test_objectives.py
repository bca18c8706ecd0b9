"""Objectives against closed forms: conjugates, the optimal discriminator, the GP, f-GAN bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from kdegen.methods import Batch, DataSpec
from kdegen.methods.gan import GAN, GANConfig
from kdegen.objectives import F_DIVERGENCES, OBJECTIVES, gradient_penalty

TUTORIAL_OBJECTIVES = {
    "minimax", "non-saturating", "lsgan", "wgan", "wgan-gp", "hinge",
    "fgan-kl", "fgan-reverse-kl", "fgan-pearson", "fgan-hellinger", "fgan-js", "fgan-gan",
}  # fmt: skip

# two discrete distributions with rational weights (multiples of 1/8)
P = np.array([4, 2, 1, 1]) / 8
Q = np.array([1, 3, 2, 2]) / 8


def test_registry_holds_every_objective_of_the_tutorial() -> None:
    assert set(OBJECTIVES.names()) >= TUTORIAL_OBJECTIVES
    with pytest.raises(RuntimeError):
        OBJECTIVES.register("minimax")(OBJECTIVES.get("minimax"))


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES.names()))
def test_conjugate_identity(name: str) -> None:
    """f*(f'(u)) = u f'(u) - f(u) for u > 0 (Fenchel equality at the optimum)."""
    div = F_DIVERGENCES.get(name)
    u = torch.logspace(-2, 2, 41, dtype=torch.float64)
    lhs = div.conjugate(div.f_prime(u))
    rhs = u * div.f_prime(u) - div.f(u)
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)
    one = torch.ones(1, dtype=torch.float64)
    # f(1) = 0, except for the GAN row: D_GAN = 2 D_JS - log 4 (the table's caption)
    assert float(div.f(one)) == pytest.approx(-math.log(4) if name == "gan" else 0.0, abs=1e-12)
    assert float(div.f_prime(one)) == pytest.approx(div.threshold)  # table's f'(1)


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES.names()))
def test_stable_conjugate_of_activation_matches_composition(name: str) -> None:
    div = F_DIVERGENCES.get(name)
    v = torch.linspace(-3, 3, 61, dtype=torch.float64)
    t = div.activation(v)
    torch.testing.assert_close(
        div.conjugate_of_activation(v), div.conjugate(t), rtol=1e-9, atol=1e-9
    )
    # stays finite where the naive composition overflows
    big = torch.tensor([-60.0, 60.0], dtype=torch.float64)
    assert torch.isfinite(div.conjugate_of_activation(big)).all() or name == "kl"


def _logits_inverting(name: str, t: np.ndarray) -> torch.Tensor:
    """v with g_f(v) = t for each divergence's output activation."""
    inverse = {
        "kl": lambda t: t,
        "pearson": lambda t: t,
        "reverse-kl": lambda t: -np.log(-t),
        "hellinger": lambda t: -np.log(1 - t),
        "js": lambda t: -np.log(2 * np.exp(-t) - 1),
        "gan": lambda t: -np.log(np.exp(-t) - 1),
    }[name]
    return torch.tensor(inverse(t), dtype=torch.float64)


def _expand(weights: np.ndarray, values: torch.Tensor) -> torch.Tensor:
    """Samples whose empirical mean is the expectation under ``weights`` (multiples of 1/8)."""
    counts = np.rint(weights * 8).astype(int)
    return torch.cat([values[i].repeat(c) for i, c in enumerate(counts)])


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES.names()))
def test_fgan_bound_is_tight_at_the_optimal_critic(name: str) -> None:
    """At T* = f'(p/q) the critic's objective E_P[T] - E_Q[f*(T)] equals D_f(P || Q)."""
    div = F_DIVERGENCES.get(name)
    ratio = torch.tensor(P / Q, dtype=torch.float64)
    v_star = _logits_inverting(name, div.f_prime(ratio).numpy())
    obj = OBJECTIVES.get(f"fgan-{name}")
    value = -obj.d_loss(_expand(P, v_star), _expand(Q, v_star))
    d_f = float(np.sum(Q * div.f(ratio).numpy()))
    assert float(value) == pytest.approx(d_f, rel=1e-9)


@pytest.mark.parametrize("name", ["minimax", "non-saturating"])
def test_optimal_discriminator_value_is_2js_minus_log4(name: str) -> None:
    """V(D*, G) = 2 JS(P || Q) - log 4 with D* = p / (p + q) (Goodfellow et al.)."""
    v_star = torch.tensor(np.log(P / Q), dtype=torch.float64)  # sigmoid(v*) = p / (p + q)
    value = -OBJECTIVES.get(name).d_loss(_expand(P, v_star), _expand(Q, v_star))
    js = jensenshannon(P, Q) ** 2  # scipy returns the square root of JS, in nats
    assert float(value) == pytest.approx(2 * js - math.log(4), rel=1e-9)
    # any other discriminator does worse
    worse = -OBJECTIVES.get(name).d_loss(_expand(P, v_star + 0.3), _expand(Q, v_star + 0.3))
    assert float(worse) < float(value)


def test_gradient_penalty_of_a_linear_critic_is_closed_form() -> None:
    torch.manual_seed(0)
    critic = torch.nn.Linear(5, 1)
    real, fake = torch.randn(16, 5), torch.randn(16, 5)
    gp = gradient_penalty(critic, real, fake)
    expected = (critic.weight.norm() - 1) ** 2  # the gradient is w everywhere
    torch.testing.assert_close(gp, expected.detach(), rtol=1e-5, atol=1e-6)
    gp.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(OBJECTIVES.names()))
def test_one_step_is_finite_and_changes_both_networks(name: str) -> None:
    torch.manual_seed(0)
    cfg = GANConfig(objective=name, latent=4, hidden=16, layers=2, n_critic=1)
    gan = GAN(cfg, DataSpec((2,), None, 64), torch.device("cpu"))
    # every weight matrix must move (a bias may legitimately get an exactly cancelling
    # gradient, e.g. the critic's output bias under Wasserstein and hinge losses)
    weights = {k: [p for p in m.parameters() if p.dim() > 1] for k, m in gan.networks().items()}
    before = {k: [p.detach().clone() for p in ps] for k, ps in weights.items()}
    losses = gan.train_step(Batch(torch.randn(32, 2)))
    assert losses and all(math.isfinite(float(v)) for v in losses.values())
    assert {"d_loss", "g_loss"} <= set(losses)
    for k, ps in weights.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[k], ps, strict=True)]
        assert all(changed), f"{name}: some {k} parameters did not move"


def test_weight_clipping_bounds_the_critic() -> None:
    torch.manual_seed(0)
    cfg = GANConfig(objective="wgan", latent=4, hidden=16, layers=2, clip=0.02)
    gan = GAN(cfg, DataSpec((2,), None, 64), torch.device("cpu"))
    gan.train_step(Batch(torch.randn(5 * 8, 2)))
    assert max(float(p.detach().abs().max()) for p in gan.D.parameters()) <= 0.02 + 1e-7
    assert gan.batches_per_step == 5  # automatic n_critic for Wasserstein critics
