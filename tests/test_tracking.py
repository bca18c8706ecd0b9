"""Evaluation during training (--eval-every), `kdegen compare` and the report's sections."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from kdegen import runs
from kdegen.cli import main
from kdegen.config import RunConfig, TrainConfig
from kdegen.data import load
from kdegen.evaluation.embed import EmbedSettings, Reference, classifier_embedding
from kdegen.evaluation.metrics import inception_score
from kdegen.methods.gan import GANConfig
from kdegen.runs.directory import RunDir

SMALL = {"width": 8, "latent": 8}


def train(out: Path, method: str = "gan", seed: int = 0, eval_every: int = 5,
          steps: int = 10, **options: object) -> Path:  # fmt: skip
    from kdegen.methods import METHODS

    cls = METHODS.get(method)
    config = TrainConfig(data="digits", steps=steps, batch_size=32, seed=seed, log_every=5,
                         sample_every=100, checkpoint_every=100, eval_every=eval_every,
                         eval_n=200)  # fmt: skip
    run = runs.start(RunConfig(method, cls.Config(**SMALL, **options), config), out,
                     progress=False)  # fmt: skip
    return run.path


def records(path: Path) -> list[dict[str, float]]:
    return RunDir(path).read_metrics()


def test_eval_every_logs_scores_and_leaves_training_as_it_was(tmp_path: Path) -> None:
    watched = train(tmp_path / "watched")
    plain = train(tmp_path / "plain", eval_every=0)
    evals = [r for r in records(watched) if "eval_seconds" in r]
    assert [r["step"] for r in evals] == [5, 10]
    assert all({"inception_score", "fid", "time"} <= set(r) for r in evals)
    # the losses are those of the run that was not evaluated: its randomness was untouched
    losses = [{k: v for k, v in r.items() if k.endswith("_loss")} for r in records(plain)]
    assert [{k: v for k, v in r.items() if k.endswith("_loss")}
            for r in records(watched) if "eval_seconds" not in r] == losses  # fmt: skip
    # the score logged at the last step is the Inception Score of 200 samples drawn with
    # the run's seed, under the digits classifier, computed here directly
    method = runs.load_run(watched, "cpu").method
    with torch.no_grad():
        x = method.sample(200, torch.Generator().manual_seed(0))
    ref = Reference("digits", load("digits", "test"), load("digits", "train"))
    probs = classifier_embedding(ref, EmbedSettings(progress=False)).embed(x).probs
    assert probs is not None
    assert evals[-1]["inception_score"] == pytest.approx(inception_score(probs).mean, rel=1e-6)


@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        (["--data", "digits", "--eval-every", "5", "--eval-metrics", "nope"], "unknown metric"),
        (["--data", "ring8:n=200", "--eval-every", "5", "--eval-metrics", "inception_score"],
         "cannot be computed"),
        (["--data", "digits", "--eval-every", "-1"], "--eval-every"),
    ],
)  # fmt: skip
def test_bad_evaluation_options_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expect: str
) -> None:
    out = tmp_path / "run"
    assert main(["train", *flags, "--steps", "5", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not out.exists()


def test_points_are_scored_by_their_modes(tmp_path: Path) -> None:
    run = runs.start(RunConfig("gan", GANConfig(hidden=16, layers=2),
                               TrainConfig(data="ring8:n=400", steps=6, batch_size=32,
                                           eval_every=3, eval_n=100)), tmp_path / "r",
                     progress=False)  # fmt: skip
    evals = [r for r in run.read_metrics() if "eval_seconds" in r]
    assert len(evals) == 2 and all("mode_count" in r and "mode_count_high_quality" in r
                                   for r in evals)  # fmt: skip


def test_compare_groups_seeds_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = train(tmp_path / "a", seed=0), train(tmp_path / "b", seed=1)
    c = train(tmp_path / "c", beta1=0.9)
    out = tmp_path / "cmp.png"
    assert main(["compare", str(a), str(b), str(c), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size > 0
    last = [[r["inception_score"] for r in records(p) if "eval_seconds" in r][-1] for p in (a, b)]
    mean = statistics.fmean(last)
    lines = {line.split()[0]: line for line in printed.splitlines()[1:3]}
    assert set(lines) == {"beta1=0.5", "beta1=0.9"}  # labelled by what differs
    assert f"{mean:.4g}" in lines["beta1=0.5"] and " 2 " in lines["beta1=0.5"]
    assert main(["compare", str(a), "--metric", "nope", "--out", str(out)]) == 2
    assert "logged no nope" in capsys.readouterr().err


def test_report_shows_diagnostics_and_scores(tmp_path: Path) -> None:
    run = train(tmp_path / "k", method="kdegan", steps=12, bank_size=64, refit_every=2)
    assert main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert "## Diagnostics" in text and "## Evaluation during training" in text
    for png in ("losses.png", "diagnostics.png", "evaluation.png"):
        assert (run / "report" / png).stat().st_size > 0
    logged = {k for r in records(run) for k in r}
    assert {"info_ratio", "kde_bandwidth", "kde_spread", "rev_loss"} <= logged
    assert json.loads((run / "config.json").read_text())["train"]["eval_every"] == 5
