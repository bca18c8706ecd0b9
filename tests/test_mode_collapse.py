"""The mode-collapse experiment: a tiny version through the command line, and its checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdegen.cli import main
from kdegen.errors import UsageError
from kdegen.experiments import EXPERIMENTS, Settings, run_experiment
from kdegen.experiments import mode_collapse as mc


def test_tiny_run_writes_table_json_and_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(mc.SIZES, True, mc.Size(1, {"ring8": 20, "grid25": 20}))
    argv = ["experiment", "mode-collapse", "--quick", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    assert "PacGAN2 covered all 25 modes in" in capsys.readouterr().out
    data = json.loads((tmp_path / "results.json").read_text())
    labels = list(mc.METHOD_OPTIONS)
    assert [(r["data"], r["method"]) for r in data["rows"]] == [
        (d, m) for d in ("ring8", "grid25") for m in labels
    ]
    for row in data["rows"]:
        assert 0 <= row["modes_min"] <= row["modes_mean"] <= row["modes_max"]
        assert row["modes_max"] <= (8 if row["data"] == "ring8" else 25)
        assert 0.0 <= row["high_quality"] <= 1.0 and row["seeds"] == 1
    assert len(data["runs"]) == 2 * len(labels) and {
        "pacgan_claim_reproduced",
        "gan_all_25_seeds",
    } <= set(data)
    for name in ("table.md", "plot.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "runs" / "grid25-pacgan2-seed0" / "checkpoints" / "latest.pt").is_file()
    config = json.loads((tmp_path / "runs" / "ring8-unrolled-seed0" / "config.json").read_text())
    assert config["method"] == "unrolled" and config["train"]["steps"] == 20
    # each model is a part: a second run reuses all of them and writes the same table
    assert main(argv) == 0
    assert (
        f"reusing {2 * len(labels)} of {2 * len(labels)} finished parts" in capsys.readouterr().err
    )
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == data["rows"]


def test_one_mixture_and_bad_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(mc.SIZES, True, mc.Size(1, {"ring8": 5, "grid25": 5}))
    monkeypatch.setattr(mc, "METHOD_OPTIONS", {"gan": ("gan", {}), "pacgan2": ("pacgan", {})})
    out = run_experiment("mode-collapse", Settings(tmp_path, True, "ring8:n=500", progress=False))
    assert [r["data"] for r in out.rows] == ["ring8:n=500"] * 2
    assert "covered all 25" not in out.summary  # the claim is about grid25
    with pytest.raises(UsageError, match="Gaussian mixture"):
        run_experiment("mode-collapse", Settings(tmp_path, True, "digits", progress=False))
    assert "mode-collapse" in EXPERIMENTS
