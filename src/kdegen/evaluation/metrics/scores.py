"""Inception Score (Salimans et al. 2016) and Mode Score (Che et al. 2017).

Both read a classifier's class probabilities p(y|x) of generated samples (GAN
tutorial, "GAN Evaluation"; Basart's thesis Sec. 3.1.2):

    IS = exp( E_x KL(p(y|x) || p(y)) ),   p(y) = E_x p(y|x),

computed as in Salimans et al. and torch-fidelity: the samples are cut into ``splits``
consecutive parts, IS is computed on each with that part's marginal, and the mean and
(population, ddof=0) standard deviation over the parts are reported. One-hot
predictions spread evenly over k classes score k; a constant prediction scores 1.

Sizes. A part of m samples scores at most m (its marginal is the mean of m rows), and a
part of one sample exactly 1 whatever the model: each part must hold at least 2 samples,
20 for the 10 parts ``kdegen evaluate`` uses (torch-fidelity's default, there on 50,000
samples). For the same reason the Mode Score needs 2 samples.

Mode Score, with p*(y) the label marginal of the training data:

    MS = exp( E_x KL(p(y|x) || p*(y)) - KL(p(y) || p*(y)) ).

Note that with p(y) the marginal of the same samples the p* terms cancel exactly,
E_x KL(p(y|x) || p*) - KL(p(y) || p*) = H(p(y)) - E_x H(p(y|x)) = log IS (one split),
so MS as defined equals the Inception Score. The result therefore also reports the
term KL(p(y) || p*(y)) on its own: that is the part that sees the training labels
(0 when the generated class balance matches the training one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from kdegen.errors import UsageError
from kdegen.evaluation.metrics.inputs import Array, Minimum, as_probabilities, at_least
from kdegen.evaluation.metrics.registry import Inputs, register_metric

SPLITS = 10  # parts of the Inception Score in `kdegen evaluate`, as torch-fidelity
PER_SPLIT = 2  # a part of one sample scores exactly 1
MODE_SCORE_MINIMUM = Minimum(2, "one sample scores exactly 1")


def is_minimum(splits: int) -> Minimum:
    """The Inception Score's least sample size: 2 for each of ``splits`` parts."""
    return Minimum(PER_SPLIT * splits, f"2 per split for {splits} splits; one scores exactly 1")


@dataclass(frozen=True)
class InceptionScore:
    """Mean and standard deviation (ddof=0) of the score over the splits."""

    mean: float
    std: float
    splits: int


@dataclass(frozen=True)
class ModeScore:
    """Mode Score with its two terms (nats).

    Attributes:
        score: exp(expected_kl - marginal_kl).
        expected_kl: E_x KL(p(y|x) || p*(y)) (inf where p* misses a generated class).
        marginal_kl: KL(p(y) || p*(y)) of the generated vs the training label marginal.
    """

    score: float
    expected_kl: float
    marginal_kl: float


def _kl_rows(p: Tensor, q: Tensor) -> Tensor:
    """KL(p_i || q_i) per row, 0 log 0 = 0, float64."""
    return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(-1)


def inception_score(probs: Array, splits: int = SPLITS) -> InceptionScore:
    """Inception Score of class probabilities (n, classes).

    Args:
        probs: p(y|x) rows (non-negative, summing to 1), e.g. Inception softmax outputs;
            at least 2 per split (see the module docstring).
        splits: consecutive parts the samples are cut into (shuffle first if sorted), at
            rows i n // splits as torch-fidelity does, so that both agree for any n.

    Returns:
        Mean and std over the parts.
    """
    splits = at_least(splits, 1, "splits")
    p = as_probabilities(probs, "probs")
    is_minimum(splits).check("inception_score", {"probs": p})
    scores = []
    n = p.shape[0]
    for i in range(splits):  # torch-fidelity's parts: rows i n // splits to (i + 1) n // splits
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(0, keepdim=True)  # (1, classes)
        scores.append(math.exp(float(_kl_rows(part, marginal).mean())))
    s = torch.tensor(scores, dtype=torch.float64)
    return InceptionScore(float(s.mean()), float(s.std(correction=0)), splits)


def mode_score(probs: Array, train_probs: Array) -> ModeScore:
    """Mode Score of generated class probabilities against the training label marginal.

    Args:
        probs: p(y|x) of generated samples (n, classes), n >= 2.
        train_probs: p(y|x) of training samples (m, classes), m >= 2; their mean is p*(y).

    Returns:
        The score and its two KL terms (see the module docstring: score equals IS).
    """
    p = as_probabilities(probs, "probs")
    q = as_probabilities(train_probs, "train_probs")
    MODE_SCORE_MINIMUM.check("mode_score", {"probs": p, "train_probs": q})
    if p.shape[1] != q.shape[1]:
        raise UsageError(
            f"probs has {p.shape[1]} classes but train_probs has {q.shape[1]}; "
            "use the same classifier for both"
        )
    target = q.mean(0, keepdim=True)  # p*(y), (1, classes)
    marginal = p.mean(0, keepdim=True)  # p(y)
    expected_kl = float(_kl_rows(p, target).mean())
    marginal_kl = float(_kl_rows(marginal, target)[0])
    # the difference, evaluated without the p* terms that cancel (finite even if p* has zeros)
    log_score = float(_kl_rows(p, marginal).mean())
    return ModeScore(math.exp(log_score), expected_kl, marginal_kl)


@register_metric(
    "inception_score",
    ("generated_probs",),
    f"Inception Score (mean, std, {SPLITS} splits)",
    is_minimum(SPLITS),
)
def _inception_metric(inputs: Inputs) -> dict[str, float]:
    r = inception_score(inputs["generated_probs"], splits=SPLITS)
    return {"mean": r.mean, "std": r.std}


@register_metric(
    "mode_score",
    ("generated_probs", "train_probs"),
    "Mode Score and label-marginal KL",
    MODE_SCORE_MINIMUM,
)
def _mode_score_metric(inputs: Inputs) -> dict[str, float]:
    r = mode_score(inputs["generated_probs"], inputs["train_probs"])
    return {"score": r.score, "marginal_kl": r.marginal_kl}
