"""Generator reversal (Algorithm 1, Claim 4) and the code bank."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdegen.errors import UsageError
from kdegen.nets import ConvGenerator
from kdegen.nets.mlp import MLPGenerator
from kdegen.reversal import CodeBank, invert


def mlp(seed: int, latent: int = 4, dim: int = 20) -> MLPGenerator:
    torch.manual_seed(seed)
    return MLPGenerator(latent, dim, hidden=32, layers=2)


def test_recovers_the_code_of_a_generated_point() -> None:
    """Proposition 1: for x = G(z*), descent on the L2 loss finds z* (locally convex)."""
    G = mlp(0)
    z_star = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    x = G(z_star).detach()
    r = invert(G, x, steps=1500, lr=0.05, optimizer="adam", stop="steps", init="zeros")
    err = (r.codes - z_star).norm(dim=1)
    assert float((err < 1e-2).float().mean()) >= 0.9
    assert r.example_loss is not None and float(r.example_loss.median()) < 1e-6


def test_generator_is_left_exactly_as_it_was() -> None:
    G = ConvGenerator(8, (1, 8, 8), [16])
    G.train()
    G.project[0].weight.requires_grad_(False)  # a user's choice that must survive
    before = {k: v.clone() for k, v in G.state_dict().items()}
    flags = [p.requires_grad for p in G.parameters()]
    r = invert(G, torch.rand(6, 1, 8, 8) * 2 - 1, steps=5, stop="steps")
    assert G.training and [p.requires_grad for p in G.parameters()] == flags
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # BN stats too
    assert all(p.grad is None for p in G.parameters())
    assert r.reconstructions is not None and r.reconstructions.shape == (6, 1, 8, 8)


def test_codes_do_not_depend_on_the_rest_of_the_batch() -> None:
    """Eval mode: batch norm uses running statistics, so each code is its own problem."""
    G = ConvGenerator(8, (1, 8, 8), [16])
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    z0 = torch.randn(5, 8)
    whole = invert(G, x, steps=10, stop="steps", init_codes=z0)
    alone = invert(G, x[2:3], steps=10, stop="steps", init_codes=z0[2:3])
    torch.testing.assert_close(whole.codes[2:3], alone.codes, rtol=1e-5, atol=1e-6)


def test_stop_rules() -> None:
    G = mlp(0)
    x = G(torch.randn(20, 4)).detach()
    r = invert(G, x, steps=7, stop="steps")
    assert r.steps_taken == 7 and len(r.losses) == 7 and r.stopped_by == "steps" and not r.mmd
    r = invert(G, x, steps=5000, lr=0.05, optimizer="adam", stop="loss", tol=1e-3)
    assert r.stopped_by == "loss" and r.steps_taken < 5000 and len(r.losses) == r.steps_taken
    assert r.example_loss is not None and float(r.example_loss.mean()) < 1e-3
    r = invert(G, x, steps=3, stop="loss", tol=1e-12)
    assert r.stopped_by == "steps" and r.steps_taken == 3


def test_mmd_rule_stops_earlier_for_a_random_generator() -> None:
    """Claim 4: with a generator whose range holds the data, real and generated codes look
    alike for long; with a random one they separate at once."""
    trained, random = mlp(0), mlp(5)
    data = trained(torch.randn(64, 4, generator=torch.Generator().manual_seed(2))).detach()
    kw = dict(steps=300, lr=0.05, optimizer="adam", tol=1e-4, mmd_bandwidth=70.7)
    fast = invert(random, data, rng=torch.Generator().manual_seed(3), **kw)  # type: ignore[arg-type]
    slow = invert(trained, data, rng=torch.Generator().manual_seed(3), **kw)  # type: ignore[arg-type]
    assert fast.stopped_by == "mmd" and fast.steps_taken < slow.steps_taken
    assert len(fast.mmd) == fast.steps_taken and fast.reference_codes is not None


def test_mmd_rises_with_steps() -> None:
    """Fig. 4: MMD^2 between real and generated codes grows as the reversal proceeds."""
    G = mlp(5)
    data = mlp(0)(torch.randn(64, 4)).detach()
    r = invert(G, data, steps=60, lr=0.05, optimizer="adam", tol=math.inf, mmd_bandwidth=3.0)
    assert r.stopped_by == "steps" and len(r.mmd) == 60
    assert sum(r.mmd[-10:]) > 5 * max(sum(r.mmd[:10]), 1e-12)


def test_permutation_rule() -> None:
    """Started from prior draws, both code sets begin alike (p large) and part (p < level)."""
    G = mlp(5)
    data = mlp(0)(torch.randn(40, 4)).detach()
    r = invert(G, data, steps=100, lr=0.05, optimizer="adam", init="prior", level=0.05,
               mmd_bandwidth=1.0, rng=torch.Generator().manual_seed(0))  # fmt: skip
    assert r.stopped_by == "mmd" and r.steps_taken > 3
    assert r.p_values[-1] < 0.05 and min(r.p_values[:-1]) >= 0.05


def test_bad_inputs() -> None:
    G = mlp(0)
    with pytest.raises(UsageError, match="generator makes"):
        invert(G, torch.zeros(3, 7), steps=1)
    with pytest.raises(UsageError, match="stop rule"):
        invert(G, torch.zeros(3, 20), stop="never")
    with pytest.raises(UsageError, match="learning rate"):
        invert(G, torch.zeros(3, 20), lr=0)
    with pytest.raises(UsageError, match="init_codes"):
        invert(G, torch.zeros(3, 20), init_codes=torch.zeros(2, 4))
    linear = nn.Linear(4, 20)
    linear.latent = 4  # type: ignore[assignment]
    with pytest.raises(UsageError, match="diverged"):
        invert(linear, torch.full((3, 20), 1e3), steps=50, lr=1e6, stop="steps")


def test_code_bank_warm_starts_accumulate() -> None:
    """Two visits of 5 steps continue where the first stopped: equal to 10 steps at once."""
    G = mlp(0)
    x = G(torch.randn(8, 4)).detach()
    bank = CodeBank(8, 4, init="normal", init_std=0.1, seed=0)
    start = bank.codes.clone()
    index = torch.arange(8)
    bank.refresh(G, x, index, steps=5, stop="steps")
    bank.refresh(G, x, index, steps=5, stop="steps")
    once = invert(G, x, steps=10, stop="steps", init_codes=start)
    torch.testing.assert_close(bank.codes, once.codes)
    assert bank.visits.tolist() == [2] * 8 and bank.steps.tolist() == [10] * 8
    assert len(bank.visited()) == 8
    state = {k: v.clone() for k, v in bank.state_dict().items()}
    other = CodeBank(8, 4)
    other.load_state_dict(state)
    assert torch.equal(other.codes, bank.codes)
    with pytest.raises(UsageError, match="does not fit"):
        CodeBank(9, 4).load_state_dict(state)
