"""Network shapes for every supported image size, the appendix preset, and priors."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from kdegen.errors import UsageError
from kdegen.nets import build_pair
from kdegen.nets.dcgan import ConvDiscriminator, ConvGenerator
from kdegen.priors import Normal, Uniform, make_prior


@pytest.mark.parametrize(
    "shape", [(1, 8, 8), (1, 14, 14), (1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 28, 84)]
)
def test_dcgan_pair_shapes(shape: tuple[int, int, int]) -> None:
    G, D = build_pair("dcgan", 16, shape)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, *shape)
    assert x.abs().max() <= 1  # tanh output
    assert D(x).shape == (3,)


def test_dcgan_width_multiplier_scales_filters() -> None:
    from kdegen.nets import NetOptions

    G1, _ = build_pair("dcgan", 8, (1, 28, 28), NetOptions(width=8))
    G2, _ = build_pair("dcgan", 8, (1, 28, 28), NetOptions(width=16))
    convs1 = [m.out_channels for m in G1.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    convs2 = [m.out_channels for m in G2.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert convs1 == [8, 1] and convs2 == [16, 1]


@pytest.mark.parametrize("size", [12, 30, 48 + 2, 4])
def test_dcgan_rejects_sizes_outside_the_family(size: int) -> None:
    with pytest.raises(UsageError, match="4\\*2\\^k or 7\\*2\\^k"):
        build_pair("dcgan", 8, (1, size, size))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_reversal_appendix_architecture(shape: tuple[int, int, int]) -> None:
    """App. A: 4x4x512 start, deconvolutions of 256, 128, 64 filters (+512 at 64x64),
    4x4 kernels with stride 2, a last stride-1 deconvolution; D with 256, 128, 64 filters."""
    G, D = build_pair("reversal-appendix", 200, shape)
    assert isinstance(G, ConvGenerator) and isinstance(D, ConvDiscriminator)
    assert G.base[0] == 512 and G.base[1:] == (4, 4)
    ups = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    extra = [512] if shape[1] == 64 else []
    assert [m.out_channels for m in ups] == [*extra, 256, 128, 64, shape[0]]
    assert all(m.stride == (2, 2) for m in ups[:-1]) and ups[-1].stride == (1, 1)
    downs = [m.out_channels for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert downs == [*extra, 256, 128, 64]
    assert G(torch.randn(2, 200)).shape == (2, *shape)
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.2 for m in D.modules())


def test_mlp_pair_and_arch_mismatch() -> None:
    G, D = build_pair("auto", 5, (2,))
    assert G(torch.randn(7, 5)).shape == (7, 2) and D(torch.randn(7, 2)).shape == (7,)
    with pytest.raises(UsageError, match="--arch mlp"):
        build_pair("dcgan", 5, (2,))
    with pytest.raises(UsageError, match="point sets"):
        build_pair("mlp", 5, (1, 28, 28))


def test_normal_prior_log_prob_and_moments() -> None:
    prior = Normal(3, std=2.0)
    z = prior.sample(20000, torch.Generator().manual_seed(0))
    assert z.shape == (20000, 3)
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 2.0) < 0.03
    ref = stats.multivariate_normal(mean=[0, 0, 0], cov=4 * torch.eye(3).numpy()).logpdf(z[:5])
    torch.testing.assert_close(
        prior.log_prob(z[:5]).double(), torch.tensor(ref), rtol=1e-5, atol=1e-5
    )
    once = prior.sample(5, torch.Generator().manual_seed(1))
    assert torch.equal(once, prior.sample(5, torch.Generator().manual_seed(1)))  # fixed noise
    assert not torch.equal(once, prior.sample(5, torch.Generator().manual_seed(2)))


def test_uniform_prior() -> None:
    prior = make_prior("uniform", 2)
    assert isinstance(prior, Uniform)
    z = prior.sample(1000)
    assert z.abs().max() <= 1
    lp = prior.log_prob(torch.tensor([[0.0, 0.5], [2.0, 0.0]]))
    assert float(lp[0]) == pytest.approx(-2 * math.log(2)) and lp[1] == -math.inf
    with pytest.raises(UsageError):
        prior.log_prob(torch.zeros(3, 5))
    with pytest.raises(UsageError, match="unknown prior"):
        make_prior("gaussian-ish", 2)
