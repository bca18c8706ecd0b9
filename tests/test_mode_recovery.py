"""mode-recovery (Generator Reversal Table 2) at a tiny size; the phases' mechanics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.experiments import Settings, mode_recovery, run_experiment
from kdegen.nets.classifier import ClassifierConfig


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


@pytest.mark.parametrize("base", mode_recovery.BASES)
def test_restricted_data_uses_only_digits_6_to_9(base: str) -> None:
    data = load(mode_recovery.RESTRICTED.format(base), "train")
    assert data.labels is not None
    digits = torch.stack([data.labels // 100, data.labels // 10 % 10, data.labels % 10])
    assert int(digits.min()) >= 6


def test_tiny_mode_recovery_on_mnist1000(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = mode_recovery.Size("digits1000", 3, 1000, width=8,  # 1,000: one sample per mode
                              classifier=ClassifierConfig(epochs=1, min_steps=60))  # fmt: skip
    monkeypatch.setattr(mode_recovery, "QUICK", tiny)
    settings = Settings(tmp_path, quick=True, data="mnist1000", progress=False)
    outcome = run_experiment("mode-recovery", settings)
    assert [(r["method"], r["phase"]) for r in outcome.rows] == [
        *((m, p) for m in mode_recovery.METHODS_COMPARED for p in mode_recovery.PHASES),
        ("data", "real images"),
    ]
    for r in outcome.rows:
        assert 1 <= r["inception_score"] <= 1000 and 1 <= r["modes"] <= 1000
    assert outcome.rows[0]["paper_is"] == 107  # Table 2's gan, restricted (mnist1000 only)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["data"] == "mnist1000"
    compared = set(data["recovery_ratio"]) | set(data["not_learned"])
    assert compared == set(mode_recovery.METHODS_COMPARED)
    assert (tmp_path / "kdegan-after-restriction.png").is_file()
    with pytest.raises(UsageError, match="mnist1000 or digits1000"):
        run_experiment("mode-recovery", Settings(tmp_path / "new", quick=True, data="mnist5k"))
    assert not (tmp_path / "new").exists()  # no empty output folder left behind
