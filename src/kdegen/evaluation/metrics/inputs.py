"""Checking the arrays handed to metrics: shapes, sizes, finite values, probabilities.

Every metric accepts torch tensors or NumPy arrays. Mistakes (mismatched feature
dimensions, too few samples, NaN or infinite values, rows that are not probabilities)
raise :class:`kdegen.UsageError` with one line saying what is wrong and what to do.
Each metric declares a :class:`Minimum`: the least number of samples in each set it
reads at which its numbers mean something (below it they are an artefact of the size,
such as an Inception Score of exactly 1 from one sample), and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import torch
from torch import Tensor

from kdegen.errors import UsageError

Array: TypeAlias = Tensor | np.ndarray

PROB_TOLERANCE = 1e-3  # rows of probabilities may sum to 1 +- this (float32 softmax)


@dataclass(frozen=True)
class Minimum:
    """The least number of samples in each set at which a metric is meaningful.

    Attributes:
        samples: that number.
        why: a few words on the reason, shown with the error or the skip.
    """

    samples: int
    why: str

    def check(self, metric: str, sets: Mapping[str, Tensor]) -> None:
        """Raise :class:`UsageError` when a set (name -> (n, ...) array) is smaller."""
        for name, x in sets.items():
            if x.shape[0] < self.samples:
                raise UsageError(
                    f"{metric} needs at least {self.samples} samples per set ({self.why}); "
                    f"{name} has {x.shape[0]}: pass more samples"
                )


def as_features(x: Array, name: str, min_rows: int = 1, dtype: torch.dtype | None = None) -> Tensor:
    """``x`` as a finite floating (n, d) tensor with n >= ``min_rows``.

    Integer and half-precision inputs become float64 / float32; ``dtype`` forces one.
    """
    t = torch.as_tensor(x).detach()
    if t.dim() != 2 or t.shape[1] == 0:
        raise UsageError(
            f"{name} must be a 2-D array (samples x features), got shape {tuple(t.shape)}"
        )
    if t.shape[0] < min_rows:
        raise UsageError(
            f"{name} has {t.shape[0]} samples but this metric needs at least {min_rows}"
        )
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.double()
    elif t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise UsageError(f"{name} contains NaN or infinite values; remove or fix those samples")
    return t


def as_sets(
    arrays: Sequence[Array],
    names: Sequence[str],
    min_rows: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
) -> list[Tensor]:
    """Feature sets checked as by :func:`as_features`, all of one dimension.

    They come back in one dtype (the widest) on the device of the first.
    """
    mins = min_rows if min_rows is not None else [1] * len(arrays)
    sets = [as_features(x, n, m, dtype) for x, n, m in zip(arrays, names, mins, strict=True)]
    for s, n in zip(sets[1:], names[1:], strict=True):
        check_same_dim(sets[0], s, (names[0], n))
    common = sets[0].dtype
    for s in sets[1:]:
        common = torch.promote_types(common, s.dtype)
    return [s.to(device=sets[0].device, dtype=common) for s in sets]


def as_pair(
    a: Array,
    b: Array,
    names: tuple[str, str],
    min_rows: tuple[int, int] = (1, 1),
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Two feature sets as by :func:`as_sets`."""
    ta, tb = as_sets([a, b], names, min_rows, dtype)
    return ta, tb


def check_same_dim(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    """Feature dimensions must agree (both sets embedded by the same network)."""
    if a.shape[1] != b.shape[1]:
        raise UsageError(
            f"feature dimensions differ: {names[0]} has {a.shape[1]}, {names[1]} has "
            f"{b.shape[1]}; embed both with the same network"
        )


def as_probabilities(p: Array, name: str, min_rows: int = 1) -> Tensor:
    """Rows of class probabilities as float64 (n, k), renormalised to sum to 1 exactly.

    Rows must be non-negative and sum to 1 within :data:`PROB_TOLERANCE`.
    """
    t = as_features(p, name, min_rows, torch.float64)
    sums = t.sum(1)
    if bool((t < 0).any()) or bool(((sums - 1).abs() > PROB_TOLERANCE).any()):
        raise UsageError(
            f"{name} rows must be probabilities (non-negative, summing to 1); "
            "pass softmax outputs, not logits"
        )
    return t / sums[:, None]


def positive(value: float, name: str) -> float:
    """``value`` as a finite float > 0."""
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise UsageError(f"{name} must be a positive number, got {value}")
    return v


def at_least(value: int, minimum: int, name: str) -> int:
    """``value`` as an int >= ``minimum``."""
    if int(value) != value or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def mean_and_stderr(terms: Tensor) -> tuple[float, float]:
    """Mean of per-sample terms and its standard error std(ddof=1) / sqrt(n), float64."""
    t = terms.double()
    n = t.numel()
    stderr = float(t.std(correction=1)) / math.sqrt(n) if n > 1 else math.nan
    return float(t.mean()), stderr
