"""Missing modes (thesis Sec. 3.4.5, Fig. 3.7): the DDM keeps improving, the IS saturates.

A "generator" that learned only n modes is simulated by n distinct training images, each
repeated until the set is as large as the training set (n in {10, 20, 100, 1000, 4000}
on mnist5k; 4,000 is the whole training set). Each set is scored against the test split
by the Distribution Divergence Measure (Eq. 3.4) on the classifier's logits and by the
Inception Score of the classifier's probabilities, averaged over repeats with fresh
draws (5 as in the thesis; 2 when quick). The Inception Score only asks for confident
and varied classes, which a handful of images per class already gives; the DDM compares
with held-out data and keeps rewarding more distinct images.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from kdegen.evaluation.metrics import ddm, inception_score
from kdegen.experiments.base import (
    Outcome,
    Settings,
    embed_all,
    experiment,
    is_monotone,
    new_figure,
    reference_classifier,
    write_outputs,
)

SIZES = (10, 20, 100, 1000, 4000)
REPEATS = {False: 5, True: 2}
SATURATED = 0.95  # the IS has saturated once within 5% of its value on the most images


def _scores(train: Any, test_features: torch.Tensor, n: int, seed: int) -> tuple[float, float]:
    """(DDM nats, IS) of n distinct training images repeated to the training-set size."""
    total = len(train.features)
    g = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(total, generator=g)[:n]
    idx = chosen[torch.arange(total) % n]  # every chosen image about total / n times
    d = ddm(test_features, train.features[idx]).nats
    score = inception_score(train.probs[idx][torch.randperm(total, generator=g)]).mean
    return d, score


def _summary(rows: list[dict[str, Any]], test_is: float) -> tuple[str, dict[str, Any]]:
    ddms = [r["ddm_nats"] for r in rows]
    scores = [r["inception_score"] for r in rows]
    sat = next(r["n"] for r in rows if r["inception_score"] >= SATURATED * scores[-1])
    after = next(r for r in rows if r["n"] == sat)
    gain = after["ddm_nats"] - ddms[-1]
    findings = {
        "ddm_keeps_improving": is_monotone(ddms, increasing=False) and gain > 0,
        "is_saturates_at": sat,
        "ddm_gain_after_is_saturates_nats": gain,
    }
    text = (
        f"DDM (lower is better) goes {ddms[0]:.3g} -> {ddms[-1]:.3g} nats from n={rows[0]['n']} "
        f"to n={rows[-1]['n']} distinct images"
        f" ({'monotonically' if is_monotone(ddms, False) else 'not monotonically'}); "
        f"the Inception Score is within {100 * (1 - SATURATED):.0f}% of its final "
        f"{scores[-1]:.3g} from n={sat} on (test set: {test_is:.3g}), while the DDM still "
        f"improves by {gain:.3g} nats after that."
    )
    return text, findings


def _plot(rows: list[dict[str, Any]], test_is: float) -> Any:
    fig, (a, b) = new_figure(2)
    ns = [r["n"] for r in rows]
    a.errorbar(ns, [r["ddm_nats"] for r in rows], [r["ddm_spread"] for r in rows], marker="o")
    a.set(xscale="log", xlabel="distinct images n", ylabel="DDM (nats, lower is better)")
    b.errorbar(ns, [r["inception_score"] for r in rows], [r["is_spread"] for r in rows], marker="o")
    b.axhline(test_is, color="tab:orange", ls="--", label="test set")
    b.set(xscale="log", xlabel="distinct images n", ylabel="Inception Score")
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle("Missing modes: n distinct images repeated to the training-set size")
    fig.tight_layout()
    return fig


@experiment("missing-modes", "thesis Fig. 3.7: DDM vs Inception Score on n distinct images")
def missing_modes(settings: Settings) -> Outcome:
    """Score n distinct training images, repeated, against the test split (see the module)."""
    data = settings.data or "mnist5k"
    embedding, ref = reference_classifier(data, settings)
    train, test = embed_all(embedding, ref.train.images), embed_all(embedding, ref.test.images)
    sizes = sorted({min(n, len(train.features)) for n in SIZES})
    rows = []
    for n in sizes:
        runs = [
            _scores(train, test.features, n, settings.seed + r)
            for r in range(REPEATS[settings.quick])
        ]
        d, s = [v[0] for v in runs], [v[1] for v in runs]
        rows.append(
            {
                "n": n,
                "repeat_factor": len(train.features) / n,
                "ddm_nats": statistics.fmean(d),
                "ddm_bits": statistics.fmean(d) / math.log(2),
                "ddm_spread": statistics.pstdev(d),
                "inception_score": statistics.fmean(s),
                "is_spread": statistics.pstdev(s),
            }
        )
    assert test.probs is not None and train.probs is not None
    test_is = inception_score(test.probs).mean
    summary, findings = _summary(rows, test_is)
    meta = {
        "data": data,
        "repeats": REPEATS[settings.quick],
        "test_inception_score": test_is,
        "embedding": embedding.describe(),
        **findings,
    }
    files = write_outputs(
        settings, "Missing modes (thesis Fig. 3.7)", rows, summary, meta, _plot(rows, test_is)
    )
    return Outcome(rows, summary, files)
