"""learning-speed (Generator Reversal Fig. 5) and memorisation (Table 1) at tiny sizes, and
the arithmetic of their findings on hand-made curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdegen.errors import UsageError
from kdegen.experiments import Settings, learning_speed, memorisation, run_experiment


def curve(values: list[float], every: int = 10) -> dict[str, list[float] | list[int]]:
    steps = [every * (i + 1) for i in range(len(values))]
    return {"steps": steps, "time": [0.5 * s for s in steps], "inception_score": values,
            "fid": [1.0] * len(values), "rev_step": [], "rev_steps": []}  # fmt: skip


def test_claim_counts_evaluations_from_a_quarter_of_training_on() -> None:
    """8 evaluations: a quarter of training is step 20, so 7 count; kdegan's mean falls
    below gan's at one of them (step 50), the paper's scheme at all."""
    gan = [curve([1, 2, 3, 4, 5, 6, 7, 8]), curve([1, 2, 3, 4, 5, 6, 7, 8])]
    kde = [curve([0, 3, 4, 5, 4, 7, 8, 9]), curve([0, 3, 4, 5, 5, 7, 8, 9])]
    paper = [curve([1, 1, 1, 1, 1, 1, 1, 1])]
    data = "digits1000"
    text, found = learning_speed._claim({(data, "gan"): gan, (data, "kdegan"): kde,
                                         (data, "kdegan-paper"): paper})  # fmt: skip
    assert found[data] == {"kdegan_at_least_gan": "6/7", "paper_at_least_gan": "0/7",
                           "holds": False}  # fmt: skip
    assert "does not hold" in text
    assert learning_speed._first_reaching(kde[0], 8.0) == (70, 35.0)
    assert learning_speed._first_reaching(paper[0], 8.0) == (None, None)


def test_tiny_learning_speed_writes_curves_table_and_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(learning_speed, "QUICK", learning_speed.Size({"digits1000": (40, 20)}, 1))
    monkeypatch.setattr(learning_speed, "EVAL_N", 200)
    settings = Settings(tmp_path / "ls", quick=True, progress=False)
    outcome = run_experiment("learning-speed", settings)
    found = json.loads((settings.out / "results.json").read_text())
    assert set(found["curves"]) == {"digits1000/gan", "digits1000/kdegan",
                                    "digits1000/kdegan-paper"}  # fmt: skip
    for (c,) in found["curves"].values():  # one seed each
        assert c["steps"] == [20, 40] and len(c["inception_score"]) == 2
        assert all(v >= 1.0 for v in c["inception_score"])  # a score is at least 1
    assert found["curves"]["digits1000/kdegan-paper"][0]["rev_steps"]  # logged per iteration
    assert [r["method"] for r in outcome.rows] == ["gan", "kdegan", "kdegan-paper", "real images"]
    assert found["real_inception_score"]["digits1000"] > 10
    assert "digits1000: kdegan's mean Inception Score" in outcome.summary
    assert (settings.out / "plot.png").stat().st_size > 0
    assert len(list((settings.out / "parts").glob("*.json"))) == 3  # resumable parts


def test_learning_speed_refuses_points(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Inception Scores of images"):
        run_experiment("learning-speed", Settings(tmp_path / "x", data="ring8", progress=False))
    assert not (tmp_path / "x").exists()


def test_tiny_memorisation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memorisation, "QUICK", memorisation.Size(10, 100))
    settings = Settings(tmp_path / "mem", quick=True, data="digits", progress=False)
    outcome = run_experiment("memorisation", settings)
    rows = {r["samples"]: r for r in outcome.rows}
    assert set(rows) >= {"gan (N(0, I))", "kdegan, N(0, I)", "kdegan, its KDE", "test images"}
    # a test image's nearest training image is a real digit: far nearer than noise is
    assert 0 < rows["test images"]["mean_distance"] < rows["gan (N(0, I))"]["mean_distance"]
    assert rows["paper: kde"]["mean_distance"] == 4.26
    assert (settings.out / "closest.png").is_file() and "Mean distance" in outcome.summary
    assert {"kdegan, KDE at 2x its bandwidth", "kdegan, KDE at 4x its bandwidth"} <= set(rows)
    # by definition about 5% of the test images lie below the test distances' 5th percentile
    assert rows["test images"]["closer_than_95pct_test"] == pytest.approx(0.05, abs=0.01)
    assert all(r["inception_score"] >= 1.0 for r in rows.values() if r["n"] is not None)
    checkpoint = settings.out / "runs" / "kdegan" / "checkpoints" / "latest.pt"
    before = checkpoint.stat().st_mtime_ns
    again = run_experiment("memorisation", settings)  # the finished runs are reused
    assert checkpoint.stat().st_mtime_ns == before
    assert again.rows == outcome.rows


def test_tiny_random_reversal_separates_k_below_and_above_the_pixels(tmp_path: Path) -> None:
    """Figs. 1-2 at the quick size (digits, 64 pixels): a random generator with k = 100
    reconstructs digits the classifier reads, one with k = 16 does not."""
    settings = Settings(tmp_path / "rr", quick=True, progress=False)
    outcome = run_experiment("random-reversal", settings)
    by = {(r["generator"], r["k"]): r for r in outcome.rows}
    small, large = by[("random", 16)], by[("random", 100)]
    assert large["loss_400"] < large["loss_5"] / 10  # the error falls fast
    assert large["classifier_accuracy"] > 0.8 > 0.3 > small["classifier_accuracy"]
    assert small["loss_400"] > 10 * large["loss_400"]
    assert "k >= pixels" in outcome.summary
    assert (settings.out / "digits-reconstructions.png").stat().st_size > 0
