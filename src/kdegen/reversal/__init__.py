"""Generator reversal: codes z with G(z) ~ x by gradient descent on z.

Generator Reversal (Kilcher, Lucchi, Hofmann), Algorithm 1, with its three termination
rules: a fixed number of steps, a loss threshold, and Claim 4's two-sample rule.

Step rules. Algorithm 1 is plain gradient descent z <- z - eta grad (``"sgd"``; the
appendix uses eta = 1). On kdegen's generators no fixed eta serves: the gradient of
1/2 ||G(z) - x||^2 spans orders of magnitude across examples and over training, so one
eta crawls for some codes and throws others out of range. The default rule
(``"normalized"``) takes a step of its own length eta_i along each code's gradient
direction, z_i <- z_i - eta_i g_i / ||g_i||, and adapts eta_i per code: x1.2 while
consecutive gradients point the same way (positive inner product), x0.5 when they turn
back (an overshoot). Within one call a step that raised a code's loss is undone and its
eta_i halved, so on a fixed generator each code's loss, and their mean, never rises.
``"adam"`` is also offered. A code whose loss becomes NaN or infinite is put back where
the call started it and counted in :attr:`Reversal.resets`; it is never returned.
``l2`` adds lambda/2 ||z||^2, the regulariser the paper's Proposition 1 suggests
(locally strongly convex; the MAP code under an N(0, I) prior).

Claim 4's rule reverses the real batch and a batch that G generates from the
distribution that currently drives it (``prior``: the KDE, in KDE-GAN) side by side,
from the same kind of starting codes, and stops once the two code sets can be told
apart: a permutation test of the unbiased MMD^2 (Eq. 3) rejecting at ``level``, or,
without a level, MMD^2 above ``tol``. The kernel width is chosen from the codes
themselves (median heuristic: the median distance between pooled codes, recomputed
each step) unless ``mmd_bandwidth`` fixes it. The appendix's "kernel bandwidth 0.0001"
cannot be a width h of exp(-||a - b||^2 / (2 h^2)): every kernel value between two
distinct codes would vanish and the rule never fire; read as gamma of
exp(-gamma ||a - b||^2) it is h = 70.7 (:data:`PAPER_MMD_BANDWIDTH`), a constant that is
far wider than codes of any scale kdegen sees, so that MMD^2 stays near 0 whatever the
codes are. A width measured on the codes asks the question Claim 4 asks.
"""

from __future__ import annotations

import typing
import weakref

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.nets.modes import frozen
from kdegen.priors import Normal, Prior
from kdegen.reversal.config import (
    LOSSES,
    PAIRWISE,
    PAPER_MMD_BANDWIDTH,
    Init,
    Loss,
    Optimizer,
    ReversalConfig,
    Stop,
)
from kdegen.reversal.descent import Problem, descend, stop_rule
from kdegen.reversal.result import Candidates, Reversal, StepState

__all__ = [
    "LOSSES",
    "PAIRWISE",
    "PAPER_MMD_BANDWIDTH",
    "Candidates",
    "Init",
    "Loss",
    "Optimizer",
    "Reversal",
    "ReversalConfig",
    "StepState",
    "Stop",
    "check_data_shape",
    "initial_codes",
    "invert",
    "latent_dim",
]


def latent_dim(generator: nn.Module) -> int:
    """The generator's latent dimension (its ``latent`` attribute)."""
    k = getattr(generator, "latent", None)
    if not isinstance(k, int):
        raise UsageError("the generator has no `latent` attribute; pass init_codes of shape (N, k)")
    return k


def initial_codes(
    n: int,
    k: int,
    init: str,
    init_std: float,
    prior: Prior | None,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Starting codes: prior samples ("prior"), init_std * N(0, I) ("normal") or zeros."""
    if init == "zeros":
        return torch.zeros(n, k, device=device)
    if init == "prior":
        return (prior or Normal(k, device=device)).sample(n, generator).to(device)
    if init == "normal":
        gen_device = generator.device if generator is not None else device
        return (init_std * torch.randn(n, k, generator=generator, device=gen_device)).to(device)
    raise UsageError(f"unknown init {init!r}; choose one of: {', '.join(typing.get_args(Init))}")


# output shape of each generator seen, so repeated reversals skip the trial forward pass
_OUTPUT_SHAPES: weakref.WeakKeyDictionary[nn.Module, tuple[int, ...]] = weakref.WeakKeyDictionary()


def check_data_shape(generator: nn.Module, x: Tensor, z: Tensor | None = None) -> None:
    """Fail with a clear message unless ``generator`` makes data shaped like ``x``.

    ``z`` is a code batch to try (default: one zero code of the generator's latent size).
    """
    out_shape = _OUTPUT_SHAPES.get(generator)
    if out_shape is None:
        if z is None:
            device = next(generator.parameters()).device
            z = torch.zeros(1, latent_dim(generator), device=device)
        with torch.no_grad(), frozen(generator):
            out_shape = tuple(generator(z[:1]).shape[1:])
        _OUTPUT_SHAPES[generator] = out_shape
    if tuple(x.shape[1:]) != out_shape:
        raise UsageError(
            f"data of shape {tuple(x.shape[1:])} cannot be reversed: the generator makes "
            f"{out_shape}; give data of the generator's shape"
        )


def invert(
    generator: nn.Module,
    x: Tensor,
    config: ReversalConfig = ReversalConfig(),  # noqa: B008 (frozen, never mutated)
    *,
    reference: Tensor | None = None,
    prior: Prior | None = None,
    init_codes: Tensor | None = None,
    rng: torch.Generator | None = None,
    reconstruct: bool = True,
    state: StepState | None = None,
    candidates: Candidates | Tensor | None = None,
) -> Reversal:
    """Recover codes z with generator(z) ~ x by gradient descent on z (Algorithm 1).

    Args:
        generator: maps codes (B, k) to data (B, *shape); its parameters and mode are
            left exactly as they were, and it runs in eval mode meanwhile.
        x: data (N, *shape) to reverse.
        config: steps, step rule, starting codes, loss and stop rule
            (:class:`ReversalConfig`; each code's gradient comes from its own example).
        reference: generated data reversed alongside for stop="mmd" (default: ``N`` samples
            of generator(prior)).
        prior: the distribution driving the generator (default N(0, I)), for init="prior"
            and the default reference.
        init_codes: (N, k) codes to start from instead (a warm start).
        rng: random generator for initial codes and the default reference.
        reconstruct: evaluate the final codes once more for ``reconstructions`` and
            ``example_loss`` (False: skip that forward pass, as the code bank does; the
            normalized rule then returns its last, unchecked step).
        state: step lengths and directions of the normalized rule to continue from
            (default: ``config.lr`` and none); the updated state is in the result.
        candidates: codes (P, k) tried once at the start, or :class:`Candidates` with the
            generator's outputs for them: a code whose objective is above the best of
            them restarts from it (a global move that local descent cannot make; the code
            bank passes a pool of prior draws).

    Returns:
        A :class:`Reversal`.

    Raises:
        UsageError: data of another shape, or starting codes, state or candidates that do
            not fit it.
    """
    c = config
    device = x.device
    k = init_codes.shape[1] if init_codes is not None else latent_dim(generator)
    with frozen(generator):
        if init_codes is not None:
            z = init_codes.detach().clone()
        else:
            z = initial_codes(len(x), k, c.init, c.init_std, prior, device, rng)
        if z.shape != (len(x), k):
            raise UsageError(f"init_codes must have shape ({len(x)}, {k}), got {tuple(z.shape)}")
        check_data_shape(generator, x, z)
        targets = x
        if c.stop == "mmd":
            ref = reference
            if ref is None:
                ref = _generate(generator, prior or Normal(k, device=device), len(x), rng)
            check_data_shape(generator, ref, z)
            z = torch.cat([z, initial_codes(len(ref), k, c.init, c.init_std, prior, device, rng)])
            targets = torch.cat([x, ref.to(x.dtype)])
        full = StepState.fresh(len(z), k, c.lr, device)
        if state is not None:  # continue the data's codes' step lengths (the bank's)
            if state.length.shape != (len(x),) or state.direction.shape != (len(x), k):
                raise UsageError(f"the step state must describe {len(x)} codes of dimension {k}")
            full.length[: len(x)], full.direction[: len(x)] = state.length, state.direction
        problem = Problem(generator, targets, len(x), c.loss, c.l2)
        if isinstance(candidates, Tensor):
            if candidates.dim() != 2 or candidates.shape[1] != k:
                raise UsageError(
                    f"candidates must have shape (P, {k}), got {tuple(candidates.shape)}"
                )
            candidates = Candidates.of(generator, candidates)
        return descend(problem, z, c, full, stop_rule(c), reconstruct, candidates)


def _generate(generator: nn.Module, prior: Prior, n: int, rng: torch.Generator | None) -> Tensor:
    with torch.no_grad():
        return generator(prior.sample(n, rng))
