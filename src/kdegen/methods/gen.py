"""Generative encoding networks (Saha, Elhabian, Whitaker): an autoencoder whose codes are
pushed to a target distribution by a kernel-density Jensen-Shannon term.

Loss (GENs Eq. 3, Algorithm 1): the reconstruction error plus
    lambda * mean_i log[ p_e(z'_i) / (p_t(z'_i) + p_e(z'_i)) ],
with p_e a Gaussian KDE of bandwidth h over a *lagging* set of m encoded training
examples (constants in each step) and z' the minibatch's codes. h defaults to the
bandwidth that best tells two target samples apart (:func:`optimal_jsd_bandwidth`, Table 1).
Sampling draws from the distribution the codes converge to, N(0, (1 - h^2) I) for the
standard normal (Eq. 8) or the mixture shrunk per component.

The lagging set. Algorithm 1 re-encodes m training examples every k_b minibatches; with
m = 4,000 that costs an encoder pass over 400 examples per step, several times a
64-example training step. kdegen's default (``--lag queue``) keeps the set as a queue of
the most recent m minibatch codes instead (filled once at the start): each step's codes
replace the oldest ones after the update, so the set lags by at most m / batch steps at
no extra cost. ``--lag reencode`` is the paper's scheme.

The form of the term. Eq. 3 minimises log p_e/(p_e + p_t) over the codes; like the
minimax GAN loss it saturates: once the codes leave the target's mass p_t/(p_e + p_t)
vanishes with its gradient, and on mnist5k the reconstruction term carries the codes
away within a few hundred steps (measured: mean |code| ~ 5 with lambda up to 1). kdegen's
default is the non-saturating counterpart, minimising -log p_t/(p_e + p_t), whose
gradient (p_e/(p_e + p_t)) (grad log p_t - grad log p_e) stays strong away from the
target. Both vanish exactly where grad log p_e = grad log p_t, which is Eq. 4, so the
converged distribution of Eq. 8 is the same. ``--jsd-form saturating`` is Eq. 3 as printed.

Semi-supervision (Sec. 5.4): with ``--labeled N`` and a mixture target, the labelled
examples' term uses their own class's component as p_t, which pulls them to that mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from kdegen.config import option
from kdegen.errors import UsageError
from kdegen.methods.autoencoder import AEConfig, AutoEncoder, make_target
from kdegen.methods.base import METHODS, Batch, DataSpec
from kdegen.priors import GaussianMixture, Prior, converged_prior
from kdegen.stats.jsd import kde_log_prob, optimal_jsd_bandwidth

LAGS = ("queue", "reencode")
FORMS = ("nonsaturating", "saturating")


@dataclass(frozen=True)
class GENConfig(AEConfig):
    """Options of ``gen``."""

    lam: float = option(0.01, "weight lambda of the JSD term (Sec. 5.3: 0.005-0.01)")
    m: int = option(4000, "lagging KDE samples (capped at the training-set size)")
    lag: str = option("queue", "lagging set: queue of recent codes, or reencode (Algorithm 1)")
    k_b: int = option(10, "minibatches between re-encodings of the lagging set (reencode)")
    bandwidth: float = option(0.0, "KDE bandwidth h (0: the JSD-optimal h for (l, m, target))")
    jsd_form: str = option("nonsaturating", "JSD term: nonsaturating, or saturating (Eq. 3)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.jsd_form not in FORMS:
            raise UsageError(
                f"--jsd-form must be nonsaturating or saturating, got {self.jsd_form!r}"
            )
        if self.lag not in LAGS:
            raise UsageError(f"--lag must be queue or reencode, got {self.lag!r}")
        if self.m < 2 or self.k_b < 1 or self.lam < 0 or self.bandwidth < 0:
            raise UsageError("--m must be >= 2, --k-b >= 1, --lam and --bandwidth >= 0")

    def resolved(self, spec: DataSpec) -> Any:
        config = super().resolved(spec)
        m = min(self.m, spec.size) if spec.size else self.m
        if self.bandwidth == 0:
            target = make_target(config, torch.device("cpu"))
            h, _ = optimal_jsd_bandwidth(self.latent, m, target, trials=10, seed=0)
            config = replace(config, bandwidth=float(h))
        return replace(config, m=m)


@METHODS.register("gen")
class GEN(AutoEncoder):
    """Autoencoder + lambda * KDE-JSD between the codes and the target."""

    Config = GENConfig

    def __init__(self, config: GENConfig, spec: DataSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.config: GENConfig = self.config
        self.lagging = torch.empty(0, config.latent, device=device)  # (m, l)
        self._images: Tensor | None = None
        self._subset: Tensor | None = None
        self._step = 0
        self._head = 0  # next queue slot to overwrite

    def bind_data(self, images: Tensor, labels: Tensor | None) -> None:
        self._images = images
        g = torch.Generator().manual_seed(4321)
        self._subset = torch.randperm(len(images), generator=g)[: self.config.m].to(images.device)
        if len(self.lagging) == 0:  # a resumed run brings its own
            self.reencode()

    def reencode(self) -> None:
        """Encode the fixed subset of m training examples with the current encoder."""
        if self._images is None or self._subset is None:
            raise UsageError("gen needs the training set: train it through the Trainer")
        self.lagging = self.encode(self._images[self._subset])

    def latent_loss(self, z: Tensor, batch: Batch) -> dict[str, Tensor]:
        if len(self.lagging) == 0:
            raise UsageError("gen needs the training set: train it through the Trainer")
        log_pe = kde_log_prob(z, self.lagging, self.config.bandwidth)  # (B,)
        log_pt = self._target_log_prob(z, batch).to(log_pe.dtype)
        log_both = torch.logaddexp(log_pe, log_pt)
        # Eq. 3 minimises log p_e/(p_e + p_t); the non-saturating form -log p_t/(p_e + p_t)
        saturating = self.config.jsd_form == "saturating"
        term = log_pe - log_both if saturating else log_both - log_pt
        return {"jsd_loss": self.config.lam * term.mean()}

    def _target_log_prob(self, z: Tensor, batch: Batch) -> Tensor:
        log_pt = self.target.log_prob(z)
        if batch.index is None or batch.y is None or not bool(self.labeled.any()):
            return log_pt
        known = self.labeled[batch.index]
        if not bool(known.any()):
            return log_pt
        assert isinstance(self.target, GaussianMixture)
        own = self.target.component_log_prob(z).gather(1, batch.y[:, None]).squeeze(1)
        return torch.where(known, own.to(log_pt.dtype), log_pt)

    def after_step(self, z: Tensor, batch: Batch) -> None:
        self._step += 1
        if self.config.lag == "reencode":
            if self._step % self.config.k_b == 0:
                self.reencode()
            return
        n = min(len(z), len(self.lagging))
        slots = (self._head + torch.arange(n, device=z.device)) % len(self.lagging)
        self.lagging[slots] = z[:n].to(self.lagging.dtype)
        self._head = int((self._head + n) % len(self.lagging))

    def prior_for_sampling(self) -> Prior:
        """Eq. 8: the target convolved back by the kernel, N(0, (1 - h^2) I) for N(0, I)."""
        return converged_prior(self.target, self.config.bandwidth)

    def latent_codes(self) -> Tensor:
        return self.lagging

    def extra_state(self) -> dict[str, Any]:
        return {"lagging": self.lagging, "step": self._step, "head": self._head}

    def load_extra_state(self, state: Any) -> None:
        self.lagging = state["lagging"].to(self.device)
        self._step, self._head = int(state["step"]), int(state["head"])


def latent_std_prediction(bandwidth: float) -> float:
    """The std of converged GEN codes for a standard-normal target: sqrt(1 - h^2) (Eq. 8)."""
    return math.sqrt(1.0 - bandwidth * bandwidth)
