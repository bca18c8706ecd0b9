"""Generative encoding networks (Saha, Elhabian, Whitaker): an autoencoder whose codes are
pushed to a target distribution by a kernel-density Jensen-Shannon term.

Loss (GENs Eq. 3, Algorithm 1): the reconstruction error plus
    lambda * mean_i log[ p_e(z'_i) / (p_t(z'_i) + p_e(z'_i)) ],
with p_e a Gaussian KDE of bandwidth h over a *lagging* set of m encoded training
examples (constants in each step) and z' the minibatch's codes. h defaults to the
bandwidth that best tells two target samples apart (:func:`optimal_jsd_bandwidth`, Table 1).
Sampling draws from the distribution the codes converge to, N(0, (1 - h^2) I) for the
standard normal (Eq. 8) or the mixture shrunk per component.

Decisions (docs/gen.md gives the measurements behind each):

- The lagging set is a queue of the last m minibatch codes (``--lag queue``): no encoder
  pass over m examples every k_b steps; ``--lag reencode`` is Algorithm 1's scheme and
  the better choice for lambda >= 0.1.
- The term is the non-saturating -log p_t / (p_e + p_t) by default: Eq. 3's form loses
  its gradient once codes leave the target; both have Eq. 4's fixed point, hence Eq. 8.
  ``--jsd-form saturating`` is Eq. 3 as printed.
- ``--leave-out`` leaves a minibatch image's own lagging code out of p_e (as Eq. 9's
  entropy estimate does) and floors p_e at a tenth of that kernel (:data:`OWN_FLOOR`),
  so that stray codes are pulled back. Off by default: its index bookkeeping costs more
  than a GEN step's budget over ``ae`` allows.

Semi-supervision (Sec. 5.4): with ``--labeled N`` and a mixture target, the labelled
examples' term uses their own class's component as p_t, which pulls them to that mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor

from kdegen.config import option
from kdegen.errors import UsageError
from kdegen.kernels import kde_log_prob
from kdegen.methods.autoencoder import AEConfig, AutoEncoder, make_target
from kdegen.methods.base import METHODS, Batch, DataSpec
from kdegen.priors import GaussianMixture, Prior, converged_prior
from kdegen.stats.jsd import optimal_jsd_bandwidth

Lag = Literal["queue", "reencode"]
JSDForm = Literal["nonsaturating", "saturating"]
OWN_FLOOR = 0.1  # --leave-out: p_e stays above this share of the query's own kernel


@dataclass(frozen=True)
class GENConfig(AEConfig):
    """Options of ``gen``."""

    lam: float = option(0.01, "weight lambda of the JSD term (Sec. 5.3: 0.005-0.01)", ge=0)
    m: int = option(4000, "lagging KDE samples (capped at the training-set size)", ge=2)
    lag: Lag = option("queue", "lagging set: queue of recent codes, or reencode (Algorithm 1)")
    k_b: int = option(10, "minibatches between re-encodings of the lagging set (reencode)", ge=1)
    bandwidth: float = option(
        0.0, "KDE bandwidth h (0: the JSD-optimal h for (l, m, target))", ge=0
    )
    jsd_form: JSDForm = option("nonsaturating", "JSD term: nonsaturating, or saturating (Eq. 3)")
    leave_out: bool = option(False, "leave a minibatch image's own lagging codes out of p_e")

    def resolved(self, spec: DataSpec) -> Any:
        config = super().resolved(spec)
        m = min(self.m, spec.size) if spec.size else self.m
        if self.bandwidth == 0:
            target = make_target(config, torch.device("cpu"))
            h, _ = optimal_jsd_bandwidth(self.latent, m, target, trials=10, seed=0)
            config = replace(config, bandwidth=float(h))
        return replace(config, m=m)


@METHODS.register("gen")
class GEN(AutoEncoder[GENConfig]):
    """Autoencoder + lambda * KDE-JSD between the codes and the target."""

    Config = GENConfig

    def __init__(self, config: GENConfig, spec: DataSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.lagging = torch.empty(0, config.latent, device=device)  # (m, l)
        self._images: Tensor | None = None
        self._subset: Tensor | None = None
        self._step = 0
        self._head = 0  # next queue slot to overwrite
        self.lag_ids = torch.empty(0, dtype=torch.long, device=device)  # image of each code

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
        self.lag_ids = self._subset.to(self.device)

    def latent_loss(self, z: Tensor, batch: Batch) -> dict[str, Tensor]:
        if len(self.lagging) == 0:
            raise UsageError("gen needs the training set: train it through the Trainer")
        ids = None
        if self.config.leave_out and batch.index is not None and len(self.lag_ids):
            ids = (batch.index.to(self.lag_ids.device), self.lag_ids)
        log_pe = kde_log_prob(z, self.lagging, self.config.bandwidth, ids=ids)  # (B,)
        if ids is not None:  # the own kernel, scaled down, as a floor (see the module)
            own = own_kernel_log_prob(z, self.lagging, self.config.bandwidth, own_positions(*ids))
            log_pe = torch.maximum(log_pe, own + math.log(OWN_FLOOR))
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
        if len(self.lag_ids):
            index = batch.index if batch.index is not None else torch.full((len(z),), -1)
            self.lag_ids[slots] = index[:n].to(self.lag_ids)
        self._head = int((self._head + n) % len(self.lagging))

    def prior_for_sampling(self) -> Prior:
        """Eq. 8: the target convolved back by the kernel, N(0, (1 - h^2) I) for N(0, I)."""
        return converged_prior(self.target, self.config.bandwidth)

    def latent_codes(self) -> Tensor:
        return self.lagging

    def extra_state(self) -> dict[str, Any]:
        return {
            "lagging": self.lagging,
            "lag_ids": self.lag_ids,
            "step": self._step,
            "head": self._head,
        }

    def load_extra_state(self, state: Any) -> None:
        self.lagging = state["lagging"].to(self.device)
        unknown = torch.full((len(self.lagging),), -1, dtype=torch.long)  # older checkpoints
        self.lag_ids = state.get("lag_ids", unknown).to(self.device)
        self._step, self._head = int(state["step"]), int(state["head"])


def own_kernel_log_prob(z: Tensor, centres: Tensor, bandwidth: float, own: Tensor) -> Tensor:
    """log of (1/m) G_h(z_i - c_own(i)), one kernel of the KDE over the m ``centres``.

    Args:
        z: (B, l) query codes.
        centres: (m, l) the lagging codes (constants).
        bandwidth: h.
        own: (B,) the position of each query's own centre, or -1 where it has none.

    Returns:
        (B,) log kernel values, -inf for a query without a centre of its own.
    """
    has = own >= 0
    near = centres.detach().to(z.dtype)[own.clamp(min=0)]  # (B, l)
    dim, m = z.shape[1], len(centres)
    d2 = (z - near).pow(2).sum(1)
    log_k = -0.5 * d2 / bandwidth**2 - 0.5 * dim * math.log(2 * math.pi * bandwidth**2)
    return torch.where(has, log_k - math.log(m), torch.full_like(log_k, -math.inf))


def own_positions(query_ids: Tensor, centre_ids: Tensor) -> Tensor:
    """For each query id, the position of a centre with that id (the last), else -1."""
    size = max(int(query_ids.max()), int(centre_ids.max())) + 1
    where = torch.full((size,), -1, dtype=torch.long, device=centre_ids.device)
    known = centre_ids >= 0
    positions = torch.arange(len(centre_ids), device=centre_ids.device)[known]
    where.scatter_reduce_(0, centre_ids[known], positions, reduce="amax")  # the last, always
    return where[query_ids.clamp(min=0)].masked_fill(query_ids < 0, -1)


def latent_std_prediction(bandwidth: float) -> float:
    """The std of converged GEN codes for a standard-normal target: sqrt(1 - h^2) (Eq. 8)."""
    return math.sqrt(1.0 - bandwidth * bandwidth)
