"""GEN specifics: the JSD term, Eq. 8 sampling, semi-supervision, novelty detection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from kdegen.cli import main
from kdegen.errors import UsageError
from kdegen.methods import Batch, DataSpec
from kdegen.methods.gen import GEN, GENConfig, own_kernel_log_prob, own_positions
from kdegen.nets.mlp import MLPGenerator
from kdegen.novelty import auroc, decoder_log_volume
from kdegen.priors import GaussianMixture, Normal

POINTS = DataSpec((2,), None, 256)


def gen(**kw: object) -> GEN:
    torch.manual_seed(0)
    return GEN(GENConfig(arch="fc", latent=2, hidden=32, **kw), POINTS, torch.device("cpu"))  # type: ignore[arg-type]


def test_sampling_follows_eq8() -> None:
    m = gen(bandwidth=0.6)
    prior = m.prior_for_sampling()
    assert isinstance(prior, Normal) and prior.std == pytest.approx(math.sqrt(1 - 0.36))
    mog = gen(bandwidth=0.1, target="mog", modes=4)
    shrunk = mog.prior_for_sampling()
    assert isinstance(shrunk, GaussianMixture) and isinstance(mog.target, GaussianMixture)
    expected = (mog.target.stds**2 - 0.01).sqrt()
    torch.testing.assert_close(shrunk.stds, expected)


def test_jsd_term_pulls_codes_towards_the_target() -> None:
    """With the lagging set far from the target, the term's gradient points to the origin."""
    m = gen(bandwidth=0.5)
    m.lagging = torch.randn(200, 2) * 0.5 + torch.tensor([6.0, 0.0])
    z = (torch.randn(32, 2) * 0.5 + torch.tensor([6.0, 0.0])).requires_grad_(True)
    loss = m.latent_loss(z, Batch(torch.zeros(32, 2)))["jsd_loss"]
    (grad,) = torch.autograd.grad(loss, z)
    assert float(grad[:, 0].mean()) > 0  # descending moves x towards 0
    saturating = gen(bandwidth=0.5, jsd_form="saturating")
    saturating.lagging = m.lagging
    loss = saturating.latent_loss(z, Batch(torch.zeros(32, 2)))["jsd_loss"]
    (flat,) = torch.autograd.grad(loss, z)
    assert flat.abs().max() < 1e-3 * grad.abs().max()  # Eq. 3 saturates out there


def test_latent_dimension_beyond_the_samples_is_refused() -> None:
    with pytest.raises(UsageError, match="samples"):
        GEN(GENConfig(arch="fc", latent=40, m=250), DataSpec((2,), None, 250), torch.device("cpu"))


def test_queue_lag_replaces_the_oldest_codes() -> None:
    m = gen(bandwidth=0.5, m=8)
    m.lagging = torch.zeros(8, 2)
    m.after_step(torch.ones(5, 2), Batch(torch.zeros(5, 2)))
    m.after_step(torch.full((5, 2), 2.0), Batch(torch.zeros(5, 2)))
    assert m.lagging[:, 0].tolist() == [2, 2, 1, 1, 1, 2, 2, 2]


def test_queue_records_which_image_each_code_came_from() -> None:
    m = gen(bandwidth=0.5, m=8)
    m.lagging, m.lag_ids = torch.zeros(8, 2), torch.arange(100, 108)
    m.after_step(torch.ones(3, 2), Batch(torch.zeros(3, 2), None, torch.tensor([4, 5, 6])))
    assert m.lag_ids.tolist() == [4, 5, 6, 103, 104, 105, 106, 107]


def test_leave_out_ignores_the_images_own_lagging_code() -> None:
    """With --leave-out, moving an image's own lagging code leaves its loss unchanged."""
    z = torch.randn(1, 2, generator=torch.Generator().manual_seed(1))
    batch = Batch(torch.zeros(1, 2), None, torch.tensor([7]))
    losses = {}
    for leave_out in (True, False):
        m = gen(bandwidth=0.5, leave_out=leave_out)
        m.lag_ids = torch.arange(50)
        for shift in (0.0, 3.0):
            lagging = torch.randn(50, 2, generator=torch.Generator().manual_seed(2))
            lagging[7] = z[0] + shift  # the image's own code
            m.lagging = lagging
            losses[leave_out, shift] = float(m.latent_loss(z, batch)["jsd_loss"])
    assert losses[True, 0.0] == pytest.approx(losses[True, 3.0], rel=1e-6)
    assert losses[False, 0.0] != pytest.approx(losses[False, 3.0], rel=1e-3)


def test_jacobian_volume_matches_finite_differences() -> None:
    torch.manual_seed(0)
    decoder = MLPGenerator(3, 7, hidden=16, layers=2).double()
    z = torch.randn(4, 3, dtype=torch.float64)
    got = decoder_log_volume(decoder, z)
    eps = 1e-6
    for i in range(4):
        cols = []
        for j in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[j] = eps
            with torch.no_grad():
                cols.append((decoder((z[i] + e)[None]) - decoder((z[i] - e)[None]))[0] / (2 * eps))
        A = torch.stack(cols, 1)  # (7, 3)
        expected = 0.5 * torch.logdet(A.T @ A)
        assert float(got[i]) == pytest.approx(float(expected), rel=1e-6)


def test_auroc() -> None:
    scores = torch.tensor([0.1, 0.2, 0.9, 0.8, 0.3])
    assert auroc(scores, torch.tensor([False, False, True, True, False])) == 1.0
    with pytest.raises(UsageError, match="both"):
        auroc(scores, torch.zeros(5, dtype=torch.bool))


@pytest.mark.parametrize("leave_out", [False, True])
def test_semi_supervised_labels_reach_their_mode(leave_out: bool) -> None:
    """Labelled codes are pulled to their class's component of the mixture target. With
    --leave-out and no floor under p_e this run's codes escaped to norms above 10,000."""
    spec = DataSpec((1, 8, 8), 10, 64)
    torch.manual_seed(0)
    m = GEN(GENConfig(arch="fc", latent=2, hidden=64, target="mog", modes=10, labeled=64,
                      lam=1.0, lr=2e-3, bandwidth=0.2, leave_out=leave_out), spec,
            torch.device("cpu"))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8, generator=g) * 2 - 1, torch.arange(64) % 10
    m.bind_data(x, y)
    for _ in range(300):
        m.train_step(Batch(x, y, torch.arange(64)))
    assert isinstance(m.target, GaussianMixture)
    codes = m.encode(x)
    mode = m.target.responsibilities(codes).argmax(1)
    assert float((mode == y).float().mean()) > 0.8
    assert float(codes.norm(dim=1).max()) < 20


def test_own_kernel_and_positions() -> None:
    g = torch.Generator().manual_seed(3)
    z, centres = torch.randn(3, 2, generator=g), torch.randn(6, 2, generator=g)
    query_ids, centre_ids = torch.tensor([5, 9, 2]), torch.tensor([5, 1, 5, 2, -1, 8])
    own = own_positions(query_ids, centre_ids)
    assert own.tolist() == [2, -1, 3]  # the last centre of image 5; none of image 9
    assert own_positions(torch.tensor([-1, 1]), centre_ids).tolist() == [-1, 1]
    h = 0.4
    got = own_kernel_log_prob(z, centres, h, own)
    density = stats.multivariate_normal(cov=h * h * np.eye(2))
    for i, j in ((0, 2), (2, 3)):
        expected = float(density.logpdf((z[i] - centres[j]).numpy())) - math.log(6)
        assert got[i].item() == pytest.approx(expected, rel=1e-5)
    assert got[1].item() == -math.inf


def test_cli_novelty(tmp_path: Path) -> None:
    run = tmp_path / "gen"
    common = ["--method", "gen", "--data", "digits:digits=1", "--arch", "fc", "--latent", "4",
              "--batch-size", "16", "--steps", "5", "--no-progress"]  # fmt: skip
    assert main(["train", *common, "--out", str(run)]) == 0
    out = tmp_path / "nov"
    assert main(["novelty", str(run), "--data", "digits", "--inlier-class", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "novelty.json").read_text())
    assert 0 <= summary["auroc"] <= 1 and summary["inlier_class"] == 1
    assert (out / "most_likely.png").is_file() and (out / "least_likely.png").is_file()
    assert main(["novelty", str(run), "--data", "digits", "--inlier-class", "11",
                 "--out", str(out)]) == 2  # fmt: skip


def _trained_2d_gen(steps: int) -> tuple[GEN, torch.Tensor]:
    """A 2-D GEN on uniform points of the square (an encoder can make them Gaussian)."""
    g = torch.Generator().manual_seed(0)
    data = torch.rand(10000, 2, generator=g) * 2 - 1
    torch.manual_seed(0)
    m = GEN(GENConfig(arch="fc", latent=2, hidden=64, lam=0.01, lr=1e-3),
            DataSpec((2,), None, len(data)), torch.device("cpu"))  # fmt: skip
    m.bind_data(data, None)
    for _ in range(steps):
        idx = torch.randint(0, len(data), (64,), generator=g)
        m.train_step(Batch(data[idx], None, idx))
    return m, m.encode(data)


def test_codes_shrink_towards_eq8_quickly() -> None:
    m, codes = _trained_2d_gen(2500)
    predicted = math.sqrt(1 - m.config.bandwidth**2)  # h = 0.32 for (l, m) = (2, 4000)
    assert abs(float(codes.std(0).mean()) / predicted - 1) < 0.25
    assert float(codes.mean(0).abs().max()) < 0.3


@pytest.mark.slow
def test_trained_2d_gen_matches_eq8_within_10_percent() -> None:
    """Eq. 8: converged codes are N(0, (1 - h^2) I) for the standard-normal target."""
    m, codes = _trained_2d_gen(15000)
    predicted = math.sqrt(1 - m.config.bandwidth**2)
    for std in codes.std(0).tolist():
        assert abs(std / predicted - 1) < 0.10, (std, predicted)
