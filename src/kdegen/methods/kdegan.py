"""KDE-GAN: GAN training driven by a kernel density estimate of the data's own codes.

Generator Reversal, Algorithm 2: every iteration reverses the real minibatch through the
current generator (Algorithm 1), estimates the latent distribution P_z of the data by a
KDE over the recovered codes (Sec. 3.2, optionally mixed with N(0, I)), and draws the
noise of both the discriminator and the generator updates from it.

kdegen keeps the codes in a :class:`kdegen.reversal.CodeBank`, one per training example,
and by default continues each example's reversal from its stored code for a step or two
per visit (``warm_start``), so the reversal work accumulates across epochs instead of
being redone from scratch; ``--no-warm-start --rev-stop mmd`` is the paper's scheme.
Until enough codes exist the noise comes from the plain prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from kdegen import distributed
from kdegen.config import option
from kdegen.errors import UsageError
from kdegen.methods.base import METHODS, Batch, DataSpec, Losses
from kdegen.methods.gan import GAN, GANConfig
from kdegen.priors import KDE, Prior, parse_bandwidth
from kdegen.reversal import INITS, PAPER_MMD_BANDWIDTH, STOPS, CodeBank, invert


@dataclass(frozen=True)
class KDEGANConfig(GANConfig):
    """Options of ``kdegan``: those of ``gan`` plus the reversal and the KDE prior."""

    warm_start: bool = option(True, "continue each example's reversal from its stored code")
    rev_steps: int = option(1, "reversal steps per iteration (the cap for loss/mmd stops)")
    rev_stop: str = option("steps", "reversal stop rule: steps, loss or mmd (Claim 4)")
    rev_lr: float = option(1.0, "reversal step size")
    rev_optimizer: str = option("sgd", "reversal optimizer: sgd or adam")
    rev_tol: float = option(1e-4, "loss or MMD^2 threshold of the stop rule")
    rev_level: float = option(0.0, "if > 0, stop when an MMD permutation test rejects at it")
    rev_bandwidth: float = option(PAPER_MMD_BANDWIDTH, "Gaussian kernel width of the MMD rule")
    rev_init: str = option("normal", "initial codes: normal (init std), prior or zeros")
    rev_init_std: float = option(1e-4, "std of the normal initial codes")
    kde_bandwidth: str = option("scott", "KDE bandwidth: a number, scott, silverman or ml")
    background: float = option(0.0, "weight of N(0, I) mixed into the KDE prior")
    refit_every: int = option(10, "refit the KDE every N iterations")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_bandwidth(self.kde_bandwidth)
        if self.rev_stop not in STOPS:
            raise UsageError(f"--rev-stop must be one of {', '.join(STOPS)}, got {self.rev_stop!r}")
        if self.rev_init not in INITS:
            raise UsageError(f"--rev-init must be one of {', '.join(INITS)}, got {self.rev_init!r}")
        if self.rev_optimizer not in ("sgd", "adam"):
            raise UsageError(f"--rev-optimizer must be sgd or adam, got {self.rev_optimizer!r}")
        if self.rev_steps < 0 or self.refit_every < 1:
            raise UsageError("--rev-steps must be >= 0 and --refit-every >= 1")
        if not 0.0 <= self.background <= 1.0:
            raise UsageError(f"--background must lie in [0, 1], got {self.background}")
        if not (0.0 <= self.rev_level < 1.0 and self.rev_lr > 0 and self.rev_bandwidth > 0):
            raise UsageError("--rev-level must lie in [0, 1); --rev-lr, --rev-bandwidth > 0")


@METHODS.register("kdegan")
class KDEGAN(GAN):
    """A GAN whose noise is drawn from a KDE over the reversed codes of the training data."""

    Config = KDEGANConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        **GAN.presets,
        # the paper's scheme: cold start, reverse until the MMD rule fires (cap 50 steps)
        "paper": {"warm_start": False, "rev_stop": "mmd", "rev_steps": 50},
    }

    def __init__(self, config: KDEGANConfig, spec: DataSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.config: KDEGANConfig = self.config  # resolved by GAN.__init__
        if spec.size < 2:
            raise UsageError("kdegan needs a training set of at least 2 examples")
        self.bank = CodeBank(spec.size, self.config.latent, config.rev_init, config.rev_init_std,
                             seed=0, device=device)  # fmt: skip
        self.kde: KDE | None = None
        self._iteration = 0

    def latent_codes(self) -> Tensor:
        return self.bank.visited()

    def prior_for_sampling(self) -> Prior:
        return self.kde or self.prior

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.prior_for_sampling().sample(n, generator)

    def train_step(self, batch: Batch) -> Losses:
        if batch.index is None:
            raise UsageError("kdegan needs the examples' indices in each batch")
        reversal = self.reverse(batch.x, batch.index)
        if self._iteration % self.config.refit_every == 0:
            self.refit()
        self._iteration += 1
        losses = dict(super().train_step(batch))
        losses["rev_loss"] = reversal[0]
        losses["rev_steps"] = reversal[1]
        return losses

    def reverse(self, x: Tensor, index: Tensor) -> tuple[float, float]:
        """Refresh the bank's codes of this batch; returns (mean loss, steps taken)."""
        c = self.config
        kwargs: dict[str, Any] = dict(
            steps=c.rev_steps, lr=c.rev_lr, optimizer=c.rev_optimizer, init=c.rev_init,
            init_std=c.rev_init_std, stop=c.rev_stop, tol=c.rev_tol,
            level=c.rev_level or None, mmd_bandwidth=c.rev_bandwidth, prior=self.prior,
            reconstruct=False,
        )  # fmt: skip
        if c.warm_start:
            kwargs["init_codes"] = self.bank.codes[index]
        r = invert(self.G, x, **kwargs)
        self._store(index, r.codes, r.steps_taken, r.example_loss)
        assert r.example_loss is not None
        return float(r.example_loss.mean()), float(r.steps_taken)

    def _store(self, index: Tensor, codes: Tensor, steps: int, loss: Tensor | None) -> None:
        """Write this process's new codes, and every other process's, into the bank."""
        if distributed.world_size() == 1:
            self.bank.store(index, codes, steps, loss)
            return
        parts = distributed.gather_objects((index.cpu(), codes.cpu(), steps, loss.cpu()
                                            if loss is not None else None))  # fmt: skip
        for idx, z, s, lo in parts:
            self.bank.store(idx.to(self.device), z.to(self.device), s, lo)

    def refit(self) -> None:
        """Fit the KDE prior to the codes of every example reversed so far."""
        codes = self.bank.visited()
        if len(codes) < 2:
            return  # the plain prior drives the generator until codes exist
        c = self.config
        self.kde = KDE(c.kde_bandwidth, c.background).fit(codes)  # visited() made a copy

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"bank": self.bank.state_dict(), "iteration": self._iteration}
        if self.kde is not None and self.kde.codes is not None:
            state["kde_codes"] = self.kde.codes
        return state

    def load_extra_state(self, state: Any) -> None:
        self.bank.load_state_dict(state["bank"])
        self._iteration = int(state["iteration"])
        if "kde_codes" in state:
            c = self.config
            self.kde = KDE(c.kde_bandwidth, c.background).fit(state["kde_codes"].to(self.device))
