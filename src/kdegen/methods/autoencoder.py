"""The plain autoencoder ``ae`` and what the autoencoder methods (vae, aae, gen) share.

An encoder E and decoder D trained on the reconstruction loss E||x - D(E(x))||^2 (the
first term of GENs Eq. 3, as a mean over pixels), with a latent *target* distribution
that a subclass pushes the codes towards and that drives the decoder when sampling:
the standard normal, or a mixture of Gaussians on a circle (GENs Sec. 5.4), optionally
with a few labelled examples tied to their class's mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import torch
from torch import Tensor, nn

from kdegen import distributed
from kdegen.config import option
from kdegen.errors import UsageError
from kdegen.methods.base import METHODS, Batch, DataSpec, Losses, Method, MethodConfig
from kdegen.nets.autoencoders import AUTOENCODERS, AutoencoderOptions, build_autoencoder
from kdegen.nets.dcgan import init_dcgan_weights
from kdegen.nets.modes import chunked, evaluating, sizes
from kdegen.priors import Normal, Prior

Target = Literal["normal", "mog"]


ACSelf = TypeVar("ACSelf", bound="AEConfig")


@dataclass(frozen=True)
class AEConfig(MethodConfig):
    """Options shared by ae, vae, aae and gen (flags of the same names)."""

    latent: int = option(8, "latent dimension l", ge=1)
    arch: str = option("auto", "encoder/decoder: fc, conv, or auto (conv for images)")
    width: int = option(32, "convolutional width multiplier", ge=1)
    hidden: int = option(512, "widest fully connected layer", ge=1)
    layers: int = option(2, "fully connected hidden layers", ge=1)
    lr: float = option(2e-4, "Adam learning rate (GENs Sec. 5.3)", gt=0)
    beta1: float = option(0.5, "Adam beta1", ge=0, lt=1)
    beta2: float = option(0.999, "Adam beta2", ge=0, lt=1)
    target: Target = option("normal", "latent target: normal, or mog (modes on a circle)")
    modes: int = option(10, "mixture components of --target mog", ge=1)
    labeled: int = option(0, "labelled examples pulled to their class's mode (--target mog)", ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch != "auto":
            AUTOENCODERS.get(self.arch)
        if self.labeled and self.target != "mog":
            raise UsageError("--labeled needs --target mog (one mode per class)")

    def resolved(self: ACSelf, spec: DataSpec) -> ACSelf:
        from dataclasses import replace

        arch = self.arch if self.arch != "auto" else ("conv" if spec.is_image else "fc")
        return replace(self, arch=arch)


AC = TypeVar("AC", bound=AEConfig)


def make_target(config: AEConfig, device: torch.device) -> Prior:
    """The latent target: N(0, I), or ``modes`` Gaussians on a circle (GENs Fig. 3)."""
    if config.target == "normal":
        return Normal(config.latent, device=device)
    from kdegen.priors import GaussianMixture

    return GaussianMixture.on_circle(config.modes, dim=config.latent, device=device)


@METHODS.register("ae")
class AutoEncoder(Method[AC]):
    """Encoder and decoder trained on reconstruction alone; samples decode target draws."""

    Config = AEConfig
    encoder_outputs = 1  # multiples of the latent size the encoder emits (2 for a VAE)

    def __init__(self, config: AC, spec: DataSpec, device: torch.device) -> None:
        config = config.resolved(spec)
        super().__init__(config, spec, device)
        options = AutoencoderOptions(config.width, config.hidden, config.layers)
        E, D = build_autoencoder(
            config.arch, spec.shape, config.latent, config.latent * self.encoder_outputs, options
        )
        if spec.is_image and config.arch == "conv":
            init_dcgan_weights(E)
            init_dcgan_weights(D)
        self.E: nn.Module = E.to(device)
        self.D: nn.Module = D.to(device)
        self.target = make_target(config, device)
        self.labeled = self._labeled_set(config, spec, device)
        self.opt = self.make_optimizer([*self.E.parameters(), *self.D.parameters()])

    def make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        c = self.config
        return torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2))

    @staticmethod
    def _labeled_set(config: AEConfig, spec: DataSpec, device: torch.device) -> Tensor:
        """Mask (N,) of the training examples whose labels may be used (a seeded choice)."""
        mask = torch.zeros(max(spec.size, 1), dtype=torch.bool, device=device)
        if config.labeled:
            if spec.num_classes is None or spec.num_classes != config.modes:
                raise UsageError(
                    f"--labeled needs labelled data with --modes classes "
                    f"(the data has {spec.num_classes})"
                )
            g = torch.Generator().manual_seed(1234)
            mask[torch.randperm(spec.size, generator=g)[: config.labeled].to(device)] = True
        return mask

    def networks(self) -> dict[str, nn.Module]:
        return {"E": self.E, "D": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def generator(self) -> nn.Module:
        return self.D

    def prior_for_sampling(self) -> Prior:
        return self.target

    def codes(self, x: Tensor) -> Tensor:
        """Training-time codes of a batch (B, l), with gradients."""
        return self.E(x)

    def encode(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Deterministic codes (N, l) in eval mode, in chunks (a VAE gives its means)."""
        empty = torch.empty(0, self.config.latent, device=self.device)
        with evaluating(self.E):
            return chunked(lambda part: self.E(part)[:, : self.config.latent], x, batch_size, empty)

    def reconstruction(self, x: Tensor, z: Tensor) -> Tensor:
        """Mean squared error per pixel, averaged over the batch."""
        return (self.D(z) - x).pow(2).mean()

    def train_step(self, batch: Batch) -> Losses:
        self.E.train()
        self.D.train()
        z = self.codes(batch.x)
        rec = self.reconstruction(batch.x, z)
        extra = self.latent_loss(z, batch)
        loss = rec + sum(extra.values(), torch.zeros((), device=self.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients([*self.E.parameters(), *self.D.parameters()])
        self.opt.step()
        self.after_step(z.detach(), batch)
        return {"rec_loss": rec.detach(), **{k: v.detach() for k, v in extra.items()}}

    def latent_loss(self, z: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Terms added to the reconstruction loss (named ``*_loss``); none for ``ae``."""
        return {}

    def after_step(self, z: Tensor, batch: Batch) -> None:
        """Called with the batch's detached codes after each update."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        prior = self.prior_for_sampling()
        with evaluating(self.D):
            out = [self.D(prior.sample(m, generator).to(self.device)) for m in sizes(n, 1024)]
        return torch.cat(out) if out else torch.empty(0, *self.spec.shape)
