"""The reversal's options: one :class:`ReversalConfig` for ``invert``, the latent commands
and KDE-GAN's code bank, with its losses."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from kdegen import kernels
from kdegen.config import Config, FieldError, option

Optimizer = Literal["normalized", "adam", "sgd"]
Init = Literal["prior", "normal", "zeros"]
Stop = Literal["steps", "loss", "mmd"]
Loss = Literal["l2", "l1"]

PAPER_MMD_BANDWIDTH = 1.0 / math.sqrt(2e-4)
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    # per example, summed over pixels, shape (B,): l(z) = 1/2 ||G(z) - x||^2 (Proposition 1)
    "l2": lambda out, x: 0.5 * (out - x).pow(2).flatten(1).sum(1),
    "l1": lambda out, x: (out - x).abs().flatten(1).sum(1),
}
# the same losses between every example (N) and every output (P), shape (N, P)
PAIRWISE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "l2": lambda out, x: 0.5 * kernels.sq_dists(x.flatten(1), out.flatten(1)),
    "l1": lambda out, x: torch.cdist(x.flatten(1), out.flatten(1), p=1),
}


@dataclass(frozen=True)
class ReversalConfig(Config):
    """How Algorithm 1 recovers codes: steps, step rule, starting codes, loss, stop rule."""

    steps: int = option(200, "gradient steps, or the cap of the loss and mmd rules", ge=0)
    lr: float = option(0.2, "step size (normalized: each code's first step length)", gt=0)
    optimizer: Optimizer = option("normalized", "step rule (normalized: per-code step length)")
    init: Init = option("prior", "initial codes: prior draws, normal (--init-std) or zeros")
    init_std: float = option(1e-4, "std of normal initial codes (the appendix: 1e-4)", gt=0)
    loss: Loss = option("l2", "per-example loss: l2 (1/2 ||G(z) - x||^2) or l1")
    l2: float = option(0.0, "weight lambda of lambda/2 ||z||^2 added to each code's loss", ge=0)
    stop: Stop = option("steps", "stop rule: steps, loss (mean below tol) or mmd (Claim 4)")
    tol: float = option(
        1e-4, "loss threshold, or MMD^2 threshold of the mmd rule without a level", finite=False
    )
    level: float | None = option(
        None, "mmd rule: stop when a permutation test rejects at this level", gt=0, lt=1
    )
    mmd_bandwidth: float | None = option(
        None, "kernel width h of the mmd rule (none: median heuristic each step)", gt=0
    )
    permutations: int = option(100, "permutations of the mmd rule's test", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if math.isnan(self.tol):
            raise FieldError("tol", "is NaN; give a number")
