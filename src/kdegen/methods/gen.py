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
no extra cost. ``--lag reencode`` is the paper's scheme. The queue's lag is longer (62
steps against k_b = 10), and with a strong JSD term that matters: on mnist5k (l = 8,
3,000 steps, lambda = 1) the queue's current codes collapsed towards a line (covariance
eigenvalues down to 0.003, chasing their own older codes) while re-encoding kept
0.33-0.66; at the paper's lambda = 0.01 the whitened entropy of 1,000 codes was 10.61
nats with the queue and 10.64 re-encoding. For lambda >= 0.1 use ``--lag reencode``.

The form of the term. Eq. 3 minimises log p_e/(p_e + p_t) over the codes; like the
minimax GAN loss it saturates: once the codes leave the target's mass p_t/(p_e + p_t)
vanishes with its gradient, and on mnist5k the reconstruction term carries the codes
away within a few hundred steps (measured: mean |code| ~ 5 with lambda up to 1). kdegen's
default is the non-saturating counterpart, minimising -log p_t/(p_e + p_t), whose
gradient (p_e/(p_e + p_t)) (grad log p_t - grad log p_e) stays strong away from the
target. Both vanish exactly where grad log p_e = grad log p_t, which is Eq. 4, so the
converged distribution of Eq. 8 is the same. ``--jsd-form saturating`` is Eq. 3 as printed.

Leaving out a query's own code (``--leave-out``). When the lagging set holds
a code of the minibatch image itself (always, when m is the training-set size, as with
mnist5k's 4,000 images and m = 4,000), its kernel sits at distance ~0 from the query. In
l = 8 at the Table 1 bandwidth that one kernel is about a third of p_e at a typical code
and most of it in the tails, where it hides the repulsion between codes and leaves the
pull of p_t: the codes shrink below Eq. 8. kdegen takes p_e at a minibatch code over the
other images' codes, as the entropy estimate of Eq. 9 does. The paper's MNIST runs (60k
images, m = 10k) met their own code in one minibatch image of six.

Leaving the own kernel out entirely removes a safeguard, though: a code that strays beyond
all others has p_e << p_t there, and the term (either form) is lowest where p_e / p_t is
smallest, which beyond the codes is further out, so nothing but the reconstruction term
holds it back. A 2-D mixture-target run (h = 0.2, lambda = 1) sent codes to norms above
10,000, and on mnist5k 12,000 steps grew the covariance eigenvalues to 1.3-2.2 (Eq. 8:
0.67) with a code at norm 19. So p_e is floored at a tenth of the own kernel
(:data:`OWN_FLOOR`): in the bulk the other codes' density is far above that and the floor
is idle; a stray code's p_e then stops falling, p_t keeps falling as it leaves, and the
term pulls it back. With the floor both runs stay bounded. Measured on mnist5k (l = 8,
lambda = 0.04, ``--lag reencode``, 12,000 steps, one model): covariance eigenvalues
0.53-0.78 (0.30-0.48 with the own kernel kept, after 6,000 steps) and a whitened entropy
of 1,000 codes of 11.46 nats (11.31, the mean of five models, with it kept; N(0, I)
samples: 11.71); gen-entropy uses it. It is off by default because its masking costs
0.15-0.2x of an ``ae`` step at m = 4,000 (gen_step medians: 1.26x without, 1.41x with,
on an idle machine), mostly Python overhead of the index bookkeeping, which the 1.3x
target of a GEN step does not leave room for.

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
