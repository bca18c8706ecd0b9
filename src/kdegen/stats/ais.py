"""Annealed importance sampling (AIS) of log p(x) for decoder-based models (Neal 2001; Wu,
Burda, Salakhutdinov and Grosse 2017, "On the Quantitative Analysis of Decoder-Based
Generative Models"; thesis Sec. 3.5 and Fig. 3.5).

A generator G with a standard normal prior becomes a density model under a Gaussian
observation model of standard deviation sigma:

    p(x) = int N(z; 0, I) N(x; G(z), sigma^2 I) dz.

AIS moves chains from the prior f_0(z) = N(z; 0, I) to the unnormalised posterior
f_T(z) = N(z; 0, I) p(x | z) through the geometric path f_t = f_0 p(x | z)^beta_t, with
beta rising from 0 to 1 on Wu et al.'s sigmoid schedule. Each chain carries the weight
log w = sum_t (beta_t - beta_(t-1)) log p(x | z_(t-1)) and moves by one Hamiltonian Monte
Carlo transition that leaves f_t invariant (``leapfrog`` steps). The step size, shared
by every chain of the batch, is multiplied by exp(0.02 (a - 0.65)) after each transition,
a the chains' mean acceptance probability: Wu et al.'s adaptation towards 65% acceptance.
Shared over many chains it hardly depends on any one chain's path; adapted per chain it
did, and biased the reverse bound below the truth in kdegen's tests. E[w] = p(x), so the
log of the mean weight over chains is a stochastic lower bound of log p(x) (Jensen),
exact as the steps grow.

Run backwards from an exact posterior sample (possible on data simulated from the model:
the code that made it), the same path gives an unbiased estimate of 1/p(x) and so a
stochastic upper bound: the two bracket log p(x), the bidirectional Monte Carlo check of
Wu et al. (Sec. 4.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

TARGET_ACCEPTANCE = 0.65
ADAPT_RATE = 0.02


@dataclass(frozen=True)
class AISEstimate:
    """log p(x) of each example and how the chains behaved.

    Attributes:
        log_px: (B,) estimate per example: log mean w over its chains (forward: a
            stochastic lower bound; reverse: -log mean w, an upper bound).
        log_w: (B, chains) the final log weights.
        acceptance: mean HMC acceptance probability over all transitions.
    """

    log_px: Tensor
    log_w: Tensor
    acceptance: float


def sigmoid_schedule(steps: int, radius: float = 4.0) -> Tensor:
    """beta_0 = 0 < ... < beta_steps = 1 (float64): a sigmoid over [-radius, radius],
    rescaled to start at 0 and end at 1 (Wu et al.'s schedule: dense at both ends)."""
    if steps < 1:
        raise ValueError(f"AIS needs at least one intermediate step, got {steps}")
    s = torch.sigmoid(torch.linspace(-radius, radius, steps + 1, dtype=torch.float64))
    return (s - s[0]) / (s[-1] - s[0])


def gaussian_log_likelihood(decoded: Tensor, x: Tensor, sigma: float) -> Tensor:
    """log N(x; decoded, sigma^2 I) per row, summed over every dimension: (n,)."""
    d = x[0].numel()
    sq = (x - decoded).flatten(1).pow(2).sum(1)
    return -0.5 * sq / sigma**2 - 0.5 * d * math.log(2 * math.pi * sigma**2)


def ais_log_likelihood(
    generator: Callable[[Tensor], Tensor],
    x: Tensor,
    latent: int,
    sigma: float,
    steps: int = 500,
    chains: int = 16,
    leapfrog: int = 10,
    step_size: float = 0.05,
    reverse_from: Tensor | None = None,
    rng: torch.Generator | None = None,
) -> AISEstimate:
    """AIS estimate of log p(x) for each row of ``x`` (see the module).

    Args:
        generator: z (n, latent) -> decoded data (n, *x.shape[1:]), differentiable.
        x: (B, ...) data.
        latent: the code dimension k.
        sigma: standard deviation of the Gaussian observation model (> 0).
        steps: intermediate distributions T.
        chains: independent chains per example.
        leapfrog: leapfrog steps of each HMC transition.
        step_size: each chain's first leapfrog step size (then adapted).
        reverse_from: (B, latent) exact posterior samples (the codes that generated x):
            run the path backwards from them and return the upper bound.
        rng: the generator of the initial codes, momenta and accept draws (default torch's).

    Returns:
        The per-example estimates, final log weights and the mean acceptance.
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive finite number, got {sigma}")
    if chains < 1 or leapfrog < 1:
        raise ValueError("AIS needs at least one chain and one leapfrog step")
    B = x.shape[0]
    device = x.device
    xs = x.repeat_interleave(chains, 0)  # (B*C, ...): example b's chains are rows b*C...
    betas = sigmoid_schedule(steps).tolist()
    if reverse_from is None:
        z = _randn((B * chains, latent), rng, device).to(x.dtype)
    else:
        z = reverse_from.to(device=device, dtype=x.dtype).repeat_interleave(chains, 0)
        betas = betas[::-1]

    def log_lik(codes: Tensor) -> Tensor:
        return gaussian_log_likelihood(generator(codes), xs, sigma)

    log_w = torch.zeros(B * chains, dtype=torch.float64, device=device)
    eps = torch.full((B * chains, 1), step_size, dtype=x.dtype, device=device)
    ll, grad = _value_and_grad(log_lik, z)
    accepted_sum = 0.0
    for t in range(1, len(betas)):
        log_w += (betas[t] - betas[t - 1]) * ll.detach().double()
        z, ll, grad, accept = _hmc(log_lik, z, ll, grad, betas[t], eps, leapfrog, rng)
        eps = eps * math.exp(ADAPT_RATE * (float(accept.mean()) - TARGET_ACCEPTANCE))
        accepted_sum += float(accept.mean())
    log_w = log_w.view(B, chains)
    mean_w = torch.logsumexp(log_w, 1) - math.log(chains)  # log mean w
    # backwards the weights estimate 1/p(x), so -log mean w is at least log p(x) on average
    log_px = mean_w if reverse_from is None else -mean_w
    return AISEstimate(log_px, log_w, accepted_sum / max(1, len(betas) - 1))


def _randn(shape: tuple[int, ...], rng: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal draws, from ``rng`` (a CPU generator) when given."""
    if rng is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=rng).to(device)


def _rand(n: int, rng: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform draws in float64, from ``rng`` when given."""
    if rng is None:
        return torch.rand(n, dtype=torch.float64, device=device)
    return torch.rand(n, generator=rng, dtype=torch.float64).to(device)


def _value_and_grad(log_lik: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    """log p(x | z) per row and its gradient with respect to z."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        ll = log_lik(z)
        (grad,) = torch.autograd.grad(ll.sum(), z)
    return ll.detach(), grad


def _hmc(
    log_lik: Callable[[Tensor], Tensor],
    z: Tensor,
    ll: Tensor,
    grad: Tensor,
    beta: float,
    eps: Tensor,
    leapfrog: int,
    rng: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One HMC transition per row leaving f(z) = N(z; 0, I) p(x | z)^beta invariant.

    The potential is U = |z|^2 / 2 - beta log p(x | z). Returns the new codes, their log
    likelihoods and gradients, and each row's acceptance probability min(1, exp(-dH)).
    """

    def potential_grad(codes: Tensor, g: Tensor) -> Tensor:
        return codes - beta * g

    p0 = _randn(tuple(z.shape), rng, z.device).to(z.dtype)
    p = p0 - 0.5 * eps * potential_grad(z, grad)
    zn, lln, gn = z, ll, grad
    for step in range(leapfrog):
        zn = zn + eps * p
        lln, gn = _value_and_grad(log_lik, zn)
        if step < leapfrog - 1:
            p = p - eps * potential_grad(zn, gn)
    p = p - 0.5 * eps * potential_grad(zn, gn)
    h0 = 0.5 * z.pow(2).sum(1) - beta * ll + 0.5 * p0.pow(2).sum(1)
    h1 = 0.5 * zn.pow(2).sum(1) - beta * lln + 0.5 * p.pow(2).sum(1)
    log_ratio = (h0 - h1).double()
    log_ratio = torch.nan_to_num(log_ratio, nan=-torch.inf, posinf=0.0)  # diverged: reject
    accept = torch.exp(torch.clamp(log_ratio, max=0.0))
    take = _rand(accept.shape[0], rng, z.device) < accept
    z = torch.where(take[:, None], zn, z)
    ll = torch.where(take, lln, ll)
    grad = torch.where(take[:, None], gn, grad)
    return z, ll, grad, accept.to(z.dtype)
