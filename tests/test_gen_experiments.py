"""GENs reproductions: gen-bandwidths, gen-entropy, gen-correlation, gen-mog (tiny sizes)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from kdegen.cli import main
from kdegen.experiments import (
    Settings,
    gen_bandwidths,
    gen_correlation,
    gen_entropy,
    gen_mog,
    run_experiment,
)
from kdegen.experiments.autoencoders import whiten


def test_whiten_gives_zero_mean_and_identity_covariance() -> None:
    g = torch.Generator().manual_seed(0)
    z = (
        torch.randn(300, 4, generator=g)
        @ torch.tensor([[2.0, 0.3, 0, 0], [0, 1, 0.5, 0], [0, 0, 0.2, 0], [1, 0, 0, 3]])
        + 5
    )
    w = whiten(z)
    assert torch.allclose(w.mean(0), torch.zeros(4, dtype=w.dtype), atol=1e-10)
    assert torch.allclose(torch.cov(w.T), torch.eye(4, dtype=w.dtype), atol=1e-8)


def test_separated_mixture_is_whitened_and_bimodal() -> None:
    g = torch.Generator().manual_seed(0)
    z = gen_correlation.mixture_samples(200_000, 3, 4.0, g)
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=z.dtype), atol=0.01)
    assert torch.allclose(torch.cov(z.T), torch.eye(3, dtype=z.dtype), atol=0.01)
    # first coordinate: mixture of N(+-2, 1) / sqrt(5); its 4th moment is (s^4/16 + 3 s^2/2 + 3)
    # / (1 + s^2/4)^2 = 43/25 = 1.72 for s = 4, against 3 for a Gaussian
    assert float(z[:, 0].pow(4).mean()) == pytest.approx(43 / 25, abs=0.03)
    assert float(z[:, 1].pow(4).mean()) == pytest.approx(3.0, abs=0.05)


def test_discriminator_jsd_spans_zero_to_log2() -> None:
    g = torch.Generator().manual_seed(0)

    def normal(shift: float) -> torch.Tensor:
        return torch.randn(400, 2, generator=g, dtype=torch.float64) + shift

    far = gen_correlation.nn_jsd(normal(8), normal(0), normal(8), normal(0), 60, seed=0)
    same = gen_correlation.nn_jsd(normal(0), normal(0), normal(0), normal(0), 60, seed=0)
    assert far == pytest.approx(math.log(2), abs=0.03)
    assert abs(same) < 0.03


def test_matched_accuracy_is_the_best_permutation() -> None:
    g = torch.Generator().manual_seed(1)
    modes, labels = (
        torch.randint(0, 4, (200,), generator=g),
        torch.randint(0, 4, (200,), generator=g),
    )
    labels[:80] = (modes[:80] + 1) % 4  # a shifted assignment dominates
    best = max(float((torch.tensor(p)[modes] == labels).double().mean())
               for p in itertools.permutations(range(4)))  # fmt: skip
    assert gen_mog.matched_accuracy(modes, labels, 4) == pytest.approx(best)


def test_bandwidth_cells_agree_with_table1_or_error() -> None:
    cell = gen_bandwidths._cell(2, 250, trials=3, seed=0)
    assert cell["agrees"] and abs(cell["h"] - 0.46) < 0.09
    beyond = gen_bandwidths._cell(40, 250, trials=1, seed=0)
    assert beyond["ours"] == "error" and beyond["agrees"]  # the paper's "error" cell


def _files(out: Path) -> None:
    for name in ("table.md", "results.json", "plot.png"):
        assert (out / name).is_file(), name


def test_gen_bandwidths_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen_bandwidths, "QUICK", gen_bandwidths.Size((2, 40), (250,), 1))
    outcome = run_experiment("gen-bandwidths", Settings(tmp_path, quick=True, progress=False))
    assert [(r["l"], r["m"]) for r in outcome.rows] == [(2, 250), (40, 250)]
    assert 0 < outcome.rows[0]["h"] < 1 and outcome.rows[1]["ours"] == "error"
    assert "cells agree" in outcome.summary
    _files(tmp_path)


def test_gen_correlation_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen_correlation, "QUICK", gen_correlation.Size((2,), (250,), 2, 20))
    outcome = run_experiment("gen-correlation", Settings(tmp_path, quick=True, progress=False))
    (row,) = outcome.rows
    assert -1 <= row["r_nn"] <= 1 and row["r_kde"] > 0.5  # the KDE sees s = 6 from s = 0
    _files(tmp_path)


def test_gen_entropy_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen_entropy, "QUICK", gen_entropy.Size(1, 5, (500,)))
    small_gen = gen_entropy.GENConfig(arch="fc", latent=8, m=500, hidden=64)
    monkeypatch.setitem(gen_entropy.CONFIGS, "gen", small_gen)
    outcome = run_experiment("gen-entropy", Settings(tmp_path, quick=True, progress=False))
    by = {r["method"]: r for r in outcome.rows}
    assert set(by) == {"gen", "vae", "aae", "standard normal"}
    analytic = 0.5 * 8 * math.log(2 * math.pi * math.e)
    assert abs(by["standard normal"]["H_500"] - analytic) < 0.6  # KDE bias at n = 500
    assert all(math.isfinite(r["H_500"]) for r in outcome.rows)
    _files(tmp_path)


def test_gen_mog_tiny_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen_mog, "QUICK", gen_mog.Size(5))
    out = tmp_path / "mog"
    assert main(["experiment", "gen-mog", "--quick", "--data", "digits", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    _files(out)
    assert "labelled" in (out / "table.md").read_text()
