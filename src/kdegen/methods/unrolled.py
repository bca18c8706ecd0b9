"""Unrolled GAN (Metz, Poole, Pfau and Sohl-Dickstein 2017, "Unrolled Generative Adversarial
Networks", Sec. 2.2-2.3; tutorial "Mode Collapse: Solutions").

The generator's loss is taken through k differentiable updates of the discriminator,

    theta_D^0 = theta_D,  theta_D^(j+1) = theta_D^j - eta * U(grad_theta_D L_D(theta_G, theta_D^j))
    f_K(theta_G, theta_D) = f(theta_G, theta_D^K(theta_G, theta_D))                   (Eq. 4-5)

and the generator follows d f_K / d theta_G, which includes the term through
d theta_D^K / d theta_G (Eq. 6-7): the generator sees how the discriminator would react
to it and stops chasing the discriminator from mode to mode. The discriminator's own update
is the ordinary one; the unrolled parameters are discarded after the generator's step.

In kdegen:

- The unrolled updates run on copies of the discriminator's parameters through
  ``torch.func.functional_call`` (batch-norm statistics on cloned buffers), with
  ``create_graph=True`` so the generator's gradient passes through every update;
  ``--first-order`` drops that path (the gradient then only sees theta_D^K).
- k (``--unroll-steps``) defaults to 5, the smaller of the paper's 2-D settings (it also
  reports 10). The update U is Adam, as the paper used, written out differentiably and
  started from the discriminator optimizer's moments when it has them (else zero), with
  eps inside the square root (m / sqrt(v + eps^2)) so its derivative stays finite when a
  gradient is exactly zero; ``--unroll-optimizer sgd`` uses plain gradient steps.
  The step size is ``--lr-d`` unless ``--unroll-lr`` sets it, and decays with the
  discriminator's under ``--lr-decay linear``.
- Every unrolled update and the final loss use one real minibatch and one batch of codes,
  so f_K is a deterministic function of theta_G as in Eq. 5.
- f is the value function of the chosen objective seen from the generator: the objective's
  generator loss on the fakes plus the negated real-data term of the discriminator's loss,
  which depends on theta_G only through theta_D^K (with the ``minimax`` objective this is
  exactly the paper's V(theta_G, theta_D^K)). Every registered discriminator loss is a
  real-data term plus a generated-data term, which is what makes that split possible.
  The logged ``g_loss`` is this f_K (up to a constant), not the plain generator loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from kdegen.config import option
from kdegen.errors import UsageError
from kdegen.methods.base import METHODS, DataSpec
from kdegen.methods.gan import GAN, GANConfig
from kdegen.objectives import Objective, gradient_penalty

UnrollOptimizer = Literal["adam", "sgd"]
Params = dict[str, Tensor]


@dataclass(frozen=True)
class UnrolledConfig(GANConfig):
    """Options of ``unrolled``: those of ``gan`` plus the unrolling."""

    unroll_steps: int = option(5, "discriminator updates k unrolled in the generator's loss", ge=0)
    unroll_optimizer: UnrollOptimizer = option("adam", "update rule of the unrolled steps")
    unroll_lr: float = option(0.0, "step size of the unrolled updates (0: --lr-d)", ge=0)
    first_order: bool = option(False, "drop the gradient through the unrolled updates")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.feature_matching:
            raise UsageError(
                "--feature-matching replaces the generator's loss that unrolling differentiates; "
                "use it with --method gan"
            )

    def resolved(self, spec: DataSpec) -> UnrolledConfig:
        base = super().resolved(spec)
        assert isinstance(base, UnrolledConfig)
        return replace(base, unroll_lr=self.unroll_lr or base.lr_d)


@dataclass(frozen=True)
class UnrollRule:
    """The differentiable update of the unrolled steps.

    Attributes:
        optimizer: "adam" or "sgd".
        lr: step size eta.
        betas: Adam's moment decay rates.
        eps: Adam's eps (inside the square root, see the module).
    """

    optimizer: str
    lr: float
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8


@dataclass
class AdamMoments:
    """Adam's first and second moments per parameter name and the steps taken so far."""

    m: Params
    v: Params
    t: int


def unroll(
    loss: Callable[[Params], Tensor],
    params: Params,
    steps: int,
    rule: UnrollRule,
    create_graph: bool = True,
    clip: float | None = None,
    moments: AdamMoments | None = None,
) -> Params:
    """Apply ``steps`` updates of ``rule`` minimising ``loss`` from ``params``.

    Args:
        loss: parameters -> scalar loss (the discriminator's).
        params: starting parameters (leaves that require grad, or values computed from them).
        steps: k.
        rule: the update.
        create_graph: keep the updates differentiable (second order); False gives the
            first-order shortcut (the gradients are constants).
        clip: clamp the parameters to [-clip, clip] after each update (weight clipping).
        moments: Adam's starting moments (zero when None).

    Returns:
        theta^k as a dict of the same names, differentiable w.r.t. whatever ``loss`` and
        ``params`` depend on (through the gradients only when ``create_graph``).
    """
    names = list(params)
    if rule.optimizer == "adam" and moments is None:
        zeros = {n: torch.zeros_like(p) for n, p in params.items()}
        moments = AdamMoments(zeros, dict(zeros), 0)
    for _ in range(steps):
        with torch.enable_grad():  # the updates need gradients even under no_grad
            grads = torch.autograd.grad(
                loss(params),
                [params[n] for n in names],
                create_graph=create_graph,
                allow_unused=True,
            )
        g = {
            n: torch.zeros_like(params[n]) if d is None else d
            for n, d in zip(names, grads, strict=True)
        }
        if rule.optimizer == "sgd":
            params = {n: params[n] - rule.lr * g[n] for n in names}
        else:
            assert moments is not None
            params, moments = _adam_step(params, g, moments, rule)
        if clip is not None:
            params = {n: p.clamp(-clip, clip) for n, p in params.items()}
    return params


def _adam_step(
    params: Params, g: Params, s: AdamMoments, rule: UnrollRule
) -> tuple[Params, AdamMoments]:
    b1, b2 = rule.betas
    t = s.t + 1
    m = {n: b1 * s.m[n] + (1 - b1) * g[n] for n in params}
    v = {n: b2 * s.v[n] + (1 - b2) * g[n] * g[n] for n in params}
    c1, c2 = 1 - b1**t, 1 - b2**t  # bias corrections
    new = {
        n: p - rule.lr * (m[n] / c1) / torch.sqrt(v[n] / c2 + rule.eps**2)
        for n, p in params.items()
    }
    return new, AdamMoments(m, v, t)


def unrolled_generator_loss(
    D: nn.Module,
    objective: Objective,
    real: Tensor,
    fake: Tensor,
    steps: int,
    rule: UnrollRule,
    first_order: bool = False,
    gp_weight: float = 0.0,
    clip: float | None = None,
    moments: AdamMoments | None = None,
    keep: frozenset[str] = frozenset(),
    d_loss_of: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """The generator's loss f_K through ``steps`` unrolled updates of discriminator ``D``.

    Args:
        D: the discriminator; its parameters are the starting point and stay untouched.
        objective: the GAN objective (its D loss drives the updates).
        real: the discriminator's input for real data (B, ...).
        fake: its input for generated data (B', ...), differentiable w.r.t. the generator.
        steps: k; 0 gives the objective's plain generator loss.
        rule: the unrolled update.
        first_order: treat the unrolled updates as constants w.r.t. the generator.
        gp_weight: weight of the gradient penalty in the unrolled D loss (0: none).
        clip: weight clipping bound of the unrolled updates (None: none).
        moments: Adam's starting moments.
        keep: names of D's parameters the updates leave as they are (frozen layers).
        d_loss_of: the discriminator's loss on (v_real, v_fake) (default: the objective's;
            with label heuristics, the one D is trained with).

    Returns:
        g_loss(D_K(fake)) - d_loss_real(D_K(real)) (up to a constant; see the module).
    """
    buffers = {n: b.clone() for n, b in D.named_buffers()}  # running stats stay D's own
    frozen = {n: p.detach() for n, p in D.named_parameters() if n in keep}
    loss_of = d_loss_of or objective.d_loss

    def critic(params: Params, x: Tensor) -> Tensor:
        out: Tensor = functional_call(D, ({**frozen, **params}, buffers), (x,))
        return out

    fixed = fake.detach() if first_order else fake

    def d_loss(params: Params) -> Tensor:
        loss = loss_of(critic(params, real), critic(params, fixed))
        if gp_weight:
            loss = loss + gp_weight * gradient_penalty(lambda x: critic(params, x), real, fixed)
        return loss

    start = {n: p.detach().requires_grad_(True) for n, p in D.named_parameters() if n not in keep}
    final = unroll(d_loss, start, steps, rule, not first_order, clip, moments)
    v_fake = critic(final, fake)
    # the real-data term of the D loss (its fake term evaluated at 0 is a constant)
    v_real = critic(final, real)
    real_term = objective.d_loss(v_real, torch.zeros_like(v_fake))
    return objective.g_loss(v_fake) - real_term


@METHODS.register("unrolled")
class UnrolledGAN(GAN[UnrolledConfig]):
    """A GAN whose generator differentiates through k unrolled discriminator updates."""

    Config = UnrolledConfig

    def generator_loss(self, real: Tensor) -> Tensor:
        c = self.config
        # the unrolled steps follow the discriminator's learning-rate schedule (--lr-decay)
        lr = c.unroll_lr * self.opt_d.param_groups[0]["lr"] / c.lr_d
        rule = UnrollRule(c.unroll_optimizer, lr, (c.beta1, c.beta2))
        penalty = self.objective.regularizer == "gradient-penalty"
        clipped = self.objective.regularizer == "weight-clipping"
        return unrolled_generator_loss(
            self.D,
            self.objective,
            self.real_input(real),
            self.fake_input(self.noise(real.shape[0])),
            c.unroll_steps,
            rule,
            c.first_order,
            c.gp_weight if penalty else 0.0,
            c.clip if clipped else None,
            self._moments(rule),
            frozenset(self.frozen_d),
            self.d_loss,
        )

    def _moments(self, rule: UnrollRule) -> AdamMoments | None:
        """The discriminator optimizer's Adam moments (so the unrolled steps continue its
        updates), or None (zero moments) when it has none or is not Adam."""
        if rule.optimizer != "adam" or not isinstance(self.opt_d, torch.optim.Adam):
            return None
        m, v, t = {}, {}, 0
        for name, p in self.D.named_parameters():
            if name in self.frozen_d:
                continue
            state = self.opt_d.state.get(p)
            if not state:
                return None
            m[name], v[name] = state["exp_avg"].detach(), state["exp_avg_sq"].detach()
            t = int(state["step"])
        return AdamMoments(m, v, t)
