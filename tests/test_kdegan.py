"""The kdegan method (Algorithm 2): code bank, KDE, warnings, state, command line. Its
resume after a stop between two KDE refits is in test_contract.py."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kdegen.cli import main
from kdegen.config import from_dict
from kdegen.methods import Batch, DataSpec, kdegan
from kdegen.methods.kdegan import KDEGAN, KDEGANConfig, KDEGANWarning
from kdegen.priors import KDE
from kdegen.reversal import ReversalConfig

REVERSAL = {f.name for f in dataclasses.fields(ReversalConfig)}

SPEC = DataSpec((2,), None, 40)
CPU = torch.device("cpu")


def small(**kw: object) -> KDEGANConfig:
    """A small kdegan; ``rev_*`` keywords are options of its reversal (``rev_steps=2``)."""
    rev: dict[str, object] = {"steps": 1}
    rev.update({k[4:]: kw.pop(k) for k in list(kw) if k.startswith("rev_") and k[4:] in REVERSAL})
    reversal = ReversalConfig(**rev)  # type: ignore[arg-type]
    return KDEGANConfig(latent=3, hidden=16, layers=2, reversal=reversal, **kw)  # type: ignore[arg-type]


def bound(config: KDEGANConfig, n: int = 40, seed: int = 0) -> tuple[KDEGAN, torch.Tensor]:
    """A kdegan with ``seed``'s networks bound to n fixed points."""
    torch.manual_seed(seed)
    gan = KDEGAN(config, DataSpec((2,), None, n), CPU)
    data = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    gan.bind_data(data, None)
    return gan, data


def test_step_refreshes_bank_codes_and_draws_noise_from_the_kde() -> None:
    gan, data = bound(small(bank_size=16, rev_batch=4, rev_steps=2))
    assert len(gan.bank) == 16  # 16 of the 40 examples
    before = [p.detach().clone() for p in gan.G.parameters() if p.dim() > 1]
    start = gan.bank.codes.clone()
    losses = gan.train_step(Batch(data[:8], None, torch.arange(8)))
    assert all(np.isfinite(float(v)) for v in losses.values())
    assert losses["rev_steps"] == 2.0 and {"rev_loss", "info_ratio", "kde_bandwidth"} <= set(losses)
    moved = (gan.bank.codes != start).any(1)
    assert int(moved.sum()) == 4 and gan.bank.visits.sum() == 4  # one refresh of 4 codes
    assert gan.bank.steps[moved].tolist() == [2] * 4
    # the KDE holds every bank code (prior draws count from the start); h = 0.3 x the
    # median nearest-neighbour distance over sqrt(k), computed here pair by pair
    assert isinstance(gan.kde, KDE) and gan.kde.codes is not None and len(gan.kde.codes) == 16
    codes = gan.kde.codes.double()
    d = torch.cdist(codes, codes) + torch.diag(torch.full((16,), math.inf, dtype=torch.float64))
    nn = float(d.min(1).values.median())
    assert gan.kde.bandwidth == pytest.approx(0.3 * nn / math.sqrt(3))
    after = [p for p in gan.G.parameters() if p.dim() > 1]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert gan.prior_for_sampling() is gan.kde
    for _ in range(3):  # the rotation goes on: after 4 refreshes every member was refreshed
        gan.train_step(Batch(data[:8], None, torch.arange(8)))
    assert gan.bank.visits.tolist() == [1] * 16


def test_codes_become_reversals_of_their_examples() -> None:
    """Trained on points the generator can reach, the bank's codes carry their examples:
    the information ratio falls far below the 1 of arbitrary codes."""
    gan, data = bound(small(bank_size=32, rev_batch=32, rev_steps=5, refit_every=1), n=32)
    first = gan.information(torch.arange(32))
    for _ in range(30):
        gan.train_step(Batch(data, None, torch.arange(32)))
    assert first > 0.8 and gan.information(torch.arange(32)) < 0.5 * first


def test_warm_start_continues_and_cold_start_restarts() -> None:
    warm, _ = bound(small(bank_size=6, rev_batch=6, rev_steps=3))
    cold, _ = bound(small(bank_size=6, rev_batch=6, rev_steps=3, warm_start=False,
                          rev_init="normal", rev_init_std=1e-4))  # fmt: skip
    for gan in (warm, cold):
        gan.reverse()
        gan.reverse()
    assert warm.bank.steps.tolist() == [6] * 6 and cold.bank.steps.tolist() == [6] * 6
    # a cold start ends near where 3 steps from tiny codes end; a warm one went further
    assert warm.bank.codes.norm() > cold.bank.codes.norm()


def test_paper_preset_is_the_papers_scheme() -> None:
    """Cold starts of std 1e-4, SGD at lr 1, Claim 4's test against samples of the
    current KDE, the KDE fitted on this iteration's codes alone."""
    config = from_dict(KDEGANConfig, {**KDEGAN.presets["paper"], "rev_batch": 8}, "paper", small())
    gan, data = bound(config)
    assert len(gan.bank) == 40 and len(gan.bank.usable()) == 0  # tiny codes are not used
    losses = gan.train_step(Batch(data[:8], None, torch.arange(8)))
    assert 1 <= losses["rev_steps"] <= 50
    assert gan.kde is not None and gan.kde.codes is not None and len(gan.kde.codes) == 8
    gan.train_step(Batch(data[:8], None, torch.arange(8)))
    assert gan.kde.codes is not None and len(gan.kde.codes) == 8  # the window is one iteration


@pytest.mark.parametrize(("warm", "advice"), [(True, "--rev-steps 2"), (False, "--warm-start")])
def test_warns_once_when_codes_carry_nothing(
    monkeypatch: pytest.MonkeyPatch, warm: bool, advice: str
) -> None:
    """A reversal that cannot keep up (a tiny step, no growth) leaves the ratio near 1;
    the advice fits the scheme (warm-started bank or the paper's cold starts)."""
    monkeypatch.setattr(kdegan, "INFO_PATIENCE", 2)
    gan, data = bound(small(bank_size=8, rev_batch=8, rev_optimizer="sgd", rev_lr=1e-9,
                            rev_restarts=0, refit_every=1, warm_start=warm), n=8)  # fmt: skip
    with pytest.warns(KDEGANWarning, match="carry little information") as caught:
        for _ in range(4):
            gan.train_step(Batch(data, None, torch.arange(8)))
    assert len(caught) == 1
    assert advice in str(caught[0].message)


def test_state_round_trip() -> None:
    a, data = bound(small(bank_size=10, rev_batch=4))
    for _ in range(3):
        a.train_step(Batch(data[:8], None, torch.arange(8)))
    b, _ = bound(small(bank_size=10, rev_batch=4), seed=1)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # as from disk: no shared tensors
    assert torch.equal(a.bank.codes, b.bank.codes) and b.kde is not None and a.kde is not None
    assert b.kde.bandwidth == a.kde.bandwidth
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(a.sample(5, g1), b.sample(5, g2))
    torch.manual_seed(3)
    la = a.train_step(Batch(data[:8], None, torch.arange(8)))
    torch.manual_seed(3)
    lb = b.train_step(Batch(data[:8], None, torch.arange(8)))
    assert {k: float(v) for k, v in la.items()} == {k: float(v) for k, v in lb.items()}


SMALL = ["--width", "8", "--latent", "6", "--batch-size", "16", "--log-every", "2",
         "--checkpoint-every", "4", "--sample-every", "4", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kdegan") / "run"
    assert main(["train", "--method", "kdegan", "--data", "digits", "--steps", "4",
                 "--out", str(out), *SMALL]) == 0  # fmt: skip
    return out


def test_cli_reverse_sample_traverse_explore(run: Path, tmp_path: Path) -> None:
    codes = tmp_path / "codes.npz"
    rev = ["--data", "digits", "--steps", "3", "--batch-size", "8"]
    assert main(["reverse", str(run), *rev, "--n", "20", "--out", str(codes)]) == 0
    with np.load(codes) as f:
        assert f["codes"].shape == (20, 6) and f["loss"].shape == (20,)
        assert (f["steps"] == 3).all() and f["labels"].shape == (20,)
    assert (tmp_path / "codes.png").is_file()
    for argv in (
        ["sample", str(run), "--prior", "kde", "--bandwidth", "0.3", "--background", "0.1"],
        ["sample", str(run), "--prior", "kde", "--codes", str(codes)],
    ):
        assert main([*argv, "--n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["traverse", str(run), *rev, "--pairs", "2", "--points", "5",
                 "--out", str(tmp_path / "t.png")]) == 0  # fmt: skip
    assert main(["explore", str(run), *rev, "--radius", "0.5", "--images", "2",
                 "--out", str(tmp_path / "e.png")]) == 0  # fmt: skip


def test_cli_analyze_latent(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "an"
    argv = ["analyze", "latent", str(run), "--data", "digits", "--n", "40", "--steps", "3",
            "--curve-steps", "6", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "latent.json").read_text())
    assert len(summary["mmd_curve"]) == 6 and len(summary["random_loss_curve"]) == 6
    assert summary["ratio_trained_codes"] > 0 and summary["ratio_random_tsne"] > 0
    assert summary["ratio_noise_codes"] > 0 and summary["ratio_noise_tsne"] > 0
    for png in ("tsne.png", "holdout.png", "mmd.png", "random_loss.png",
                "random_reconstructions.png"):  # fmt: skip
        assert (out / png).is_file()


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["reverse", "{run}", "--data", "mnist5k", "--out", "{tmp}/c.npz"], "cannot be reversed"),
        (
            ["sample", "{run}", "--prior", "kde", "--bandwidth", "0", "--out", "{tmp}/s.png"],
            "positive",
        ),
        (
            ["sample", "{run}", "--prior", "kde", "--bandwidth", "-2", "--out", "{tmp}/s.png"],
            "positive",
        ),
        (
            ["sample", "{run}", "--prior", "kde", "--background", "1.5", "--out", "{tmp}/s.png"],
            "--background must be at most 1",
        ),
        (
            [
                "sample",
                "{run}",
                "--prior",
                "kde",
                "--codes",
                "{tmp}/wrong.npz",
                "--out",
                "{tmp}/s.png",
            ],
            "do not fit",
        ),
        (
            [
                "sample",
                "{run}",
                "--prior",
                "kde",
                "--codes",
                "{tmp}/empty.npz",
                "--out",
                "{tmp}/s.png",
            ],
            "empty",
        ),
        (
            ["reverse", "{run}", "--data", "digits", "--lr", "0", "--out", "{tmp}/c.npz"],
            "--lr must be > 0",
        ),
        (
            ["traverse", "{run}", "--data", "digits", "--points", "1", "--out", "{tmp}/t.png"],
            "at least 2",
        ),
        (
            ["explore", "{run}", "--data", "digits", "--radius", "0", "--out", "{tmp}/e.png"],
            "--radius must be > 0",
        ),
        (["analyze", "{run}"], "analyze latent"),
    ],
)
def test_bad_inputs(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expect: str
) -> None:
    np.savez(tmp_path / "wrong.npz", codes=np.zeros((5, 4), np.float32))
    np.savez(tmp_path / "empty.npz", codes=np.zeros((0, 6), np.float32))
    argv = [a.format(run=run, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "c.npz").exists() and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        (["--rev-stop", "mmd"], "--no-warm-start"),
        (["--kde-bandwidth", "0.3*foo"], "bandwidth"),
        (["--bank-size", "-1"], "--bank-size"),
        (["--rev-restarts", "-2"], "--rev-restarts"),
        (["--background", "1.5"], "--background must be at most 1"),
        (["--rev-optimizer", "lbfgs"], "--rev-optimizer"),
        (["--rev-lr", "0"], "--rev-lr must be > 0"),
        (["--rev-level", "2"], "--rev-level must be < 1"),
        (["--rev-steps", "1.5"], "invalid int"),
    ],
)
def test_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expect: str
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--method", "kdegan", "--data", "ring8:n=200", *flags, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not out.exists()


def test_analysis_refuses_codes_without_spread() -> None:
    """t-SNE of identical codes crashed scikit-learn (a segfault after a 0/0 in its PCA):
    ``--init zeros`` before a bias-free layer gives every example the code 0."""
    from kdegen.analysis import _check_spread
    from kdegen.errors import UsageError

    with pytest.raises(UsageError, match="is the same"):
        _check_spread(torch.zeros(10, 4), "random-weight")
    with pytest.raises(UsageError, match="NaN"):
        _check_spread(torch.tensor([[0.0, math.nan], [1.0, 2.0]]), "trained")
    _check_spread(torch.randn(10, 4), "trained")


def test_cluster_ratio_of_codes_that_carry_nothing() -> None:
    """Fig. 3's ratio for N(0, I) codes labelled at random: class centroids of n_c codes
    lie sqrt(2 k / n_c) apart and codes sqrt(k (1 - 1/n_c)) from their centroid, so the
    ratio is about sqrt(2 / (n_c - 1)): 0.142 for 100 codes a class (the paper's random
    generator: 0.1)."""
    from kdegen import latent

    z = torch.randn(1000, 100, generator=torch.Generator().manual_seed(0))
    ratio = latent.cluster_ratio(z, torch.arange(1000) % 10)
    assert ratio == pytest.approx(math.sqrt(2 / 99), rel=0.1)
