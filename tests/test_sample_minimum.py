"""Metrics on too few samples: each declares the least size per set at which it means
something; below it its function raises a one-line UsageError and ``kdegen evaluate``
skips it with the reason (under ``all``) or stops (when it was named)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kdegen.cli import main
from kdegen.data import mixtures
from kdegen.errors import UsageError
from kdegen.evaluation import metrics as M
from kdegen.evaluation.embed import EmbedSettings
from kdegen.evaluation.evaluate import plan_metrics, select_metrics
from kdegen.evaluation.generated import load_reference
from kdegen.evaluation.roles import ROLE_SOURCES
from kdegen.evaluation.sources import Sources
from kdegen.evaluation.tracking import TrainingEvaluator

# the least samples per set, and the reason in a word (the registry says it in full)
LEAST = {
    "ddm": 2,  # standard error over test points
    "ddm_relative": 2,  # standard error over training points
    "inception_score": 20,  # 10 splits of 2: a split of one sample scores exactly 1
    "mode_score": 2,  # one sample scores exactly 1
    "fid": 2,  # a covariance
    "kid": 4,  # 3 against 3 cannot reach p < 0.05 under permutation
    "mmd": 4,  # the same, for the permutation test itself
    "parzen": 3,  # one test point for sigma, two for mean and standard error
    "precision_recall": 4,  # k = 3 neighbours
    "density_coverage": 6,  # k = 5 neighbours
    "nearest_neighbour": 2,  # std with ddof=1
    "birthday": 20,  # batches of 10 from twice as many
    "mode_count": 8,  # one per mode (ring8)
    "digit_modes": 1000,  # one per mode (MNIST1000)
}


def role_array(role: str, n: int, metric: str, g: torch.Generator) -> Any:
    """An input of ``role`` with n samples (continuous: no accidental ties)."""
    centres = torch.tensor(mixtures.RING8.centres, dtype=torch.float32)
    if role == "mode_centres":
        return centres
    if role == "mode_std":
        return 0.02
    if role.endswith("_probs"):
        return torch.softmax(torch.randn(n, 5, generator=g), 1)
    if role.endswith("_pixels"):
        return torch.rand(n, 1, 3, 3, generator=g) * 2 - 1
    if role == "generated_digits":
        return torch.randint(0, 10, (n, 3), generator=g)
    if metric == "mode_count":  # near the ring's centres
        return centres[torch.arange(n) % 8] + 0.01 * torch.randn(n, 2, generator=g)
    return torch.randn(n, 1, generator=g)  # one dimension: FID has more samples than that


# the set of samples behind each role (mode_centres and mode_std are not samples)
SET_OF = {
    **dict.fromkeys(
        ("generated", "generated_probs", "generated_pixels", "generated_digits"), "generated"
    ),
    **dict.fromkeys(("train", "train_probs", "train_pixels"), "train"),
    "test": "test",
}


def inputs(metric: str, sizes: dict[str, int]) -> dict[str, Any]:
    """Every role of ``metric``, each set (generated, test, train) of its given size."""
    g = torch.Generator().manual_seed(0)
    needs = M.METRICS.get(metric).needs
    return {r: role_array(r, sizes.get(SET_OF.get(r, ""), 0), metric, g) for r in needs}


def sets_of(metric: str) -> list[str]:
    return [SET_OF[r] for r in M.METRICS.get(metric).needs if r in SET_OF]


def test_every_metric_has_a_stated_minimum() -> None:
    assert sorted(M.METRICS.names()) == sorted(LEAST)
    assert {r: ROLE_SOURCES.get(r).of for r in SET_OF} == SET_OF
    assert all(ROLE_SOURCES.get(r).of is None for r in ("mode_centres", "mode_std"))


@pytest.mark.parametrize("name", sorted(LEAST))
def test_each_metric_computes_at_its_minimum_and_refuses_below(name: str) -> None:
    least, metric = LEAST[name], M.METRICS.get(name)
    at_least = dict.fromkeys(sets_of(name), least)
    numbers = metric(inputs(name, at_least))
    assert numbers and all(isinstance(v, float | int) for v in numbers.values())
    for short in at_least:  # one set at a time one sample short
        with pytest.raises(UsageError, match=f"at least {least}") as info:
            metric(inputs(name, {**at_least, short: least - 1}))
        assert "\n" not in str(info.value)
    assert metric.minimum.samples == least and metric.minimum.why


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: M.inception_score(np.full((n, 2), 0.5), splits=3), "at least 6"),
        (lambda n: M.precision_recall(np.arange(2.0 * n).reshape(n, 2), np.ones((9, 2)), k=2),
         "at least 3"),
        (lambda n: M.density_coverage(np.arange(2.0 * n).reshape(n, 2), np.ones((9, 2)), k=4),
         "at least 5"),
        (lambda n: M.birthday_duplicates(np.arange(1.0 * n)[:, None], 12, threshold=0.5),
         "at least 24"),
        (lambda n: M.mode_count(np.zeros((n, 2)), mixtures.GRID25.centres, 0.05),
         "at least 25"),
    ],
)  # fmt: skip
def test_minima_follow_the_functions_parameters(
    call: Callable[[int], object], message: str
) -> None:
    least = int(message.split()[-1])
    call(least)
    with pytest.raises(UsageError, match=message):
        call(least - 1)


def test_birthday_batches_hold_at_least_ten() -> None:
    with pytest.raises(UsageError, match="batch_size must be an integer >= 10"):
        M.birthday_duplicates(np.arange(100.0)[:, None], 2, threshold=0.5)


def test_fid_warns_when_the_covariance_is_singular() -> None:
    g = np.random.default_rng(0)
    with pytest.warns(RuntimeWarning, match="singular"):
        M.fid(g.normal(size=(8, 8)), g.normal(size=(50, 8)))


def _sources(reference: str, n: int) -> Sources:
    ref = load_reference(reference)
    generated = ref.test.images[:n]
    return Sources(generated, ref, "pixels", EmbedSettings(progress=False), 10_000)


REFERENCES = {"digit_modes": "digits1000", "mode_count": "ring8"}  # others: digits images


@pytest.mark.parametrize("name", sorted(LEAST))
def test_evaluate_skips_a_metric_below_its_minimum(name: str) -> None:
    reference, least = REFERENCES.get(name, "digits"), LEAST[name]
    names, _ = select_metrics("all")
    try:
        _, skipped = plan_metrics(names, False, _sources(reference, least - 1))
        reason = skipped[name]
    except UsageError as e:  # one sample: every metric is skipped, the first reason given
        assert least == 2 and "none of the metrics" in str(e)
        reason = str(e)
    assert f"at least {least} generated samples" in reason and "draw more with --n" in reason
    runnable, skipped = plan_metrics(names, False, _sources(reference, least))
    assert name in runnable and name not in skipped


def test_training_evaluation_names_its_own_option() -> None:
    with pytest.raises(UsageError, match=r"inception_score.*at least 20.*--eval-n"):
        TrainingEvaluator("digits", "inception_score", 10, torch.device("cpu"))


def test_evaluate_command_on_three_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three points: what needs more is skipped with its reason, the rest computed;
    naming a skipped metric is a one-line error (exit 2) that writes nothing."""
    three = tmp_path / "three.npz"
    np.savez(three, images=np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32))
    out = tmp_path / "e.json"
    assert main(["evaluate", str(three), "--reference", "ring8", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    for name in ("kid", "mmd", "precision_recall", "density_coverage", "birthday", "mode_count"):
        assert f"skipped {name}: it needs at least {LEAST[name]} generated samples" in printed
    for name in ("ddm", "ddm_relative", "fid", "parzen", "nearest_neighbour"):
        assert f"\n{name} " in printed  # a row of the table
    out.unlink()
    assert main(["evaluate", str(three), "--reference", "ring8", "--metrics", "kid",
                 "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metric kid cannot be computed here" in err[0]
    assert "at least 4 generated samples" in err[0] and "got 3" in err[0]
    assert not out.exists()


def test_a_small_reference_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "ref.npz"
    np.savez(ref, images=np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32))
    gen = tmp_path / "gen.npz"
    np.savez(gen, images=np.random.default_rng(2).normal(size=(50, 2)).astype(np.float32))
    assert main(["evaluate", str(gen), "--reference", str(ref), "--out",
                 str(tmp_path / "e.json"), "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "skipped kid: it needs at least 4 test samples" in printed
    assert "use a larger reference" in printed
    assert math.isfinite(float(printed.split("\nddm ")[1].split()[0]))
