"""Label-aware wrappers around the registered networks (:data:`kdegen.nets.ARCHS`).

- :class:`ConditionalGenerator`: G(z, y) = G'([z, e(y)]), a learned label embedding e
  concatenated to the noise (Mirza & Osindero 2014, "Conditional Generative Adversarial
  Nets", Sec. 4.1, where y enters the generator's first layer beside z).
- :class:`ConditionalDiscriminator`: D(x, y) = D'([x, onehot(y)]), for images the one-hot
  label as K constant channels concatenated to the image, for points K extra inputs.
- :class:`ClassHeadDiscriminator`: one discriminator body with several outputs, the
  real/fake logit and class logits of the AC-GAN (Odena et al. 2017, Sec. 3) or the K
  class logits of the semi-supervised GAN (Salimans et al. 2016, Sec. 5).

Each wraps a network built by :func:`kdegen.nets.build_pair`, so every registered
architecture works; a wrapped discriminator's last layer must be a linear ``head``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def one_hot(y: Tensor, classes: int) -> Tensor:
    """Float one-hot codes (B, K) of labels (B,)."""
    return F.one_hot(y, classes).float()


def label_maps(y: Tensor, classes: int, height: int, width: int) -> Tensor:
    """One-hot labels as K constant image channels (B, K, H, W)."""
    return one_hot(y, classes)[:, :, None, None].expand(-1, -1, height, width)


class ConditionalGenerator(nn.Module):
    """(z (B, k), y (B,)) -> samples, through a generator of latent size k + embed.

    Args:
        base: a generator taking codes of size ``latent + embed``.
        latent: the noise size k.
        classes: number of labels K.
        embed: size of the learned label embedding.
    """

    def __init__(self, base: nn.Module, latent: int, classes: int, embed: int) -> None:
        super().__init__()
        self.base, self.latent, self.classes = base, latent, classes
        self.embed = nn.Embedding(classes, embed)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.base(torch.cat([z, self.embed(y)], 1))  # (B, *shape)


class ConditionalDiscriminator(nn.Module):
    """(x (B, *shape), y (B,)) -> one logit per example (B,).

    Args:
        base: a discriminator for inputs with K more channels (images) or features (points).
        classes: number of labels K.
    """

    def __init__(self, base: nn.Module, classes: int) -> None:
        super().__init__()
        self.base, self.classes = base, classes

    def inputs(self, x: Tensor, y: Tensor) -> Tensor:
        """What the base network sees: x with the labels' one-hot channels or features."""
        if x.dim() == 4:
            code = label_maps(y, self.classes, x.shape[2], x.shape[3])  # (B, K, H, W)
        else:
            code = one_hot(y, self.classes)  # (B, K)
        return torch.cat([x, code.to(x.dtype)], 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.base(self.inputs(x, y))


class ClassHeadDiscriminator(nn.Module):
    """x (B, *shape) -> (B, outputs): a discriminator whose linear head is replaced.

    The base network's ``head`` (its last layer, a Linear to one logit, or a Sequential
    ending in one, as after minibatch discrimination) loses that Linear, so the base
    returns its last hidden features; a new Linear maps them to ``outputs`` values.

    Args:
        base: a discriminator with a linear ``head`` (every network of ``build_pair``).
        outputs: number of output values.
    """

    def __init__(self, base: nn.Module, outputs: int) -> None:
        super().__init__()
        head = getattr(base, "head", None)
        if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
            linear, head[-1] = head[-1], nn.Identity()
        elif isinstance(head, nn.Linear):
            linear, base.head = head, nn.Identity()
        else:
            raise TypeError(f"{type(base).__name__} has no linear head to give class outputs")
        self.body = base
        self.head = nn.Linear(linear.in_features, outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))  # (B, outputs)
