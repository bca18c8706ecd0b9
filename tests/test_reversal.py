"""Generator reversal (Algorithm 1, Claim 4) and the code bank."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdegen.codebank import CodeBank
from kdegen.errors import UsageError
from kdegen.nets import ConvGenerator
from kdegen.nets.mlp import MLPGenerator
from kdegen.reversal import ReversalConfig, StepState, invert


def mlp(seed: int, latent: int = 4, dim: int = 20) -> MLPGenerator:
    torch.manual_seed(seed)
    return MLPGenerator(latent, dim, hidden=32, layers=2)


def conv(seed: int) -> ConvGenerator:
    torch.manual_seed(seed)
    return ConvGenerator(8, (1, 8, 8), [16])


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("optimizer", ["normalized", "adam"])
def test_recovers_the_code_of_a_generated_point(optimizer: str) -> None:
    """Proposition 1: for x = G(z*), descent on the L2 loss finds z* from a start nearby
    (the problem is locally convex there)."""
    G = mlp(0)
    g = torch.Generator().manual_seed(1)
    z_star = torch.randn(50, 4, generator=g)
    x = G(z_star).detach()
    start = z_star + 0.3 * torch.randn(50, 4, generator=g)
    lr = 0.05 if optimizer == "adam" else 0.2
    r = invert(G, x, ReversalConfig(steps=1500, lr=lr, optimizer=optimizer), init_codes=start)
    err = (r.codes - z_star).norm(dim=1)
    assert float((err < 1e-2).float().mean()) >= 0.95
    assert r.example_loss is not None and float(r.example_loss.median()) < 1e-6


def test_adam_finds_most_codes_from_zero() -> None:
    """From a common start far away the problem is not convex; Adam still finds 90%."""
    G = mlp(0)
    z_star = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    r = invert(
        G, G(z_star).detach(), ReversalConfig(steps=1500, lr=0.05, optimizer="adam", init="zeros")
    )
    assert float(((r.codes - z_star).norm(dim=1) < 1e-2).float().mean()) >= 0.9


@pytest.mark.parametrize("make", [mlp, conv], ids=["mlp", "dcgan"])
def test_normalized_rule_never_raises_a_loss(make: object) -> None:
    """On a fixed generator, each code's loss and the mean fall monotonically, from any
    start and with a first step far too long, where plain gradient descent diverges."""
    G = make(3)  # type: ignore[operator]
    clean = G(2 * torch.randn(64, G.latent)).detach()
    x = clean + 0.1 * torch.randn(clean.shape)  # data slightly off the generator's range
    r = invert(G, x, ReversalConfig(steps=60, lr=5.0), rng=torch.Generator().manual_seed(0))
    assert all(b <= a for a, b in zip(r.losses, r.losses[1:], strict=False))
    assert r.example_loss is not None and r.start_loss is not None
    assert bool((r.example_loss <= r.start_loss).all())
    assert float(r.example_loss.mean()) < 0.5 * r.losses[0]  # and it does descend
    assert r.state is not None and bool((r.state.length > 0).all())


def test_diverging_codes_are_put_back_never_returned() -> None:
    G = nn.Sequential(nn.Linear(4, 20))
    G.latent = 4  # type: ignore[assignment]
    x = torch.full((3, 20), 1e3)
    start = torch.randn(3, 4)
    r = invert(G, x, ReversalConfig(steps=50, lr=1e6, optimizer="sgd"), init_codes=start)
    assert r.resets == 3 and torch.equal(r.codes, start)
    assert r.example_loss is not None and bool(torch.isfinite(r.example_loss).all())
    # the normalized rule undoes such steps instead
    r = invert(G, x, ReversalConfig(steps=50, lr=1e6), init_codes=start)
    assert bool(torch.isfinite(r.codes).all()) and r.losses[-1] <= r.losses[0]


def test_generator_is_left_exactly_as_it_was() -> None:
    G = conv(0)
    G.train()
    G.project[0].weight.requires_grad_(False)  # a user's choice that must survive
    before = {k: v.clone() for k, v in G.state_dict().items()}
    flags = [p.requires_grad for p in G.parameters()]
    r = invert(G, images(6), ReversalConfig(steps=5, stop="steps"))
    assert G.training and [p.requires_grad for p in G.parameters()] == flags
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # BN stats too
    assert all(p.grad is None for p in G.parameters())
    assert r.reconstructions is not None and r.reconstructions.shape == (6, 1, 8, 8)


@pytest.mark.parametrize("optimizer", ["normalized", "sgd"])
def test_codes_do_not_depend_on_the_rest_of_the_batch(optimizer: str) -> None:
    """Eval mode: batch norm uses running statistics, so each code is its own problem."""
    G = conv(0)
    x = images(5)
    z0 = torch.randn(5, 8)
    whole = invert(G, x, ReversalConfig(steps=10, optimizer=optimizer, lr=0.1), init_codes=z0)
    alone = invert(
        G, x[2:3], ReversalConfig(steps=10, optimizer=optimizer, lr=0.1), init_codes=z0[2:3]
    )
    torch.testing.assert_close(whole.codes[2:3], alone.codes, rtol=1e-5, atol=1e-6)


def test_codes_restart_from_better_candidates() -> None:
    """A code stuck far from its example jumps to a candidate that reconstructs it better
    (the true code among them), and continues from there; the others stay."""
    G = mlp(0)
    z_star = torch.randn(6, 4, generator=torch.Generator().manual_seed(7))
    x = G(z_star).detach()
    start = z_star.clone()
    start[:3] += 5.0  # three codes far off
    candidates = torch.cat([z_star[:3] + 0.01, 10 * torch.ones(2, 4)])
    r = invert(G, x, ReversalConfig(steps=3), init_codes=start, candidates=candidates)
    assert r.restarts == 3
    assert bool(((r.codes[:3] - z_star[:3]).norm(dim=1) < 0.05).all())
    assert r.example_loss is not None and r.start_loss is not None
    assert bool((r.example_loss[:3] < 0.01 * r.start_loss[:3]).all())
    with pytest.raises(UsageError, match="candidates"):
        invert(G, x, ReversalConfig(steps=1), candidates=torch.zeros(3, 5))


def test_l2_term_pulls_codes_to_the_origin() -> None:
    """Proposition 1's regulariser: the MAP code under N(0, I) is nearer the origin."""
    G = mlp(0)
    x = G(3 * torch.randn(30, 4)).detach()
    z0 = torch.randn(30, 4)
    plain = invert(G, x, ReversalConfig(steps=300), init_codes=z0)
    pulled = invert(G, x, ReversalConfig(steps=300, l2=1.0), init_codes=z0)
    assert float(pulled.codes.norm(dim=1).mean()) < 0.8 * float(plain.codes.norm(dim=1).mean())


def test_stop_rules() -> None:
    G = mlp(0)
    x = G(torch.randn(20, 4)).detach()
    r = invert(G, x, ReversalConfig(steps=7, stop="steps"))
    assert r.steps_taken == 7 and len(r.losses) == 7 and r.stopped_by == "steps" and not r.mmd
    r = invert(G, x, ReversalConfig(steps=5000, lr=0.05, optimizer="adam", stop="loss", tol=1e-3))
    assert r.stopped_by == "loss" and r.steps_taken < 5000 and len(r.losses) == r.steps_taken
    assert r.example_loss is not None and float(r.example_loss.mean()) < 1e-3
    r = invert(G, x, ReversalConfig(steps=3, stop="loss", tol=1e-12))
    assert r.stopped_by == "steps" and r.steps_taken == 3


def test_information_of_the_start_codes() -> None:
    """Own/other loss ratio: ~1 for random codes, far below 1 for the true codes."""
    G = mlp(0)
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(4))
    x = G(z).detach()
    assert invert(G, x, ReversalConfig(steps=1), init_codes=z).start_information < 1e-6
    random = invert(G, x, ReversalConfig(steps=1), rng=torch.Generator().manual_seed(5))
    assert 0.7 < random.start_information < 1.3


def test_mmd_rule_stops_earlier_for_a_random_generator() -> None:
    """Claim 4: when the generator's range holds the data, real and generated codes look
    alike for long; with a generator unlike the data they part within a few steps. The
    kernel width comes from the codes (median heuristic)."""
    trained, random = mlp(0), mlp(5)
    data = trained(torch.randn(64, 4, generator=torch.Generator().manual_seed(2))).detach()
    config = ReversalConfig(steps=200, lr=0.05, optimizer="adam", stop="mmd", level=0.01)
    fast = invert(random, data, config, rng=torch.Generator().manual_seed(3))
    slow = invert(trained, data, config, rng=torch.Generator().manual_seed(3))
    assert fast.stopped_by == "mmd" and fast.steps_taken < slow.steps_taken
    assert len(fast.mmd) == fast.steps_taken == len(fast.bandwidths)
    assert fast.reference_codes is not None and fast.reference_codes.shape == (64, 4)


def test_mmd_rises_with_steps() -> None:
    """Fig. 4: MMD^2 between real and generated codes grows as the reversal proceeds."""
    G = mlp(5)
    data = mlp(0)(torch.randn(64, 4)).detach()
    config = ReversalConfig(
        steps=60, lr=0.05, optimizer="adam", stop="mmd", tol=math.inf, mmd_bandwidth=3.0
    )
    r = invert(G, data, config)
    assert r.stopped_by == "steps" and len(r.mmd) == 60
    assert sum(r.mmd[-10:]) > 5 * max(sum(r.mmd[:10]), 1e-12)


def test_permutation_rule() -> None:
    """Started from prior draws, both code sets begin alike (p large) and part (p < level)."""
    G = mlp(5)
    data = mlp(0)(torch.randn(40, 4)).detach()
    config = ReversalConfig(
        steps=100, lr=0.05, optimizer="adam", stop="mmd", level=0.05, mmd_bandwidth=1.0
    )
    r = invert(G, data, config, rng=torch.Generator().manual_seed(0))
    assert r.stopped_by == "mmd" and r.steps_taken > 3
    assert r.p_values[-1] < 0.05 and min(r.p_values[:-1]) >= 0.05


def test_bad_inputs() -> None:
    G = mlp(0)
    with pytest.raises(UsageError, match="generator makes"):
        invert(G, torch.zeros(3, 7), ReversalConfig(steps=1))
    with pytest.raises(UsageError, match="--stop must be one of steps, loss, mmd"):
        invert(G, torch.zeros(3, 20), ReversalConfig(stop="never"))
    with pytest.raises(UsageError, match="--lr must be > 0"):
        invert(G, torch.zeros(3, 20), ReversalConfig(lr=0))
    with pytest.raises(UsageError, match="--optimizer must be one of"):
        invert(G, torch.zeros(3, 20), ReversalConfig(optimizer="lbfgs"))
    with pytest.raises(UsageError, match="init_codes"):
        invert(G, torch.zeros(3, 20), init_codes=torch.zeros(2, 4))
    with pytest.raises(UsageError, match="step state"):
        invert(G, torch.zeros(3, 20), state=StepState.fresh(2, 4, 0.1, torch.device("cpu")))
    with pytest.raises(UsageError, match="not finite"):
        invert(G, torch.full((3, 20), math.nan), ReversalConfig(steps=2))
    with pytest.raises(UsageError, match="--level must be < 1"):
        ReversalConfig(level=1.5)
    with pytest.raises(UsageError, match="--init-std must be a finite number"):
        ReversalConfig(init_std=math.inf)
    with pytest.raises(UsageError, match="--steps expects an integer"):
        ReversalConfig(steps=2.5)  # type: ignore[arg-type]


def test_code_bank_warm_starts_accumulate() -> None:
    """Two refreshes of 5 steps continue where the first stopped: with plain gradient
    descent that is exactly 10 steps at once; the normalized rule keeps its step lengths."""
    G = mlp(0)
    x = G(torch.randn(8, 4)).detach()
    bank = CodeBank(8, 4, init="normal", init_std=0.1, seed=0)
    start = bank.codes.clone()
    slots = torch.arange(8)
    for it in range(2):
        bank.store(
            slots, bank.reverse(G, x, slots, ReversalConfig(steps=5, optimizer="sgd", lr=0.1)), it
        )
    once = invert(G, x, ReversalConfig(steps=10, optimizer="sgd", lr=0.1), init_codes=start)
    torch.testing.assert_close(bank.codes, once.codes)
    assert bank.visits.tolist() == [2] * 8 and bank.steps.tolist() == [10] * 8
    r = bank.reverse(G, x, slots, ReversalConfig(steps=3))
    assert r.state is not None and not torch.equal(r.state.length, bank.state.length)
    bank.store(slots, r, 2)
    assert torch.equal(bank.state.length, r.state.length)
    other = CodeBank(8, 4)
    other.load_state_dict({k: v.clone() if torch.is_tensor(v) else v
                           for k, v in bank.state_dict().items()})  # fmt: skip
    assert torch.equal(other.codes, bank.codes) and torch.equal(other.refreshed, bank.refreshed)
    with pytest.raises(UsageError, match="does not fit"):
        CodeBank(9, 4).load_state_dict(bank.state_dict())


def test_code_bank_rotation_and_window() -> None:
    bank = CodeBank.subset(100, 10, 3, seed=1)
    assert len(bank) == 10 and len(set(bank.members.tolist())) == 10
    seen: list[int] = []
    for _ in range(5):  # 5 x 4 = 20 slots: two full rotations
        slots = bank.next_slots(4)
        assert len(set(slots.tolist())) == 4  # never the same member twice in one refresh
        seen += slots.tolist()
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
    twin = CodeBank.subset(100, 10, 3, seed=1)
    twin.load_state_dict(bank.state_dict())
    assert torch.equal(twin.next_slots(4), bank.next_slots(4))  # the rotation resumes exactly
    assert len(CodeBank.subset(50, 0, 3)) == 50  # 0: every example
    # prior draws count as codes at once; tiny starting codes only once refreshed
    assert len(bank.usable()) == 10
    tiny = CodeBank(6, 3, init="normal")
    assert len(tiny.usable()) == 0
    z = torch.randn(2, 3)
    from kdegen.reversal import Reversal

    tiny.store(torch.tensor([1, 4]), Reversal(z, None), iteration=7)
    assert tiny.usable().tolist() == [1, 4]
    assert tiny.usable(window=1, iteration=7).tolist() == [1, 4]
    assert tiny.usable(window=2, iteration=8).tolist() == [1, 4]
    assert tiny.usable(window=1, iteration=8).tolist() == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_weight_generator_gives_pre_images_when_k_reaches_the_pixels(seed: int) -> None:
    """Generator Reversal Sec. 2.2: through a generator with random weights, 50 default
    steps lower the reconstruction error at least 10-fold when the latent dimension k is
    at least the data's m; with k < m the generator's k-dimensional range cannot hold
    the data and the error stays above half of where it started."""
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(100 + seed)) * 0.5
    ratios = {}
    for k in (2, 32):
        torch.manual_seed(seed)
        G = nn.Sequential(nn.Linear(k, 128), nn.ReLU(), nn.Linear(128, 8))
        G.latent = k  # type: ignore[assignment]
        r = invert(G, x, ReversalConfig(steps=50), rng=torch.Generator().manual_seed(seed))
        ratios[k] = r.losses[-1] / r.losses[0]
    assert ratios[32] < 1 / 10
    assert ratios[2] > 0.5
