"""The GAN method: explicit discriminator and generator phases for any registered objective.

Goodfellow et al.'s alternating minibatch training (tutorial "GAN Objective"), with
n_critic discriminator updates per generator update for Wasserstein critics
(Arjovsky et al.; Gulrajani et al.), weight clipping or the gradient penalty as the
objective asks, and the noise drawn from a prior object so that the KDE prior of
Generator Reversal (Sec. 3.2) can drive the same generator later.

Two of Salimans et al.'s "Improved Techniques for Training GANs" (2016) are options of every
method of the family: minibatch discrimination (Sec. 3.2, :mod:`kdegen.nets.minibatch`)
before the discriminator's last layer, and feature matching (Sec. 3.1) as the generator's
loss, ||E f(x) - E f(G(z))||^2 on the discriminator's penultimate features f (the
discriminator keeps training on the objective).

Subclasses change what the discriminator sees through :meth:`GAN.real_input` and
:meth:`GAN.fake_input` (packed samples for PacGAN, (x, z) pairs for BiGAN) and the
generator's loss through :meth:`GAN.generator_loss` (unrolled GAN).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import Tensor, nn

from kdegen import distributed
from kdegen.config import option
from kdegen.methods.base import METHODS, Batch, DataSpec, Losses, Method, MethodConfig
from kdegen.methods.heuristics import (
    FreezeFrom,
    InstanceNoise,
    check_heuristics,
    discriminator_loss,
    freeze_layers,
    noise_std,
)
from kdegen.nets import ARCHS, NetOptions, build_pair, init_dcgan_weights
from kdegen.nets.minibatch import add_minibatch_discrimination, feature_matching_loss
from kdegen.nets.modes import evaluating, frozen, sizes
from kdegen.objectives import OBJECTIVES, Objective, gradient_penalty
from kdegen.priors import PRIORS, Prior, make_prior

GANOptimizer = Literal["adam", "rmsprop"]
DNorm = Literal["auto", "batch", "layer", "none"]
Decay = Literal["none", "linear"]


AOSelf = TypeVar("AOSelf", bound="AdversarialOptions")
GCSelf = TypeVar("GCSelf", bound="GANConfig")


@dataclass(frozen=True)
class AdversarialOptions(MethodConfig):
    """What every adversarial method (the GAN family, ModNet) sets the same way: the
    objective and how both players learn."""

    objective: str = option("non-saturating", "GAN objective (see `kdegen objectives`)")
    lr_g: float = option(0.0, "generator learning rate (0: 2e-4 for images, 1e-3 for points)", ge=0)
    lr_d: float = option(0.0, "discriminator learning rate (0: as for --lr-g)", ge=0)
    lr_decay: Decay = option("none", "learning-rate schedule: none, or linear to 0 at the end")
    beta1: float = option(0.5, "Adam beta1", ge=0, lt=1)
    beta2: float = option(0.999, "Adam beta2", ge=0, lt=1)
    gp_weight: float = option(0.0, "wgan-gp penalty weight (0: 10 for images, 1 for points)", ge=0)
    clip: float = option(0.01, "weight clipping bound c (wgan)", gt=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        OBJECTIVES.get(self.objective)

    def resolved(self: AOSelf, spec: DataSpec) -> AOSelf:
        """Learning rates and penalty weight for this data."""
        lr_g = self.lr_g or (2e-4 if spec.is_image else 1e-3)
        lr_d = self.lr_d or lr_g
        # Gulrajani et al.'s lambda = 10 is for images; on the 2-D mixtures it blurs the modes
        gp_weight = self.gp_weight or (10.0 if spec.is_image else 1.0)
        return replace(self, lr_g=lr_g, lr_d=lr_d, gp_weight=gp_weight)


def decay_learning_rates(
    schedule: Decay, pairs: list[tuple[torch.optim.Optimizer, float]], step: int, total: int
) -> None:
    """Set each optimizer's learning rate for ``step`` of ``total`` (linear: to 0 at the end)."""
    if schedule == "linear":
        factor = max(0.0, 1.0 - step / total)
        for opt, lr in pairs:
            for group in opt.param_groups:
                group["lr"] = lr * factor


@dataclass(frozen=True)
class GANConfig(AdversarialOptions):
    """Options of the ``gan`` method (flags of the same names)."""

    prior: str = option("normal", "latent prior: normal or uniform")
    latent: int = option(0, "latent dimension k (0: 100 for images, the data's for points)", ge=0)
    arch: str = option("auto", "networks: dcgan, reversal-appendix, mlp, or auto")
    width: int = option(32, "DCGAN width multiplier (filters of the full-resolution layer)", ge=1)
    hidden: int = option(128, "MLP hidden units", ge=1)
    layers: int = option(3, "MLP hidden layers", ge=1)
    d_norm: DNorm = option("auto", "discriminator normalisation (auto: layer with a penalty)")
    n_critic: int = option(0, "discriminator steps per generator step (0: 5 for Wasserstein)", ge=0)
    optimizer: GANOptimizer = option("adam", "update rule of both networks")
    minibatch_discrimination: int = option(
        0,
        "minibatch-discrimination kernels B before D's last layer (0: off; Salimans et al.)",
        ge=0,
    )
    minibatch_dim: int = option(5, "dimension C of each minibatch-discrimination kernel", ge=1)
    feature_matching: bool = option(
        False, "generator loss ||mean f(x) - mean f(G(z))||^2 on D's penultimate features"
    )
    # the training heuristics of the thesis, Sec. 2.4.1 (kdegen.methods.heuristics)
    g_steps: int = option(1, "generator updates per discriminator update (the first GAN: 2)", ge=1)
    label_smoothing: float = option(
        1.0,
        "target of real examples in D's loss (one-sided smoothing, e.g. 0.9; 1: off)",
        gt=0,
        le=1,
    )
    label_flip: float = option(
        0.0, "probability that a real example's target is flipped to fake (0: off)", ge=0, lt=1
    )
    instance_noise: float = option(
        0.0, "std s of Gaussian noise added to D's real and fake inputs (0: off)", ge=0
    )
    instance_noise_decay: float = option(
        1000.0, "steps over which the instance noise std falls by a factor e", gt=0
    )
    freeze_d_layers: int = option(
        0, "discriminator weight layers kept at their random initial weights (0: off)", ge=0
    )
    freeze_d_from: FreezeFrom = option(
        "input", "count --freeze-d-layers from D's input or from its output"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        PRIORS.get(self.prior)
        check_heuristics(self)
        if self.arch != "auto":
            ARCHS.get(self.arch)

    def resolved(self: GCSelf, spec: DataSpec) -> GCSelf:
        """Replace the automatic choices by what they mean for this objective and data."""
        base = AdversarialOptions.resolved(self, spec)
        wasserstein = OBJECTIVES.get(self.objective).name in ("wgan", "wgan-gp")
        n_critic = self.n_critic or (5 if wasserstein else 1)
        # a per-sample gradient penalty is meaningless through batch statistics
        penalty = OBJECTIVES.get(self.objective).regularizer == "gradient-penalty"
        d_norm = self.d_norm if self.d_norm != "auto" else ("layer" if penalty else "batch")
        arch = self.arch if self.arch != "auto" else ("dcgan" if spec.is_image else "mlp")
        latent = self.latent or (100 if spec.is_image else spec.shape[0])
        return replace(base, n_critic=n_critic, d_norm=d_norm, arch=arch, latent=latent)


def make_optimizer(
    name: str, params: Any, lr: float, betas: tuple[float, float]
) -> torch.optim.Optimizer:
    """Adam with ``betas`` or RMSProp (the Generator Reversal appendix's choice)."""
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=betas)


def update_discriminator(
    loss: Tensor,
    critic: Callable[[Tensor], Tensor],
    net: nn.Module,
    opt: torch.optim.Optimizer,
    objective: Objective,
    real: Tensor,
    fake: Tensor,
    gp_weight: float,
    clip: float,
) -> dict[str, Tensor]:
    """Finish a discriminator update: the objective's regulariser, the step, the clipping.

    Args:
        loss: the discriminator's loss so far (objective and any class terms).
        critic: the real/fake score the gradient penalty differentiates, x -> (B,).
        net: the discriminator, whose gradients are averaged across processes.
        opt: its optimizer.
        objective: asks for a gradient penalty (weight ``gp_weight``) or weight clipping
            to [-clip, clip], or neither.
        real, fake: the batches the penalty interpolates between.

    Returns:
        ``{"gp_loss": ...}`` when a penalty was added, else ``{}``.
    """
    out = {}
    if objective.regularizer == "gradient-penalty":
        gp = gradient_penalty(critic, real, fake)
        loss = loss + gp_weight * gp
        out["gp_loss"] = gp.detach()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(net.parameters())
    opt.step()
    if objective.regularizer == "weight-clipping":
        with torch.no_grad():
            for p in net.parameters():
                if p.requires_grad:  # frozen layers (--freeze-d-layers) stay as they are
                    p.clamp_(-clip, clip)
    return out


GC = TypeVar("GC", bound=GANConfig)


class AdversarialMethod(Method[GC]):
    """What every GAN-family method shares: an objective, a prior, a generator and a
    discriminator (built by :meth:`build_networks`, DCGAN-initialised for images), their
    optimizers, and the learning-rate schedule."""

    def __init__(self, config: GC, spec: DataSpec, device: torch.device) -> None:
        config = config.resolved(spec)
        super().__init__(config, spec, device)
        self.objective: Objective = OBJECTIVES.get(config.objective)
        self.prior: Prior = make_prior(config.prior, config.latent, device)
        G, D = self.build_networks()
        if spec.is_image:
            init_dcgan_weights(G)
            init_dcgan_weights(D)
        self.G: nn.Module = G.to(device)
        self.D: nn.Module = D.to(device)
        self.build_extra_networks()
        freeze_layers(self.D, config.freeze_d_layers, config.freeze_d_from)
        self.frozen_d = {n for n, p in self.D.named_parameters() if not p.requires_grad}
        self.noise_hook = InstanceNoise(self.D) if config.instance_noise > 0 else None
        betas = (config.beta1, config.beta2)
        params = self.generator_parameters()
        trainable = [p for p in self.D.parameters() if p.requires_grad]
        self.opt_g = make_optimizer(config.optimizer, params, config.lr_g, betas)
        self.opt_d = make_optimizer(config.optimizer, trainable, config.lr_d, betas)
        self.batches_per_step = config.n_critic

    @abstractmethod
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """The generator and the discriminator."""

    def build_extra_networks(self) -> None:
        """Create networks beside G and D (on ``self.device``) before the optimizers are made."""

    def generator_parameters(self) -> list[nn.Parameter]:
        """What the generator phase updates (G; BiGAN adds its encoder)."""
        return list(self.G.parameters())

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def prior_for_sampling(self) -> Prior:
        return self.prior

    def set_progress(self, step: int, total: int) -> None:
        c = self.config
        pairs = [(self.opt_g, c.lr_g), (self.opt_d, c.lr_d)]
        decay_learning_rates(c.lr_decay, pairs, step, total)
        if self.noise_hook is not None:
            self.noise_hook.std = noise_std(c.instance_noise, c.instance_noise_decay, step)

    def d_loss(self, v_real: Tensor, v_fake: Tensor) -> Tensor:
        """The objective's discriminator loss, with the label heuristics asked for."""
        return discriminator_loss(self.objective, self.config, v_real, v_fake)

    def heuristic_stats(self) -> dict[str, Tensor]:
        """What the heuristics log: the instance noise std of this step."""
        if self.noise_hook is None:
            return {}
        return {"instance_noise": torch.tensor(self.noise_hook.std, dtype=torch.float64)}

    def train_mode(self) -> None:
        """Put every network in training mode."""
        for net in self.networks().values():
            net.train()


@METHODS.register("gan")
class GAN(AdversarialMethod[GC]):
    """Generator G and discriminator D trained with a registered objective.

    One ``train_step`` performs n_critic discriminator updates (each on its own real
    minibatch) and one generator update.
    """

    Config = GANConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # Generator Reversal, App. A: latent 200, RMSProp 3e-4, minibatches of 100
        "reversal-appendix": {
            "arch": "reversal-appendix",
            "latent": 200,
            "optimizer": "rmsprop",
            "lr_g": 3e-4,
            "lr_d": 3e-4,
            "batch_size": 100,
        },
    }

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """The generator (B, k) -> (B, *shape) and the discriminator (its input) -> (B,),
        with minibatch discrimination before D's last layer if asked."""
        c = self.config
        options = NetOptions(c.width, c.hidden, c.layers, c.d_norm)
        G, D = build_pair(c.arch, c.latent, self.spec.shape, options)
        if c.minibatch_discrimination:
            add_minibatch_discrimination(D, c.minibatch_discrimination, c.minibatch_dim)
        return G, D

    def generator(self) -> nn.Module:
        return self.G

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Latent codes (n, k) that drive the generator: draws from the prior."""
        return self.prior.sample(n, generator)

    def real_input(self, x: Tensor) -> Tensor:
        """What the discriminator sees of a real batch (B, *shape): the batch itself."""
        return x

    def fake_input(self, z: Tensor) -> Tensor:
        """What the discriminator sees of the generator's output for codes z (B, k)."""
        out: Tensor = self.G(z)
        return out

    def train_step(self, batch: Batch) -> Losses:
        losses: dict[str, Tensor] = {}
        parts = batch.chunk(self.config.n_critic)
        for part in parts:
            losses.update(self.discriminator_step(part.x))
        for _ in range(self.config.g_steps):  # D stays as it is in between
            losses.update(self.generator_step(parts[-1].x))
        return {**losses, **self.heuristic_stats()}

    def discriminator_step(self, real: Tensor) -> dict[str, Tensor]:
        """D phase: one update of the discriminator on a real batch and fresh fakes."""
        self.train_mode()
        with torch.no_grad():
            real_in = self.real_input(real)
            fake_in = self.fake_input(self.noise(real.shape[0]))
        loss = self.d_loss(self.D(real_in), self.D(fake_in))
        return {
            "d_loss": loss.detach(),
            **update_discriminator(
                loss,
                self.D,
                self.D,
                self.opt_d,
                self.objective,
                real_in,
                fake_in,
                self.config.gp_weight,
                self.config.clip,
            ),
        }

    def generator_step(self, real: Tensor) -> dict[str, Tensor]:
        """G phase: one update of the generator through a frozen discriminator.

        Args:
            real: the last real batch (B, *shape): its size sets the number of fakes, and
                feature matching and BiGAN's encoder use its contents.
        """
        self.train_mode()
        with frozen(self.D, keep_mode=True):  # no weight gradients for D in this phase
            loss = self.generator_loss(real)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        params = self.generator_parameters()
        distributed.average_gradients(params)
        self.opt_g.step()
        return {"g_loss": loss.detach()}

    def generator_loss(self, real: Tensor) -> Tensor:
        """The generator's loss on as many fresh fakes as ``real`` has rows."""
        fake_in = self.fake_input(self.noise(real.shape[0]))
        if self.config.feature_matching:
            return feature_matching_loss(self.D, self.real_input(real), fake_in)
        return self.objective.g_loss(self.D(fake_in))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        with evaluating(self.G):
            out = [self.G(self.noise(m, generator)) for m in sizes(n, 1024)]
        return torch.cat(out) if out else torch.empty(0, *self.spec.shape, device=self.device)
