"""GAN objectives of the tutorial (Courville, "Generative Adversarial Networks" slides).

Every objective maps raw discriminator outputs ``v`` (one real number per sample,
the critic's pre-activation) to a discriminator loss and a generator loss; both
are minimised. Registered objectives:

- ``minimax``: the saturating game of Goodfellow et al. (tutorial "GAN Objective"),
  G minimises E log(1 - D(G(z))).
- ``non-saturating``: the same D loss, G maximises E log D(G(z)) (tutorial
  "GAN Theory ... in practice").
- ``lsgan``: least squares GAN (Mao et al.), targets 1 for real and 0 for fake.
- ``wgan``: Wasserstein critic with weight clipping (Arjovsky et al.).
- ``wgan-gp``: Wasserstein critic with the gradient penalty of Gulrajani et al.,
  E[(||grad D(x_hat)||_2 - 1)^2] on x_hat = eps x + (1 - eps) x_tilde.
- ``hinge``: hinge loss (Lim & Ye; Miyato et al.).
- ``fgan-<divergence>``: f-GAN (Nowozin et al.) for each row of the tutorial's
  divergence tables: T = g_f(v) and the bound E_P[T] - E_Q[f*(T)], with f*(g_f(v))
  written in a numerically stable closed form. The generator uses Nowozin et al.'s
  practical update, maximising E_Q[g_f(v)].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from kdegen.registry import Registry

Regularizer = Literal["none", "gradient-penalty", "weight-clipping"]


@dataclass(frozen=True)
class Objective:
    """A GAN objective as two pure loss functions on discriminator outputs.

    Attributes:
        name: registry name.
        d_loss: (v_real (B,), v_fake (B,)) -> scalar loss minimised by the discriminator.
        g_loss: v_fake (B,) -> scalar loss minimised by the generator.
        regularizer: what the critic needs beside its loss: a gradient penalty or
            weight clipping after each step.
        description: one line for help texts.
        targeted_d_loss: (v_real, v_fake, t (B,)) -> the discriminator's loss with a target
            t_i for each real example in place of the real label (one-sided label smoothing
            and label flipping); None where real examples have no label to soften (the
            Wasserstein, hinge and f-GAN critics).
    """

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    regularizer: Regularizer = "none"
    description: str = ""
    targeted_d_loss: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None


OBJECTIVES: Registry[Objective] = Registry("objective")


def register(obj: Objective) -> Objective:
    """Add ``obj`` to :data:`OBJECTIVES` under its name (duplicates rejected)."""
    return OBJECTIVES.add(obj.name, obj)


# ----- the original game and its non-saturating variant -----------------------------
# D(x) = sigmoid(v); log D = -softplus(-v) and log(1 - D) = -softplus(v), stably.


def _bce_d_loss(v_real: Tensor, v_fake: Tensor) -> Tensor:
    # -(E log D(x) + E log(1 - D(G(z))))
    return F.softplus(-v_real).mean() + F.softplus(v_fake).mean()


def _bce_targeted_d_loss(v_real: Tensor, v_fake: Tensor, t: Tensor) -> Tensor:
    # the cross-entropy of D(x) against target t_i: -(t log D(x) + (1 - t) log(1 - D(x)))
    real = t * F.softplus(-v_real) + (1 - t) * F.softplus(v_real)
    return real.mean() + F.softplus(v_fake).mean()


def _lsgan_d_loss(v_real: Tensor, v_fake: Tensor) -> Tensor:
    return 0.5 * ((v_real - 1) ** 2).mean() + 0.5 * (v_fake**2).mean()


def _lsgan_targeted_d_loss(v_real: Tensor, v_fake: Tensor, t: Tensor) -> Tensor:
    return 0.5 * ((v_real - t) ** 2).mean() + 0.5 * (v_fake**2).mean()


register(
    Objective(
        "minimax",
        _bce_d_loss,
        lambda v_fake: -F.softplus(v_fake).mean(),  # E log(1 - D(G(z)))
        description="saturating minimax game: G minimises E log(1 - D(G(z)))",
        targeted_d_loss=_bce_targeted_d_loss,
    )
)
register(
    Objective(
        "non-saturating",
        _bce_d_loss,
        lambda v_fake: F.softplus(-v_fake).mean(),  # -E log D(G(z))
        description="Goodfellow's heuristic: G maximises E log D(G(z))",
        targeted_d_loss=_bce_targeted_d_loss,
    )
)
register(
    Objective(
        "lsgan",
        _lsgan_d_loss,
        lambda v_fake: 0.5 * ((v_fake - 1) ** 2).mean(),
        description="least squares GAN (Mao et al. 2017), targets 1 real / 0 fake",
        targeted_d_loss=_lsgan_targeted_d_loss,
    )
)


def _wasserstein_d_loss(v_real: Tensor, v_fake: Tensor) -> Tensor:
    return v_fake.mean() - v_real.mean()


def _wasserstein_g_loss(v_fake: Tensor) -> Tensor:
    return -v_fake.mean()


register(
    Objective(
        "wgan",
        _wasserstein_d_loss,
        _wasserstein_g_loss,
        regularizer="weight-clipping",
        description="Wasserstein critic, weights clipped to [-c, c] (Arjovsky et al. 2017)",
    )
)
register(
    Objective(
        "wgan-gp",
        _wasserstein_d_loss,
        _wasserstein_g_loss,
        regularizer="gradient-penalty",
        description="Wasserstein critic with gradient penalty (Gulrajani et al. 2017)",
    )
)
register(
    Objective(
        "hinge",
        lambda v_real, v_fake: F.relu(1 - v_real).mean() + F.relu(1 + v_fake).mean(),
        _wasserstein_g_loss,
        description="hinge loss (Lim & Ye 2017; Miyato et al. 2018)",
    )
)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates.

    Args:
        critic: maps a batch (B, ...) to outputs (B,) or (B, 1).
        real: real batch (B, ...).
        fake: generated batch of the same shape (detached or not).
        generator: RNG for the interpolation weights eps ~ U[0, 1], one per sample.

    Returns:
        The scalar penalty, differentiable w.r.t. the critic's parameters.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)  # (B,)
    return ((norms - 1) ** 2).mean()


# ----- f-GAN --------------------------------------------------------------------------


@dataclass(frozen=True)
class FDivergence:
    """One row of the tutorial's f-GAN tables (Nowozin et al. 2016, Tables 1-2).

    Attributes:
        name: short name used in ``fgan-<name>``.
        f: the convex generator f(u), u > 0, with f(1) = 0.
        f_prime: its derivative f'(u).
        conjugate: the Fenchel conjugate f*(t) on dom f*.
        activation: output activation g_f: R -> dom f*, T = g_f(v).
        conjugate_of_activation: f*(g_f(v)) in a form that is stable for any real v.
        threshold: f'(1), the critical value of T separating real from generated.
    """

    name: str
    f: Callable[[Tensor], Tensor]
    f_prime: Callable[[Tensor], Tensor]
    conjugate: Callable[[Tensor], Tensor]
    activation: Callable[[Tensor], Tensor]
    conjugate_of_activation: Callable[[Tensor], Tensor]
    threshold: float


LOG2 = math.log(2.0)

F_DIVERGENCES: Registry[FDivergence] = Registry("f-divergence")

for _div in (
    FDivergence(
        "kl",
        f=lambda u: u * torch.log(u),
        f_prime=lambda u: torch.log(u) + 1,
        conjugate=lambda t: torch.exp(t - 1),
        activation=lambda v: v,
        conjugate_of_activation=lambda v: torch.exp(v - 1),
        threshold=1.0,
    ),
    FDivergence(
        "reverse-kl",
        f=lambda u: -torch.log(u),
        f_prime=lambda u: -1 / u,
        conjugate=lambda t: -1 - torch.log(-t),
        activation=lambda v: -torch.exp(-v),
        conjugate_of_activation=lambda v: v - 1,  # -1 - log(exp(-v))
        threshold=-1.0,
    ),
    FDivergence(
        "pearson",
        f=lambda u: (u - 1) ** 2,
        f_prime=lambda u: 2 * (u - 1),
        conjugate=lambda t: 0.25 * t**2 + t,
        activation=lambda v: v,
        conjugate_of_activation=lambda v: 0.25 * v**2 + v,
        threshold=0.0,
    ),
    FDivergence(
        "hellinger",
        f=lambda u: (torch.sqrt(u) - 1) ** 2,
        f_prime=lambda u: 1 - 1 / torch.sqrt(u),
        conjugate=lambda t: t / (1 - t),
        activation=lambda v: 1 - torch.exp(-v),
        conjugate_of_activation=lambda v: torch.expm1(v),  # (1 - e^-v) / e^-v
        threshold=0.0,
    ),
    FDivergence(
        "js",
        f=lambda u: -(u + 1) * torch.log((1 + u) / 2) + u * torch.log(u),
        f_prime=lambda u: torch.log(2 * u / (1 + u)),
        conjugate=lambda t: -torch.log(2 - torch.exp(t)),
        activation=lambda v: LOG2 - F.softplus(-v),
        # 2 - exp(g_f(v)) = 2 (1 - sigmoid(v)) = 2 sigmoid(-v)
        conjugate_of_activation=lambda v: F.softplus(v) - LOG2,
        threshold=0.0,
    ),
    FDivergence(
        "gan",
        f=lambda u: u * torch.log(u) - (u + 1) * torch.log(u + 1),
        f_prime=lambda u: torch.log(u / (u + 1)),
        conjugate=lambda t: -torch.log(1 - torch.exp(t)),
        activation=lambda v: -F.softplus(-v),  # log sigmoid(v)
        conjugate_of_activation=F.softplus,  # -log(1 - sigmoid(v))
        threshold=-LOG2,
    ),
):
    F_DIVERGENCES.add(_div.name, _div)


def _fgan_objective(div: FDivergence) -> Objective:
    def d_loss(v_real: Tensor, v_fake: Tensor) -> Tensor:
        # maximise the variational bound E_P[T] - E_Q[f*(T)]
        return div.conjugate_of_activation(v_fake).mean() - div.activation(v_real).mean()

    def g_loss(v_fake: Tensor) -> Tensor:
        return -div.activation(v_fake).mean()

    return Objective(
        f"fgan-{div.name}",
        d_loss,
        g_loss,
        description=f"f-GAN (Nowozin et al. 2016) with the {div.name} divergence",
    )


for _name, _div in F_DIVERGENCES.items():
    register(_fgan_objective(_div))
