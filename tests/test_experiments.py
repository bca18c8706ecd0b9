"""Reproductions (kdegen.experiments): quick sizes on digits by default; on mnist5k, with the
thesis's claims checked, under ``-m slow``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdegen.cli import main
from kdegen.experiments import Settings, metric_ranking, run_experiment


def _outputs_exist(out: Path) -> dict:  # type: ignore[type-arg]
    for name in ("table.md", "results.json", "plot.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert "![plot](plot.png)" in (out / "table.md").read_text()
    return json.loads((out / "results.json").read_text())  # type: ignore[no-any-return]


def test_missing_modes_on_digits(tmp_path: Path) -> None:
    outcome = run_experiment("missing-modes", Settings(tmp_path, True, "digits", progress=False))
    rows = {r["n"]: r for r in outcome.rows}
    assert list(rows) == [10, 20, 100, 1000, 1438]  # capped at the training-set size
    assert rows[10]["ddm_nats"] > rows[100]["ddm_nats"] > rows[1438]["ddm_nats"]
    assert rows[100]["inception_score"] >= 0.9 * rows[1438]["inception_score"]
    assert rows[1438]["ddm_spread"] < 1e-6  # the whole training set: no draw to vary
    data = _outputs_exist(tmp_path)
    assert data["ddm_keeps_improving"] and data["is_saturates_at"] <= 1000


def test_corruptions_on_digits_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["experiment", "corruptions", "--quick", "--data", "digits", "--out", str(tmp_path),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "worsens monotonically" in capsys.readouterr().out
    data = _outputs_exist(tmp_path)
    for kind in ("gaussian noise", "uniform noise", "gaussian blur"):
        mine = [r for r in data["rows"] if r["corruption"] == kind]
        assert len(mine) >= 3 and mine[0]["strength"] == 0
        assert mine[-1]["ddm_bits"] > mine[0]["ddm_bits"] + 3 * mine[0]["stderr_bits"]


def test_metric_ranking_runs_on_tiny_gans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(metric_ranking.SIZES, True, metric_ranking.Size((2, 4), 60))
    outcome = run_experiment("metric-ranking", Settings(tmp_path, True, "digits", progress=False))
    assert [(r["model"], r["step"]) for r in outcome.rows] == [
        ("gan", 2), ("weak", 2), ("train set", 2), ("gan", 4), ("weak", 4), ("train set", 4)
    ]  # fmt: skip
    data = _outputs_exist(tmp_path)
    assert data["final_orders"]["ddm_nats"][0] == "train set"
    assert (tmp_path / "runs" / "gan" / "checkpoints" / "latest.pt").is_file()


@pytest.mark.slow
def test_missing_modes_mnist5k_quick(tmp_path: Path) -> None:
    """Fig. 3.7: the DDM keeps improving with n while the Inception Score saturates."""
    run_experiment("missing-modes", Settings(tmp_path, quick=True, progress=False))
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["ddm_keeps_improving"] and data["is_saturates_at"] <= 1000
    assert data["ddm_gain_after_is_saturates_nats"] > 0


@pytest.mark.slow
def test_corruptions_mnist5k_quick(tmp_path: Path) -> None:
    """Sec. 3.4.6: the DDM worsens monotonically with each corruption's strength."""
    run_experiment("corruptions", Settings(tmp_path, quick=True, progress=False))
    data = json.loads((tmp_path / "results.json").read_text())
    assert all(v in ("yes", "within 1 stderr") for v in data["monotone"].values())


@pytest.mark.slow
def test_metric_ranking_mnist5k_quick(tmp_path: Path) -> None:
    """Sec. 3.4.2: the DDM ranks the training set above trained GANs."""
    outcome = run_experiment("metric-ranking", Settings(tmp_path, quick=True, progress=False))
    assert "ddm_nats: train set >" in outcome.summary
