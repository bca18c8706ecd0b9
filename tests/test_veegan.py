"""VEEGAN (Srivastava et al. 2017): the generator's objective of its Eq. 8 / Algorithm 1,
checked against a direct computation, and what each network learns from."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from kdegen.methods import METHODS, Batch, DataSpec
from kdegen.methods.veegan import VEEGAN
from kdegen.nets.joint import join

CPU = torch.device("cpu")
POINTS = DataSpec((2,), None, 400)


def make(**kw: Any) -> VEEGAN:
    torch.manual_seed(0)
    cls = METHODS.get("veegan")
    method = cls(cls.Config(hidden=16, layers=2, **kw), POINTS, CPU)
    method.bind_data(torch.randn(400, 2), None)
    assert isinstance(method, VEEGAN)
    return method


def batch(seed: int) -> Batch:
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(seed))
    return Batch(x, None, torch.arange(32))


@pytest.mark.parametrize("weight", [0.0, 1.0, 2.5])
def test_the_generator_loss_is_minus_the_logit_plus_the_code_reconstruction(weight: float) -> None:
    m = make(recon_weight=weight)
    real = torch.randn(16, 2)
    torch.manual_seed(4)
    got = m.generator_loss(real)
    torch.manual_seed(4)  # the same z
    z = m.noise(16)
    x = m.G(z)
    want = -m.D(join(x, z)).mean() + weight * ((z - m.E(x)) ** 2).sum(1).mean()
    torch.testing.assert_close(got, want)


def test_other_objectives_use_their_own_generator_term() -> None:
    m = make(objective="wgan-gp")
    real = torch.randn(16, 2)
    torch.manual_seed(4)
    got = m.generator_loss(real)
    torch.manual_seed(4)
    z = m.noise(16)
    x = m.G(z)
    want = m.objective.g_loss(m.D(join(x, z))) + ((z - m.E(x)) ** 2).sum(1).mean()
    torch.testing.assert_close(got, want)


def test_the_reconstructor_learns_from_the_reconstruction_alone() -> None:
    """Algorithm 1: F's gradient is that of the code-space loss, so without it F stays."""
    m = make(recon_weight=0.0)
    before = [p.detach().clone() for p in m.E.parameters()]
    m.train_step(batch(1))
    assert all(torch.equal(a, b) for a, b in zip(before, m.E.parameters(), strict=True))
    m = make(recon_weight=1.0)
    before = [p.detach().clone() for p in m.E.parameters()]
    m.train_step(batch(1))
    assert not all(torch.equal(a, b) for a, b in zip(before, m.E.parameters(), strict=True))


def test_training_makes_the_reconstructor_invert_the_generator() -> None:
    m = make(recon_weight=1.0, lr_g=2e-3)
    first = float(m.train_step(batch(0))["recon_loss"])
    for step in range(1, 300):
        last = float(m.train_step(batch(step))["recon_loss"])
    assert last < 0.2 * first, (first, last)
