"""Semi-supervised GAN ``ssgan`` (Salimans et al. 2016, "Improved Techniques for Training
GANs", Sec. 5; tutorial "Supervised Discriminator" and "Semi-Supervised Classification").

The discriminator is a K+1-way classifier: K logits l_1..l_K for the real classes, and
the "generated" class K+1 with its logit fixed at 0 (Salimans et al. note that
subtracting a function from every logit leaves the softmax unchanged), so

    p(y = k | x) = exp(l_k) / (Z(x) + 1),   p(y = K+1 | x) = 1 / (Z(x) + 1),
    Z(x) = sum_k exp(l_k),   D(x) = 1 - p(y = K+1 | x) = sigmoid(logsumexp_k l_k).

The loss is L = L_supervised + L_unsupervised. L_supervised is the cross-entropy of the
K-way softmax on labelled examples (the model's p(y | x, y < K+1)); L_unsupervised is the
GAN loss on the "realness" logit v(x) = logsumexp_k l_k(x). With the ``non-saturating``
objective that is exactly -E log D(x) - E log(1 - D(G(z))) of the paper; any registered
objective can take its place. The generator uses feature matching by default (Sec. 3.1:
||E f(x) - E f(G(z))||^2 on the discriminator's penultimate features f), which the paper
found best for semi-supervised learning; ``--no-feature-matching`` uses the objective's
generator loss on v instead.

Labels. ``--labeled N`` chooses N training examples, the same number per class, by a
fixed seed (:func:`~kdegen.methods.labelled.stratified_choice`); the other examples are
used without their labels. Each discriminator step takes the trainer's minibatch as the
unlabelled batch and draws an equally large labelled minibatch from the N (with N = 100
and batches of 64, a minibatch of the whole set would hold under two labelled examples).
``train_acc`` in metrics.jsonl is the accuracy on the unlabelled minibatches; ``kdegen
classify RUN --data mnist5k --split test`` reports the test accuracy.

The discriminator's normalisation defaults to layer normalisation (``--d-norm auto``):
a classifier should not depend on its batch, and real, fake and labelled examples go
through it in separate passes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdegen.config import option
from kdegen.errors import UsageError
from kdegen.methods.base import METHODS, DataSpec
from kdegen.methods.cgan import LabelledGAN, body_matching_loss, discriminator_base, net_options
from kdegen.methods.gan import GANConfig
from kdegen.methods.labelled import stratified_choice
from kdegen.nets import build_pair
from kdegen.nets.conditional import ClassHeadDiscriminator
from kdegen.nets.modes import evaluating


@dataclass(frozen=True)
class SSGANConfig(GANConfig):
    """Options of ``ssgan``: those of ``gan`` (feature matching on by default), the number of
    labelled examples and the weight of their loss."""

    feature_matching: bool = option(
        True, "generator loss ||mean f(x) - mean f(G(z))||^2 (Sec. 3.1) instead of the objective's"
    )
    labeled: int = option(100, "labelled examples, the same number per class (0: all)", ge=0)
    class_weight: float = option(1.0, "weight of the supervised cross-entropy", ge=0)

    def resolved(self, spec: DataSpec) -> Any:
        d_norm = "layer" if self.d_norm == "auto" else self.d_norm
        return GANConfig.resolved(replace(self, d_norm=d_norm), spec)


def class_probabilities(logits: Tensor) -> Tensor:
    """p(y | x) over K real classes and the generated class last, (B, K + 1), from the K
    logits (B, K) with the generated class's logit fixed at 0."""
    return torch.softmax(F.pad(logits, (0, 1)), 1)


def realness(logits: Tensor) -> Tensor:
    """The logit of D(x) = 1 - p(generated | x): logsumexp of the K class logits (B,)."""
    return torch.logsumexp(logits, 1)


@METHODS.register("ssgan")
class SSGAN(LabelledGAN[SSGANConfig]):
    """Generator G(z) and a K-logit discriminator trained on labelled and unlabelled data."""

    Config = SSGANConfig
    name = "ssgan"

    def __init__(self, config: SSGANConfig, spec: DataSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.labeled_x: Tensor | None = None
        self.labeled_y: Tensor | None = None

    def build(self, config: Any, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
        G, _ = build_pair(config.arch, config.latent, spec.shape, net_options(config))
        return G, ClassHeadDiscriminator(discriminator_base(config, spec.shape), self.classes)

    def fake(self, z: Tensor, y: Tensor) -> Tensor:
        return self.G(z)  # unconditional: y only sets the count

    def judge(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        logits = self.D(x)  # (B, K)
        return realness(logits), logits

    def matching_loss(self, real: Tensor, fake: Tensor, y: Tensor) -> Tensor:
        return body_matching_loss(self.D, real, fake)

    def bind_data(self, images: Tensor, labels: Tensor | None) -> None:
        """Choose the labelled examples (seeded, stratified) from the training set."""
        if labels is None:
            raise UsageError("--method ssgan needs labelled data; this data has no labels")
        n = self.config.labeled or len(labels)
        index = stratified_choice(labels, n).to(images.device)
        self.labeled_x, self.labeled_y = images[index], labels[index]

    def generator(self) -> nn.Module:
        return self.G

    def discriminator_step(self, real: Tensor, y: Tensor) -> dict[str, Tensor]:
        """D phase: the real batch without its labels (they are only logged as ``train_acc``),
        fakes, and a labelled batch of the same size drawn from the labelled examples."""
        if self.labeled_x is None or self.labeled_y is None:
            raise RuntimeError("bind_data must choose the labelled examples before training")
        self.G.train()
        self.D.train()
        pick = torch.randint(len(self.labeled_x), (real.shape[0],)).to(self.device)
        x_lab, y_lab = self.labeled_x[pick], self.labeled_y[pick]
        with torch.no_grad():
            fake = self.G(self.prior.sample(real.shape[0]))
        logits_real = self.D(real)
        loss = self.d_loss(realness(logits_real), realness(self.D(fake)))
        supervised = self.config.class_weight * F.cross_entropy(self.D(x_lab), y_lab)
        out = {
            "d_loss": loss.detach(),
            "class_loss": supervised.detach(),
            "train_acc": (logits_real.detach().argmax(1) == y).double().mean(),
        }
        return {**out, **self.update_discriminator(loss + supervised, real, fake, y_lab)}

    def sample_class(self, n: int, label: int, generator: torch.Generator | None = None) -> Tensor:
        raise UsageError("an ssgan generator is not conditional; --label needs a cgan or acgan run")

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (N, K) of the discriminator (eval mode)."""
        with evaluating(self.D):
            return self.D(x.to(self.device))
