"""mode-recovery (Generator Reversal Table 2) at a tiny size; the phases' mechanics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdegen.data import load
from kdegen.evaluation.embed.cnn import ClassifierConfig
from kdegen.experiments import Settings, mode_recovery, run_experiment


def test_carry_over_copies_networks_and_optimizers_but_not_the_bank() -> None:
    small, full = load("mnist1000:bias=1,digits=6789,n=200"), load("mnist1000:bias=1,n=300")
    first = mode_recovery._build("kdegan", small, 8, seed=0)
    mode_recovery._train(first, small, 2, seed=0, label="", progress=False)
    second = mode_recovery._build("kdegan", full, 8, seed=1)
    mode_recovery._carry_over(first, second)
    for name, net in first.networks().items():
        for a, b in zip(net.state_dict().values(), second.networks()[name].state_dict().values(),
                        strict=True):  # fmt: skip
            assert torch.equal(a, b)
    g_first = first.optimizers()["G"].state_dict()["state"]
    assert g_first and second.optimizers()["G"].state_dict()["state"].keys() == g_first.keys()
    assert len(second.bank.codes) == 300  # type: ignore[attr-defined]  # a bank for the new set


def test_summary_sets_aside_models_that_have_not_learned() -> None:
    rows = [{"method": m, "phase": p, "inception_score": s}
            for m, scores in (("gan", (1.0, 1.0, 1.0)), ("bigan", (90, 180, 240)),
                              ("kdegan", (99, 289, 291)))
            for p, s in zip(mode_recovery.PHASES, scores, strict=True)]  # fmt: skip
    text, found = mode_recovery._summary(rows)
    assert found["not_learned"] == ["gan"] and found["best_recovery"] == "kdegan"
    assert found["recovery_ratio"]["bigan"] == pytest.approx(0.75)
    assert "gan had not learned yet" in text


def test_restricted_data_uses_only_digits_6_to_9() -> None:
    data = load(mode_recovery.RESTRICTED, "train")
    assert data.labels is not None
    digits = torch.stack([data.labels // 100, data.labels // 10 % 10, data.labels % 10])
    assert int(digits.min()) >= 6


def test_tiny_mode_recovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = mode_recovery.Size(3, 300, width=8, classifier=ClassifierConfig(epochs=1, min_steps=60))
    monkeypatch.setattr(mode_recovery, "QUICK", tiny)
    outcome = run_experiment("mode-recovery", Settings(tmp_path, quick=True, progress=False))
    assert [(r["method"], r["phase"]) for r in outcome.rows] == [
        (m, p) for m in mode_recovery.METHODS_COMPARED for p in mode_recovery.PHASES
    ]
    for r in outcome.rows:
        assert 1 <= r["inception_score"] <= 1000 and 1 <= r["modes"] <= 300
    data = json.loads((tmp_path / "results.json").read_text())
    compared = set(data["recovery_ratio"]) | set(data["not_learned"])
    assert compared == set(mode_recovery.METHODS_COMPARED)
    assert (tmp_path / "kdegan-after-restriction.png").is_file()
