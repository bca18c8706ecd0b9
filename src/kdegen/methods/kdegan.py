"""KDE-GAN: GAN training driven by a kernel density estimate of the data's own codes.

Generator Reversal, Algorithm 2: every iteration reverses real data through the current
generator (Algorithm 1), estimates the latent distribution P_z of the data by a KDE over
the recovered codes (Sec. 3.2, optionally mixed with N(0, I)), and draws the noise of
both the discriminator and the generator updates from it.

kdegen's default is the scheme that measured best (the README's KDE-GAN section gives
the figures): a :class:`kdegen.codebank.CodeBank` of 512 training examples whose codes
start as N(0, I) draws. Each iteration continues the reversal of the next members of a
shuffled rotation (as many as the batch holds) by one normalized step
(:mod:`kdegen.reversal`), after letting each of them restart from the best of a pool of
64 N(0, I) draws (renewed at each refit) when one reconstructs its example better; with
batches of 64 every code
was refreshed within the last 8 iterations. Every 10 iterations the KDE is refitted
over the bank with a bandwidth of 0.3 times the codes' median nearest-neighbour
distance over sqrt(k) (``0.3*nn``, :func:`kdegen.priors.select_bandwidth`), and mixed
with N(0, I)
at weight 0.1 (Sec. 3.2's background: it keeps G trained over the whole prior, so that
a mode G stops making can still be found by the restarts). Why these choices (each is
undone in turn by ``benchmarks/kdegan_ablation.py``; ``docs/kdegan.md`` has its figures):

- a bank refreshed in rotation, not one code per training example: with one step per
  visit the codes of a large training set go stale between visits (ring8: 390
  iterations between refreshes) and carry no information;
- normalized steps: the loss's gradient spans orders of magnitude, so plain steps at
  the appendix's lr 1 either crawl or diverge;
- restarts: in a low-dimensional latent space local descent takes a code to the
  nearest point of its mode's pre-image, at the junction of the regions G gives each
  mode, where KDE samples then fall between modes;
- a bandwidth from nearest-neighbour distances: the rules of thumb assume one Gaussian.
  In 100 dimensions Scott's rule is 0.92 times the codes' spread, so KDE samples do not
  stay near their codes; in 2 it smears the clusters of codes of neighbouring modes
  into each other. The median nearest-neighbour distance follows the codes' local scale.

Watching it: the mean reconstruction loss of each code against its own example over the
loss against another example's (``info_ratio``; 1 means the codes say nothing of the
data, and the "KDE of the data's codes" is a KDE of arbitrary points) is logged with the
KDE's bandwidth and spread. With warm starts it comes free from the reversal's first
pass over the codes it refreshes (the bank's codes as stored, under the current
generator: over a rotation, every code of the bank); with cold starts each refit
measures it on up to 128 of the codes the KDE is fitted on. A warning is given once if
its running mean stays above 0.8 after the first epoch, the first full rotation and
300 iterations (while G changes fast at first the ratio is near 1 in healthy runs too).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from kdegen import distributed
from kdegen.codebank import CodeBank
from kdegen.config import option
from kdegen.errors import UsageError
from kdegen.methods.base import METHODS, Batch, DataSpec, Losses
from kdegen.methods.gan import GAN, GANConfig
from kdegen.nets.modes import frozen
from kdegen.priors import DEFAULT_KDE_BANDWIDTH, KDE, Prior, parse_bandwidth, spread
from kdegen.reversal import LOSSES, Candidates, Reversal, ReversalConfig

INFO_SUBSET = 128  # codes the information ratio is measured on at each refit
INFO_WARNING = 0.8  # a ratio above this after a full rotation: the codes carry little
INFO_PATIENCE = 300  # iterations at least before the warning: G changes fast at first


class KDEGANWarning(UserWarning):
    """The code bank holds codes that say little about their examples."""


@dataclass(frozen=True)
class KDEGANConfig(GANConfig):
    """Options of ``kdegan``: those of ``gan`` plus the reversal, the bank and the KDE."""

    bank_size: int = option(
        512, "training examples whose codes the KDE is fitted on (0: all)", ge=0
    )
    rev_batch: int = option(0, "bank codes refreshed per iteration (0: the batch size)", ge=0)
    warm_start: bool = option(True, "continue each code's reversal where its last refresh ended")
    rev_restarts: int = option(
        64,
        "prior draws (a pool renewed at each refit) a code restarts from when one "
        "reconstructs its example better (0: none)",
        ge=0,
    )
    reversal: ReversalConfig = option(
        ReversalConfig(steps=1),
        "reversal of the bank's codes (Algorithm 1), one refresh at a time",
        prefix="rev",
    )
    kde_bandwidth: str = option(
        DEFAULT_KDE_BANDWIDTH, "KDE bandwidth: a number or [f*]nn|std|scott|silverman|ml"
    )
    kde_window: int = option(
        0, "fit the KDE to codes refreshed in the last N iterations (0: all)", ge=0
    )
    background: float = option(0.1, "weight of N(0, I) mixed into the KDE prior", ge=0, le=1)
    refit_every: int = option(10, "refit the KDE every N iterations", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_bandwidth(self.kde_bandwidth)
        if self.reversal.stop == "mmd" and self.warm_start:
            raise UsageError(
                "--rev-stop mmd compares the data's codes with codes of generated samples "
                "started alike; use it with --no-warm-start (as --preset paper does)"
            )


@METHODS.register("kdegan")
class KDEGAN(GAN[KDEGANConfig]):
    """A GAN whose noise is drawn from a KDE over the reversed codes of the training data."""

    Config = KDEGANConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        **GAN.presets,
        # Algorithm 2 as printed, with the appendix's reversal: every iteration a minibatch
        # from codes of std 1e-4, gradient descent at lr 1 until Claim 4's test rejects
        # (cap 50), and the KDE fitted on that minibatch's codes
        "paper": {
            "bank_size": 0,
            "rev_batch": 64,
            "warm_start": False,
            "reversal": {
                "optimizer": "sgd",
                "lr": 1.0,
                "l2": 0.0,
                "stop": "mmd",
                "steps": 50,
                "level": 0.05,
                "init": "normal",
                "init_std": 1e-4,
            },
            "kde_bandwidth": "scott",
            "kde_window": 1,
            "refit_every": 1,
            "rev_restarts": 0,
            "background": 0.0,
        },
    }

    def __init__(self, config: KDEGANConfig, spec: DataSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        if spec.size < 2:
            raise UsageError("kdegan needs a training set of at least 2 examples")
        c = self.config
        r = c.reversal
        self.bank = CodeBank.subset(
            spec.size,
            c.bank_size,
            c.latent,
            0,
            init=r.init,
            init_std=r.init_std,
            device=device,
            step_length=r.lr,
        )
        self.kde: KDE | None = None
        self.pool: Candidates | None = None  # restart candidates, renewed at each refit
        self.images: Tensor | None = None
        self._iteration = 0
        self._info = math.nan  # running information ratio, for the one-time warning
        self._warned = False
        self._epoch = 0  # iterations in an epoch of the training set (known at the first step)
        self._rev_batch = self.config.rev_batch or 64  # 0: the batch size (first step)

    def bind_data(self, images: Tensor, labels: Tensor | None) -> None:
        self.images = images

    def latent_codes(self) -> Tensor:
        return self.bank.codes[self.bank.usable(self.config.kde_window, self._iteration)]

    def prior_for_sampling(self) -> Prior:
        return self.kde or self.prior

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.prior_for_sampling().sample(n, generator)

    def train_step(self, batch: Batch) -> Losses:
        if self.images is None:
            raise UsageError("kdegan needs its training set: call bind_data(images, labels)")
        if not self._epoch:  # the batch size is known at the first step
            rows = len(batch.x) // self.batches_per_step * distributed.world_size()
            self._epoch = math.ceil(self.spec.size / rows)
            self._rev_batch = self.config.rev_batch or rows
        if self._iteration % self.config.refit_every == 0 and self.config.rev_restarts:
            self.pool = Candidates.draw(self.G, self.prior, self.config.rev_restarts)
        r = self.reverse()
        stats: dict[str, float] = {
            "rev_loss": float(r.start_loss.mean()) if r.start_loss is not None else math.nan,
            "rev_steps": float(r.steps_taken),
            "rev_resets": float(r.resets),
            "rev_restarts": float(r.restarts),
        }
        if r.state is not None and self.config.reversal.optimizer == "normalized":
            stats["rev_step_length"] = float(r.state.length.mean())
        if self.config.warm_start:  # the refreshed codes as stored, under the current G
            stats["info_ratio"] = r.start_information
            self._watch(r.start_information, 0.02)
        if self._iteration % self.config.refit_every == 0:
            stats.update(self.refit())
        self._iteration += 1
        losses = dict(super().train_step(batch))
        losses.update({k: v for k, v in stats.items() if math.isfinite(v)})
        return losses

    def reverse(self) -> Reversal:
        """Refresh the next ``rev_batch`` codes of the bank (split among the processes)."""
        c = self.config
        assert self.images is not None
        slots = self.bank.next_slots(self._rev_batch)
        mine = slots.tensor_split(distributed.world_size())[distributed.rank()]
        r = self.bank.reverse(
            self.G,
            self.images,
            mine,
            c.reversal,
            c.warm_start,
            prior=self.prior_for_sampling(),
            candidates=self.pool,
        )
        self._store(mine, r)
        return r

    def _store(self, slots: Tensor, r: Reversal) -> None:
        """Write this process's refreshed codes, and every other process's, into the bank."""
        if distributed.world_size() == 1:
            self.bank.store(slots, r, self._iteration)
            return
        parts = distributed.gather_objects((slots.cpu(), _portable(r)))
        for s, result in parts:
            self.bank.store(s, result, self._iteration)

    def refit(self) -> dict[str, float]:
        """Fit the KDE prior to the usable bank codes; returns what it measured."""
        usable = self.bank.usable(self.config.kde_window, self._iteration)
        if len(usable) < 2:
            return {}  # the plain prior drives the generator until codes exist
        c = self.config
        codes = self.bank.codes[usable]
        self.kde = KDE(c.kde_bandwidth, c.background).fit(codes.clone())
        found = {"kde_bandwidth": self.kde.bandwidth, "kde_spread": spread(codes)}
        if not c.warm_start:  # cold starts: measure the codes the KDE was fitted on
            found["info_ratio"] = self.information(usable[:INFO_SUBSET])
            self._watch(found["info_ratio"], 0.2)
        return found

    @torch.no_grad()
    def information(self, slots: Tensor) -> float:
        """Own-example over other-example reconstruction loss of the codes of ``slots``."""
        assert self.images is not None
        if len(slots) < 2:
            return math.nan
        x = self.images[self.bank.members[slots].to(self.images.device)]
        with frozen(self.G):
            out = self.G(self.bank.codes[slots])
        own = LOSSES["l2"](out, x).mean()
        other = LOSSES["l2"](out.roll(1, 0), x).mean()
        return float(own / other) if float(other) > 0 else math.nan

    def _watch(self, info: float, weight: float) -> None:
        """Warn once when the bank's codes still carry little after the first epoch, the
        first full rotation of the bank and INFO_PATIENCE iterations (a running mean)."""
        if not math.isfinite(info):
            return
        self._info = info if math.isnan(self._info) else (1 - weight) * self._info + weight * info
        rotation = math.ceil(len(self.bank) / self._rev_batch)
        past = self._iteration > max(rotation, self._epoch, INFO_PATIENCE)
        if past and self._info > INFO_WARNING and not self._warned:
            self._warned = True
            cfg = self.config
            advice = (
                "--rev-steps 2 or a smaller --bank-size"
                if cfg.warm_start
                else "--warm-start (codes that keep improving across visits) or the default "
                "settings instead of --preset paper"
            )
            warnings.warn(
                f"kdegan: the bank's codes carry little information about their examples "
                f"(info_ratio {self._info:.2f} > {INFO_WARNING} after {self._iteration} "
                f"iterations); the reversal is not keeping up: try {advice}",
                KDEGANWarning,
                stacklevel=2,
            )

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "bank": self.bank.state_dict(),
            "iteration": self._iteration,
            "info": self._info,
            "warned": self._warned,
        }
        if self.kde is not None and self.kde.codes is not None:
            state["kde_codes"] = self.kde.codes
        if self.pool is not None:
            state["pool"] = {"codes": self.pool.codes, "outputs": self.pool.outputs}
        return state

    def load_extra_state(self, state: Any) -> None:
        self.bank.load_state_dict(state["bank"])
        self._iteration = int(state["iteration"])
        self._info, self._warned = float(state["info"]), bool(state["warned"])
        if "kde_codes" in state:
            c = self.config
            self.kde = KDE(c.kde_bandwidth, c.background).fit(state["kde_codes"].to(self.device))
        if "pool" in state:
            pool = state["pool"]
            self.pool = Candidates(pool["codes"].to(self.device), pool["outputs"].to(self.device))


def _portable(r: Reversal) -> Reversal:
    """The parts of a reversal the bank stores, on the CPU (to send to other processes)."""
    state = r.state
    if state is not None:
        state = type(state)(state.length.cpu(), state.direction.cpu())
    loss = r.example_loss.cpu() if r.example_loss is not None else None
    return Reversal(r.codes.cpu(), None, steps_taken=r.steps_taken, example_loss=loss, state=state)
