"""The code bank: reversed codes of a fixed subset of the training set, kept fresh in rotation.

Generator Reversal, Algorithm 2, estimates P_z every iteration by reversing data through
the current generator. Reversing from scratch each time costs tens of generator passes
per iteration (the appendix: 5, 20, 50 steps cost 1.9x, 4.9x, 9.8x a plain iteration).
The bank keeps one code for each of its M members and continues a member's reversal
where its last refresh stopped (a warm start, with the normalized rule's step lengths),
so the work of every iteration accumulates. Each iteration refreshes the next R members
of a shuffled rotation, so every code was refreshed within the last ceil(M / R)
iterations: a smaller bank holds fresher codes (see :mod:`kdegen.methods.kdegan` for
the sizes measured). A bank of every training example and no warm start is the
paper's own scheme.
"""

from __future__ import annotations

import math
import typing
from typing import Any

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.reversal import Init, Reversal, ReversalConfig, StepState, initial_codes, invert


class CodeBank:
    """One code per member example, refreshed a few members at a time.

    Args:
        members: the members' positions in the training set (M,), or a count N (all of
            0..N-1).
        dim: latent dimension k.
        init: how codes start: "prior" (N(0, I) draws, usable as codes at once),
            "normal" (init_std * N(0, I)) or "zeros" (both used only once refreshed).
        init_std: scale of "normal" initial codes.
        seed: seed of the initial codes and of the rotation.
        device: where the codes live.
        step_length: first step length of the normalized reversal rule.
    """

    def __init__(
        self,
        members: Tensor | int,
        dim: int,
        init: str = "prior",
        init_std: float = 1e-4,
        seed: int = 0,
        device: str | torch.device = "cpu",
        step_length: float = 0.2,
    ) -> None:
        ids = torch.arange(members) if isinstance(members, int) else members.long().cpu()
        if ids.dim() != 1 or len(ids) < 1 or dim < 1:
            raise UsageError(
                f"a code bank needs at least one member and dim >= 1, got "
                f"{tuple(ids.shape)} members of dim {dim}"
            )
        if init not in typing.get_args(Init):
            choices = ", ".join(typing.get_args(Init))
            raise UsageError(f"unknown init {init!r}; choose one of: {choices}")
        dev = torch.device(device)
        self.rng = torch.Generator().manual_seed(seed)
        m = len(ids)
        self.members = ids.to(dev)
        self.codes = initial_codes(m, dim, init, init_std, None, torch.device("cpu"), self.rng)
        self.codes = self.codes.to(dev)
        self.initial_usable = init == "prior"  # prior draws are codes; tiny or zero ones not
        self.state = StepState.fresh(m, dim, step_length, dev)
        self.refreshed = torch.full((m,), -1, dtype=torch.long, device=dev)  # -1: never
        self.visits = torch.zeros(m, dtype=torch.long, device=dev)
        self.steps = torch.zeros(m, dtype=torch.long, device=dev)
        self.loss = torch.full((m,), math.nan, device=dev)
        self.order = torch.randperm(m, generator=self.rng)
        self.position = 0

    @classmethod
    def subset(cls, n: int, size: int, dim: int, seed: int = 0, **kwargs: Any) -> CodeBank:
        """A bank of ``size`` training examples out of ``n`` drawn with ``seed`` (0: all)."""
        if size < 0:
            raise UsageError(f"the bank size must be >= 0 (0: every example), got {size}")
        if size == 0 or size >= n:
            return cls(n, dim, seed=seed, **kwargs)
        chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]
        return cls(chosen.sort().values, dim, seed=seed, **kwargs)

    def __len__(self) -> int:
        return len(self.members)

    def next_slots(self, r: int) -> Tensor:
        """The next ``r`` members of the rotation (slots into the bank, (r,), on the CPU).

        A rotation visits every member once in a shuffled order, then reshuffles."""
        r = min(r, len(self))
        taken = self.order[self.position : self.position + r]
        self.position += len(taken)
        if len(taken) < r:  # a new rotation; the members just taken come last in it
            perm = torch.randperm(len(self), generator=self.rng)
            seen = torch.isin(perm, taken)
            self.order = torch.cat([perm[~seen], perm[seen]])
            self.position = r - len(taken)
            taken = torch.cat([taken, self.order[: self.position]])
        return taken

    def reverse(
        self,
        generator: nn.Module,
        images: Tensor,
        slots: Tensor,
        config: ReversalConfig,
        warm_start: bool = True,
        **invert_kwargs: Any,
    ) -> Reversal:
        """Continue (or, without ``warm_start``, restart) the reversal of members ``slots``.

        ``images`` is the whole training set; ``config`` and the keyword arguments
        (``prior``, ``candidates``) go to :func:`kdegen.reversal.invert`. Nothing is
        stored: see :meth:`store`.
        """
        slots = slots.to(self.members.device)
        x = images[self.members[slots].to(images.device)]
        if not warm_start:
            return invert(generator, x, config, reconstruct=False, **invert_kwargs)
        state = StepState(self.state.length[slots], self.state.direction[slots])
        codes = self.codes[slots]
        return invert(
            generator, x, config, init_codes=codes, state=state, reconstruct=False, **invert_kwargs
        )

    def store(self, slots: Tensor, result: Reversal, iteration: int) -> None:
        """Write what a reversal of members ``slots`` found (e.g. gathered from another
        process) and mark them refreshed at ``iteration``."""
        slots = slots.to(self.members.device)
        self.codes[slots] = result.codes.to(self.codes)
        if result.state is not None:
            self.state.length[slots] = result.state.length.to(self.state.length)
            self.state.direction[slots] = result.state.direction.to(self.state.direction)
        self.refreshed[slots] = iteration
        self.visits[slots] += 1
        self.steps[slots] += result.steps_taken
        if result.example_loss is not None:
            self.loss[slots] = result.example_loss.to(self.loss)

    def usable(self, window: int = 0, iteration: int = 0) -> Tensor:
        """Slots whose codes a KDE may use: refreshed in the ``window`` iterations up to and
        including ``iteration`` (0: any time, and never-refreshed prior draws too)."""
        if window > 0:
            mask = (self.refreshed >= 0) & (self.refreshed > iteration - window)
        elif self.initial_usable:
            mask = torch.ones_like(self.refreshed, dtype=torch.bool)
        else:
            mask = self.refreshed >= 0
        return torch.nonzero(mask).squeeze(1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "codes": self.codes,
            "step_length": self.state.length,
            "direction": self.state.direction,
            "refreshed": self.refreshed,
            "visits": self.visits,
            "steps": self.steps,
            "loss": self.loss,
            "order": self.order,
            "position": self.position,
            "rng": self.rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["codes"].shape != self.codes.shape or not torch.equal(
            state["members"].cpu(), self.members.cpu()
        ):
            raise UsageError(
                f"code bank of shape {tuple(state['codes'].shape)} does not fit this one "
                f"{tuple(self.codes.shape)} (other members or latent size)"
            )
        self.codes.copy_(state["codes"])
        self.state.length.copy_(state["step_length"])
        self.state.direction.copy_(state["direction"])
        for name in ("refreshed", "visits", "steps", "loss"):
            getattr(self, name).copy_(state[name])
        self.order = state["order"].clone()
        self.position = int(state["position"])
        self.rng.set_state(state["rng"])
