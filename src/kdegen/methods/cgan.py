"""Conditional GAN ``cgan`` (Mirza & Osindero 2014), and what the labelled GANs share.

The generator and the discriminator both see the label: G(z, y) and D(x, y) (tutorial,
"Conditional GANs"; nets in :mod:`kdegen.nets.conditional`). Any registered objective
works on D's logit: the discriminator minimises d_loss(D(x, y), D(G(z, y), y)) and the
generator g_loss(D(G(z, y), y)), where the fakes of a step carry the labels of its real
minibatch, so both sides see the data's label frequencies. Wasserstein objectives get
n_critic critic steps, weight clipping or the gradient penalty as for ``gan``; minibatch
discrimination and feature matching (Salimans et al. 2016, Sec. 3.1-3.2) work as they do
for ``gan``, on the discriminator's features of the labelled input.

:class:`LabelledGAN` holds the machinery that ``cgan``, ``acgan`` and ``ssgan`` share:
the ``gan`` method's options (:class:`~kdegen.methods.gan.GANConfig`), the prior,
optimizers, learning-rate decay, and explicit discriminator and generator phases whose
networks and extra loss terms the subclasses choose.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdegen import distributed
from kdegen.config import option
from kdegen.methods.base import METHODS, Batch, DataSpec, Losses
from kdegen.methods.gan import AdversarialMethod, GANConfig, update_discriminator
from kdegen.methods.labelled import batch_labels, check_label, require_classes, row_labels
from kdegen.nets import NetOptions, build_pair
from kdegen.nets.conditional import (
    ClassHeadDiscriminator,
    ConditionalDiscriminator,
    ConditionalGenerator,
)
from kdegen.nets.minibatch import add_minibatch_discrimination, feature_matching_loss
from kdegen.nets.modes import evaluating, frozen


@dataclass(frozen=True)
class CGANConfig(GANConfig):
    """Options of ``cgan`` and ``acgan``: those of ``gan`` and the label embedding."""

    embed: int = option(
        0, "size of the label embedding joined to z (0: the number of classes)", ge=0
    )

    def resolved(self, spec: DataSpec) -> Any:
        config: Any = super().resolved(spec)
        return replace(config, embed=self.embed or int(spec.num_classes or 1))


def net_options(config: Any) -> NetOptions:
    """The architecture knobs of ``config`` (every NetOptions field the config has)."""
    return NetOptions(
        **{f.name: getattr(config, f.name) for f in fields(NetOptions) if hasattr(config, f.name)}
    )


def widened(shape: tuple[int, ...], extra: int) -> tuple[int, ...]:
    """``shape`` with ``extra`` more channels (images) or features (points)."""
    return (shape[0] + extra, *shape[1:])


def discriminator_base(config: Any, shape: tuple[int, ...]) -> nn.Module:
    """The configured architecture's discriminator for inputs of ``shape`` (B, *shape) -> (B,),
    with minibatch discrimination before its last layer when asked."""
    _, D = build_pair(config.arch, 1, shape, net_options(config))
    if config.minibatch_discrimination:
        add_minibatch_discrimination(D, config.minibatch_discrimination, config.minibatch_dim)
    return D


LC = TypeVar("LC", bound=GANConfig)


class LabelledGAN(AdversarialMethod[LC]):
    """A generator/discriminator pair trained with a registered objective, with labels.

    Subclasses build the networks (:meth:`build`) and say how to run them:
    :meth:`fake` generates for labels, :meth:`judge` returns D's real/fake logit and, for
    discriminators that classify, class logits, :meth:`matching_loss` is feature matching.
    One ``train_step`` performs n_critic discriminator updates and one generator update
    (on the last critic minibatch's labels), as the ``gan`` method does.
    """

    name = "cgan"

    def __init__(self, config: LC, spec: DataSpec, device: torch.device) -> None:
        self.classes = require_classes(spec, self.name)
        super().__init__(config, spec, device)

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        return self.build(self.config, self.spec)

    # ----- what subclasses choose ------------------------------------------------------

    def build(self, config: Any, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
        """The (generator, discriminator) pair: here G(z, y) and D(x, y)."""
        base_g, _ = build_pair(
            config.arch, config.latent + config.embed, spec.shape, net_options(config)
        )
        base_d = discriminator_base(config, widened(spec.shape, self.classes))
        G = ConditionalGenerator(base_g, config.latent, self.classes, config.embed)
        return G, ConditionalDiscriminator(base_d, self.classes)

    def fake(self, z: Tensor, y: Tensor) -> Tensor:
        """Generated samples (B, *shape) for codes z (B, k) and labels y (B,)."""
        return self.G(z, y)

    def judge(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """D's real/fake logits (B,) of samples labelled y, and class logits (B, K) or None."""
        return self.D(x, y), None

    def class_loss(self, logits: Tensor | None, y: Tensor) -> Tensor | None:
        """Weighted cross-entropy of class logits (None when D does not classify)."""
        return None

    def matching_loss(self, real: Tensor, fake: Tensor, y: Tensor) -> Tensor:
        """Feature matching on D's penultimate features of real and fake inputs labelled y."""
        D = self.D
        assert isinstance(D, ConditionalDiscriminator)
        return feature_matching_loss(D.base, D.inputs(real, y), D.inputs(fake, y))

    # ----- the shared phases -----------------------------------------------------------

    def train_step(self, batch: Batch) -> Losses:
        losses: dict[str, Tensor] = {}
        parts = batch.chunk(self.batches_per_step)
        for part in parts:
            losses.update(self.discriminator_step(part.x, batch_labels(part, self.name)))
        last = parts[-1]
        for _ in range(self.config.g_steps):  # D stays as it is in between
            losses.update(self.generator_step(last.x, batch_labels(last, self.name)))
        return {**losses, **self.heuristic_stats()}

    def discriminator_step(self, real: Tensor, y: Tensor) -> dict[str, Tensor]:
        """D phase: one update on a labelled real batch and fakes with the same labels."""
        self.train_mode()
        with torch.no_grad():
            fake = self.fake(self.prior.sample(real.shape[0]), y)
        v_real, c_real = self.judge(real, y)
        v_fake, c_fake = self.judge(fake, y)
        loss = self.d_loss(v_real, v_fake)
        out = {"d_loss": loss.detach()}
        for part, logits in (("real", c_real), ("fake", c_fake)):
            term = self.class_loss(logits, y)
            if term is not None:
                loss = loss + term
                out[f"class_{part}_loss"] = term.detach()
        return {**out, **self.update_discriminator(loss, real, fake, y)}

    def update_discriminator(
        self, loss: Tensor, real: Tensor, fake: Tensor, y: Tensor
    ) -> dict[str, Tensor]:
        """Add the objective's gradient penalty, step D, clip its weights if asked."""
        return update_discriminator(
            loss,
            lambda x: self.judge(x, y)[0],
            self.D,
            self.opt_d,
            self.objective,
            real,
            fake,
            self.config.gp_weight,
            self.config.clip,
        )

    def generator_step(self, real: Tensor, y: Tensor) -> dict[str, Tensor]:
        """G phase: one update of the generator for labels y through a frozen D.

        Args:
            real: the last real minibatch (B, *shape), for feature matching.
            y: its labels (B,), which the fakes get.
        """
        with frozen(self.D, keep_mode=True):
            fake = self.fake(self.prior.sample(len(y)), y)
            v_fake, c_fake = self.judge(fake, y)
            if self.config.feature_matching:
                loss = self.matching_loss(real, fake, y)
            else:
                loss = self.objective.g_loss(v_fake)
            out = {"g_loss": loss.detach()}
            term = self.class_loss(c_fake, y)
            if term is not None:
                loss = loss + term
                out["class_g_loss"] = term.detach()
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        distributed.average_gradients(self.G.parameters())
        self.opt_g.step()
        return out

    # ----- sampling --------------------------------------------------------------------

    def sample_for(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One sample per label of ``y`` (n,), in eval mode, in chunks of 1,024."""
        with evaluating(self.G):
            out = [
                self.fake(self.prior.sample(len(part), generator), part.to(self.device))
                for part in y.split(1024)
            ]
        return torch.cat(out) if out else torch.empty(0, *self.spec.shape, device=self.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples, one class per row of the sample grid (see :func:`row_labels`)."""
        return self.sample_for(row_labels(n, self.classes), generator)

    def sample_class(self, n: int, label: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples of class ``label``."""
        check_label(label, self.classes)
        return self.sample_for(torch.full((n,), label, dtype=torch.long), generator)


def body_matching_loss(D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """Feature matching on the penultimate features of a :class:`ClassHeadDiscriminator`."""
    assert isinstance(D, ClassHeadDiscriminator)
    return feature_matching_loss(D.body, real, fake)


def weighted_cross_entropy(logits: Tensor, y: Tensor, weight: float) -> Tensor:
    """``weight`` times the mean cross-entropy of class logits (B, K) against labels (B,)."""
    return weight * F.cross_entropy(logits, y)


@METHODS.register("cgan")
class CGAN(LabelledGAN[CGANConfig]):
    """Conditional GAN: G(z, y) and D(x, y) with any registered objective."""

    Config = CGANConfig
