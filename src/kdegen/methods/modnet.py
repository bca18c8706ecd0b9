"""ModNet, the modification network (thesis Ch. 2: Sec. 2.2 Eq. 2.2-2.7, Sec. 2.5, and the
training algorithm box).

A U-Net G (:class:`kdegen.nets.unet.UNet`) takes an image x and a target label y_t and
outputs a delta image that is added to x; the result, bounded to [-1, 1], should look
real (a discriminator D) and be classified as y_t (a classifier), while changing x as
little as possible (an L1 penalty). Every term is a loss that the update *descends*:

    D phase:  d_loss(D(x), D(G(y_t, x)))                          Eq. 2.4 (any objective)
              + w [CE(cls(x), y) (+ CE(cls(G(y_t, x)), y_t))]     Eq. 2.5 (see 6.)
    G phase:  g_loss(D(G(y_t, x))) + w CE(cls(G(y_t, x)), y_t)    Eq. 2.3, Eq. 2.5
              + lambda mean |x - G(y_t, x)|                       Eq. 2.6-2.7

Two variants (Sec. 2.5.1, Fig. 2.5): ``--variant shared``, D has a real/fake logit and
K class logits (as in Odena et al.'s AC-GAN) and cls is D; ``--variant separate``, cls is
its own network C (the small CNN of :mod:`kdegen.nets.classifier`), trained on the
same Eq. 2.5 loss, optionally pretrained on the training split first
(``--pretrain-epochs``) and frozen (``--freeze-classifier``): then G learns changes that
make a fixed classifier predict the target, the interpretability use of Sec. 2.5.3.

Choices where the algorithm box is ambiguous or contradicts Eq. 2.2-2.7:

1. The D update says "ascending its stochastic gradient" of a sum of negative
   log-likelihoods; ascending would make D worse. kdegen descends it (Eq. 2.4 + 2.5).
2. The G update's adversarial term reads -log(1 - sigma(D(G))); descending that pushes
   fakes towards "fake". kdegen uses Eq. 2.3, -log sigma(D(G)), the ``non-saturating``
   objective's g_loss (``--objective minimax`` gives log(1 - sigma(D(G))) instead).
3. The G update writes "- ||x_t - G(y_t, x_t)||_1" without lambda; descending a negative
   distance rewards large changes. kdegen adds + lambda L1 as Eq. 2.6-2.7 say.
4. L1 is the mean absolute change per pixel, the "average l1 penalty" of the box's note,
   so lambda does not depend on the image size (the thesis's lambda in [1e-5, 1e-3] was
   for a summed penalty).
5. Target labels y_t are uniform over the classes other than the source image's (the
   augmentation of Sec. 2.5.4 generates "the other nine labels"), drawn afresh for each
   phase; the conditioning images are the step's minibatch, which is also D's real batch
   (the box draws its sets V and U independently from the same data).
6. Eq. 2.5 (and Fig. 2.5's caption) also trains the classifier to label generated
   images as their targets. Then G and the classifier share the goal "generated image
   -> target" and agree on faint marks that no other classifier reads (the README's
   ModNet paragraph has the figures). kdegen's default trains the classifier on real
   images only, so G has to make what real digits of the target class look like to it;
   ``--classify-fakes`` is Eq. 2.5 as printed.

Combining the delta. Fig. 2.5 adds the delta and then applies a tanh, which would map an
unchanged image x to tanh(x) != x. kdegen adds the delta u in pre-tanh space,

    out = tanh(atanh(x~) + u) = x + tanh(u) (1 - x~^2) / (1 + x~ tanh(u)),

with x~ = x clamped to [-1 + m, 1 - m] (``--margin`` m); the second form (the tanh
addition formula) is the one computed: it equals the first for |x| <= 1 - m, gives back
x exactly when u = 0 (even for pixels at +-1, where atanh is infinite), and lets
saturated background pixels change (d out / d u = 1 - x~^2 > 0 at u = 0). A final clamp
to [-1, 1] only acts where |x| > 1 - m. ``--combine clip`` is the thesis's other rule
(Sec. 2.5.1), out = clip(x + tanh(u), -1, 1): a tanh-bounded delta added in pixel space,
also exactly x when u = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdegen import distributed
from kdegen.config import option
from kdegen.data import ImageData
from kdegen.errors import UsageError
from kdegen.methods.base import METHODS, Batch, DataSpec, Losses, Method
from kdegen.methods.gan import (
    AdversarialOptions,
    decay_learning_rates,
    make_optimizer,
    update_discriminator,
)
from kdegen.methods.labelled import (
    batch_labels,
    check_label,
    other_labels,
    require_classes,
    row_labels,
)
from kdegen.nets import NetOptions, build_pair, init_dcgan_weights
from kdegen.nets import classifier as cnn
from kdegen.nets.conditional import ClassHeadDiscriminator
from kdegen.nets.modes import evaluating, frozen
from kdegen.nets.unet import UNet
from kdegen.objectives import OBJECTIVES, Objective

Variant = Literal["shared", "separate"]
Combine = Literal["tanh", "clip"]
ModNetNorm = Literal["layer", "batch", "none"]


@dataclass(frozen=True)
class ModNetConfig(AdversarialOptions):
    """Options of ``modnet`` (flags of the same names; the objective and learning rates as
    for the GAN family, where the discriminator's rate is also the classifier's)."""

    variant: Variant = option("shared", "shared: D also classifies; separate: its own classifier")
    lam: float = option(
        2.0, "weight lambda of the L1 penalty (mean absolute change per pixel)", ge=0
    )
    class_weight: float = option(1.0, "weight w of the label cross-entropy (Eq. 2.5)", ge=0)
    combine: Combine = option(
        "tanh", "tanh: delta added before a tanh; clip: clip(x + tanh(delta))"
    )
    margin: float = option(
        0.05, "--combine tanh: pixels clamped to +-(1 - margin) before atanh", gt=0, lt=1
    )
    width: int = option(32, "filters at full resolution of the U-Net and of D", ge=1)
    depth: int = option(0, "U-Net halvings (0: while the image side is at least 8)", ge=0)
    d_norm: ModNetNorm = option("layer", "discriminator normalisation")
    g_steps: int = option(1, "generator updates per discriminator update (k of the box)", ge=1)
    pretrain_epochs: int = option(0, "--variant separate: classifier epochs before the GAN", ge=0)
    freeze_classifier: bool = option(False, "--variant separate: never update the classifier")
    classify_fakes: bool = option(
        False, "the classifier learns generated images as their targets (Eq. 2.5 as printed)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant == "shared" and (self.pretrain_epochs or self.freeze_classifier):
            raise UsageError("--pretrain-epochs and --freeze-classifier need --variant separate")
        if self.freeze_classifier and not self.pretrain_epochs:
            raise UsageError(
                "--freeze-classifier needs --pretrain-epochs > 0 "
                "(a frozen untrained classifier teaches nothing)"
            )


def apply_delta(x: Tensor, u: Tensor, combine: str = "tanh", margin: float = 0.05) -> Tensor:
    """Add the generator's output ``u`` to images ``x`` in [-1, 1] (see the module docstring).

    Args:
        x: images (B, C, H, W) in [-1, 1].
        u: unbounded deltas of the same shape.
        combine: "tanh" (added before a tanh) or "clip" (clip(x + tanh(u), -1, 1)).
        margin: pixels are clamped to +-(1 - margin) for the tanh rule.

    Returns:
        Images in [-1, 1]; exactly ``x`` where ``u`` is 0.
    """
    t = torch.tanh(u)
    if combine == "clip":
        return (x + t).clamp(-1.0, 1.0)
    xc = x.clamp(-1.0 + margin, 1.0 - margin)
    return (x + t * (1 - xc * xc) / (1 + xc * t)).clamp(-1.0, 1.0)


@METHODS.register("modnet")
class ModNet(Method[ModNetConfig]):
    """U-Net modifier G(y_t, x), discriminator D and a classifier (D itself or C)."""

    Config = ModNetConfig

    def __init__(self, config: ModNetConfig, spec: DataSpec, device: torch.device) -> None:
        config = config.resolved(spec)
        super().__init__(config, spec, device)
        if not spec.is_image:
            raise UsageError(f"--method modnet needs images, the data has shape {spec.shape}")
        self.classes = K = require_classes(spec, "modnet")
        self.objective: Objective = OBJECTIVES.get(config.objective)
        c, h, w = spec.shape
        self.G: nn.Module = UNet(c, K, (h, w), config.width, config.depth)
        options = NetOptions(width=config.width, d_norm=config.d_norm)
        _, base_d = build_pair("dcgan", 1, spec.shape, options)
        shared = config.variant == "shared"
        self.D: nn.Module = ClassHeadDiscriminator(base_d, 1 + K) if shared else base_d
        init_dcgan_weights(self.G)
        init_dcgan_weights(self.D)
        self.G, self.D = self.G.to(device), self.D.to(device)
        betas = (config.beta1, config.beta2)
        self.opt_g = make_optimizer("adam", self.G.parameters(), config.lr_g, betas)
        self.opt_d = make_optimizer("adam", self.D.parameters(), config.lr_d, betas)
        self.C: nn.Module | None = None
        self.opt_c: torch.optim.Optimizer | None = None
        if not shared:
            self.C = cnn.build(c, K, cnn.ClassifierConfig()).to(device)
            if config.freeze_classifier:
                self.C.requires_grad_(False)
            else:
                self.opt_c = make_optimizer("adam", self.C.parameters(), config.lr_d, betas)
        self.pretrained = False
        self.sources: Tensor | None = None  # training images that ``sample`` modifies

    # ----- the method contract ---------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, **({"C": self.C} if self.C is not None else {})}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"G": self.opt_g, "D": self.opt_d}
        return {**opts, **({"C": self.opt_c} if self.opt_c is not None else {})}

    def set_progress(self, step: int, total: int) -> None:
        lr_g, lr_d = self.config.lr_g, self.config.lr_d
        pairs = [(self.opt_g, lr_g), (self.opt_d, lr_d)]
        pairs += [(self.opt_c, lr_d)] if self.opt_c is not None else []
        decay_learning_rates(self.config.lr_decay, pairs, step, total)

    def extra_state(self) -> dict[str, Any]:
        return {"pretrained": self.pretrained}

    def load_extra_state(self, state: Any) -> None:
        self.pretrained = bool(state.get("pretrained", False))

    def bind_data(self, images: Tensor, labels: Tensor | None) -> None:
        """Keep the training images for ``sample``; pretrain the classifier if asked."""
        if labels is None:
            raise UsageError("--method modnet needs labelled data; this data has no labels")
        self.sources = images
        if self.config.pretrain_epochs and not self.pretrained:
            assert self.C is not None
            data = ImageData(
                images.cpu(), labels.cpu(), "modnet classifier", num_classes=self.classes
            )
            settings = cnn.ClassifierConfig(epochs=self.config.pretrain_epochs, min_steps=1)
            trained = cnn.train(data, settings, self.device, progress=False)
            self.C.load_state_dict(trained.state_dict())
            self.pretrained = True

    # ----- the networks ----------------------------------------------------------------

    def modify(self, x: Tensor, target: Tensor) -> Tensor:
        """G(y_t, x): images (B, C, H, W) changed towards labels ``target`` (B,)."""
        return apply_delta(x, self.G(x, target), self.config.combine, self.config.margin)

    def judge(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """D's real/fake logits (B,) and, for the shared variant, its class logits (B, K)."""
        if self.C is None:
            out = self.D(x)  # (B, 1 + K)
            return out[:, 0], out[:, 1:]
        return self.D(x), None

    def class_logits(self, x: Tensor, shared_logits: Tensor | None) -> Tensor:
        """The classifier's logits (B, K): D's (already computed) or C's."""
        if shared_logits is not None:
            return shared_logits
        assert self.C is not None
        return self.C(x)

    # ----- training --------------------------------------------------------------------

    def train_step(self, batch: Batch) -> Losses:
        x, y = batch.x, batch_labels(batch, "modnet")
        for net in self.networks().values():
            net.train()
        target = other_labels(y, self.classes)
        with torch.no_grad():
            fake = self.modify(x, target)
        losses = self.discriminator_step(x, y, fake, target)
        if self.opt_c is not None:
            losses.update(self.classifier_step(x, y, fake, target))
        for _ in range(self.config.g_steps):
            losses.update(self.generator_step(x, other_labels(y, self.classes)))
        return losses

    def discriminator_step(
        self, x: Tensor, y: Tensor, fake: Tensor, target: Tensor
    ) -> dict[str, Tensor]:
        """D phase: Eq. 2.4, plus Eq. 2.5 when D is the classifier."""
        v_real, c_real = self.judge(x)
        v_fake, c_fake = self.judge(fake)
        loss = self.objective.d_loss(v_real, v_fake)
        out = {"d_loss": loss.detach()}
        if c_real is not None and c_fake is not None:
            label = self.label_loss(c_real, y, c_fake, target)
            loss = loss + label
            out["label_loss"] = label.detach()
        return {
            **out,
            **update_discriminator(
                loss,
                lambda v: self.judge(v)[0],
                self.D,
                self.opt_d,
                self.objective,
                x,
                fake,
                self.config.gp_weight,
                self.config.clip,
            ),
        }

    def label_loss(
        self, real_logits: Tensor, y: Tensor, fake_logits: Tensor | None, target: Tensor
    ) -> Tensor:
        """Eq. 2.5: w [CE(real, y) + CE(generated, y_t)], the second term unless
        ``--no-classify-fakes``."""
        loss = F.cross_entropy(real_logits, y)
        if fake_logits is not None and self.config.classify_fakes:
            loss = loss + F.cross_entropy(fake_logits, target)
        return self.config.class_weight * loss

    def classifier_step(
        self, x: Tensor, y: Tensor, fake: Tensor, target: Tensor
    ) -> dict[str, Tensor]:
        """C phase (separate variant): Eq. 2.5 on real images and generated ones."""
        assert self.C is not None and self.opt_c is not None
        fake_logits = self.C(fake) if self.config.classify_fakes else None
        loss = self.label_loss(self.C(x), y, fake_logits, target)
        self.opt_c.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.C.parameters())
        self.opt_c.step()
        return {"label_loss": loss.detach()}

    def generator_step(self, x: Tensor, target: Tensor) -> dict[str, Tensor]:
        """G phase: Eq. 2.3 + w Eq. 2.5 (generated term) + lambda Eq. 2.6."""
        trainable = [self.D] + ([self.C] if self.opt_c is not None and self.C else [])
        with frozen(*trainable, keep_mode=True):  # a frozen classifier never has gradients
            out = self.modify(x, target)
            v_fake, c_fake = self.judge(out)
            logits = self.class_logits(out, c_fake)
            adversarial = self.objective.g_loss(v_fake)
            label = self.config.class_weight * F.cross_entropy(logits, target)
            l1 = (out - x).abs().mean()
            loss = adversarial + label + self.config.lam * l1
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        distributed.average_gradients(self.G.parameters())
        self.opt_g.step()
        hit = (logits.detach().argmax(1) == target).double().mean()
        return {
            "g_loss": adversarial.detach(),
            "g_label_loss": label.detach(),
            "l1_loss": l1.detach(),
            "target_acc": hit,
        }

    # ----- using a trained ModNet ------------------------------------------------------

    def transform(self, x: Tensor, target: Tensor, batch_size: int = 500) -> Tensor:
        """Modified images (N, C, H, W) of ``x`` towards labels ``target`` (N,), eval mode."""
        for label in target.unique().tolist():
            check_label(int(label), self.classes)
        with evaluating(self.G):
            out = [
                self.modify(
                    x[i : i + batch_size].to(self.device),
                    target[i : i + batch_size].to(self.device),
                )
                for i in range(0, len(x), batch_size)
            ]
        return torch.cat(out) if out else torch.empty(0, *self.spec.shape, device=self.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Random training images modified towards one target class per grid row."""
        if self.sources is None:
            raise UsageError(
                "a modnet run modifies images; use `kdegen modnet RUN --data DATA "
                "--target K --out m.png`"
            )
        pick = torch.randint(len(self.sources), (n,), generator=generator)
        return self.transform(
            self.sources[pick.to(self.sources.device)], row_labels(n, self.classes)
        )

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (N, K) of the classifier (D's class head, or C), eval mode."""
        net = self.C if self.C is not None else self.D
        with evaluating(net):
            logits = net(x.to(self.device))
        return logits[:, 1:] if self.C is None else logits
