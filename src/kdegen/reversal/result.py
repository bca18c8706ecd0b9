"""What a reversal returns and keeps between calls: codes, losses, step state, candidates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from kdegen.nets.modes import frozen
from kdegen.priors import Prior


@dataclass
class StepState:
    """Per-code state of the normalized rule, kept between calls by the code bank.

    Attributes:
        length: (N,) step length eta_i of each code.
        direction: (N, k) each code's last gradient direction (zeros: none yet).
    """

    length: Tensor
    direction: Tensor

    @staticmethod
    def fresh(n: int, k: int, length: float, device: torch.device) -> StepState:
        return StepState(
            torch.full((n,), float(length), device=device), torch.zeros(n, k, device=device)
        )


@dataclass
class Candidates:
    """Codes a reversal may restart from, with the generator's outputs for them.

    The outputs may be a few generator updates old: the code bank draws a pool once per
    KDE refit rather than paying a generator pass at every refresh.

    Attributes:
        codes: (P, k).
        outputs: (P, *shape), the generator's outputs for ``codes`` in eval mode.
    """

    codes: Tensor
    outputs: Tensor

    @staticmethod
    def of(generator: nn.Module, codes: Tensor) -> Candidates:
        """``codes`` and the generator's outputs for them now."""
        with torch.no_grad(), frozen(generator):
            return Candidates(codes, generator(codes))

    @staticmethod
    def draw(
        generator: nn.Module, prior: Prior, n: int, rng: torch.Generator | None = None
    ) -> Candidates:
        """``n`` draws of ``prior`` and the generator's outputs for them."""
        return Candidates.of(generator, prior.sample(n, rng))


@dataclass
class Reversal:
    """What :func:`invert` found.

    Attributes:
        codes: (N, k) recovered codes.
        reconstructions: (N, *shape) = generator(codes), or None with reconstruct=False.
        losses: mean reconstruction loss after each step (length ``steps_taken``); with the
            normalized rule, of the codes accepted so far (it never rises).
        mmd: MMD^2 between real and reference codes after each step (stop="mmd").
        p_values: permutation p-values after each step (stop="mmd" with a level).
        bandwidths: the MMD kernel width used at each step (stop="mmd").
        steps_taken: gradient steps performed.
        example_loss: (N,) per-example loss of the returned codes (with reconstruct=False:
            of the last codes evaluated, which saves a forward pass).
        start_loss: (N,) per-example loss of the starting codes.
        start_information: mean loss of each start code against its own example divided by
            the mean against another example's (1: the codes say nothing of their examples).
        stopped_by: "steps", "loss" or "mmd".
        reference_codes: (M, k) codes of the reference batch (stop="mmd"), else None.
        resets: codes put back to their start because their loss was not finite.
        restarts: codes that restarted from one of the ``candidates``.
        state: the normalized rule's step lengths and directions after the call.
    """

    codes: Tensor
    reconstructions: Tensor | None
    losses: list[float] = field(default_factory=list)
    mmd: list[float] = field(default_factory=list)
    p_values: list[float] = field(default_factory=list)
    bandwidths: list[float] = field(default_factory=list)
    steps_taken: int = 0
    example_loss: Tensor | None = None
    start_loss: Tensor | None = None
    start_information: float = math.nan
    stopped_by: str = "steps"
    reference_codes: Tensor | None = None
    resets: int = 0
    restarts: int = 0
    state: StepState | None = None
