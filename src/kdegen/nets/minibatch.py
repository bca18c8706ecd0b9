"""Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training GANs",
Sec. 3.2) as a layer placed before a discriminator's last linear layer.

The features f(x_i) in R^A of each sample are multiplied by a tensor T in R^(A x B x C)
into B rows M_(i,b) in R^C; kernel b compares sample i with every other sample j of the
minibatch by c_b(x_i, x_j) = exp(-||M_(i,b) - M_(j,b)||_1), and o(x_i)_b = sum_(j != i)
c_b(x_i, x_j). The layer outputs [f(x_i), o(x_i)] in R^(A+B), so the discriminator can tell
a batch of near-identical samples (a collapsed generator) from a varied real batch.

Like the authors' code, the sum leaves out j = i (their exp(0) = 1 self term carries no
information). The distances are written with broadcasting rather than ``torch.cdist``,
whose backward pass cannot be differentiated again: the unrolled GAN differentiates
through discriminator gradients. The layer couples the samples of a batch, so with
``wgan-gp`` the gradient of the critic at one interpolate also carries the other
interpolates' terms, as with batch normalisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError

INIT_STD = 0.05  # std of T's entries at initialisation (the authors' code)


class MinibatchDiscrimination(nn.Module):
    """features (n, A) -> [features, o] (n, A + B) with B minibatch kernels of dimension C.

    Args:
        in_features: A, the size of the incoming features.
        kernels: B, the number of minibatch kernels (output features added).
        kernel_dim: C, the dimension each kernel compares samples in.
    """

    def __init__(self, in_features: int, kernels: int, kernel_dim: int) -> None:
        super().__init__()
        if kernels < 1 or kernel_dim < 1:
            raise UsageError("minibatch discrimination needs at least 1 kernel of dimension >= 1")
        self.in_features, self.kernels, self.kernel_dim = in_features, kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * INIT_STD)

    @property
    def out_features(self) -> int:
        return self.in_features + self.kernels

    def forward(self, f: Tensor) -> Tensor:
        n = f.shape[0]
        M = (f @ self.T).view(n, self.kernels, self.kernel_dim)  # (n, B, C)
        l1 = (M.unsqueeze(1) - M.unsqueeze(0)).abs().sum(3)  # (n, n, B): ||M_ib - M_jb||_1
        c = torch.exp(-l1)
        # drop the self-comparison (exp(0) = 1 on the diagonal)
        o = c.sum(1) - 1.0  # (n, B)
        return torch.cat([f, o], dim=1)  # (n, A + B)


def add_minibatch_discrimination(discriminator: nn.Module, kernels: int, kernel_dim: int) -> None:
    """Insert minibatch discrimination before ``discriminator.head`` (in place).

    The discriminator must compute ``head(features(x))`` with ``head`` a linear layer to one
    logit, as the DCGAN, MLP and joint (BiGAN) discriminators do; the head becomes
    ``Sequential(MinibatchDiscrimination(A, B, C), Linear(A + B, 1))``.

    Args:
        discriminator: the network to change.
        kernels: B, the number of minibatch kernels.
        kernel_dim: C, their dimension.

    Raises:
        UsageError: when the discriminator has no linear ``head``.
    """
    head = getattr(discriminator, "head", None)
    if not isinstance(head, nn.Linear) or head.out_features != 1:
        raise UsageError(
            f"{type(discriminator).__name__} has no linear head to put minibatch "
            "discrimination before; use --arch dcgan or mlp"
        )
    layer = MinibatchDiscrimination(head.in_features, kernels, kernel_dim)
    discriminator.head = nn.Sequential(layer, nn.Linear(layer.out_features, 1))


def penultimate_features(discriminator: nn.Module, x: Tensor) -> Tensor:
    """The discriminator's features before its head (B, A), as feature matching uses them."""
    features = getattr(discriminator, "features", None)
    if not isinstance(features, nn.Module):
        raise UsageError(
            f"{type(discriminator).__name__} exposes no features for --feature-matching"
        )
    out: Tensor = features(x)
    return out.flatten(1)


def feature_matching_loss(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """Salimans et al. Sec. 3.1: ||E f(x) - E f(G(z))||_2^2 on the penultimate features f.

    Args:
        discriminator: a network with ``features`` (see :func:`penultimate_features`).
        real: the discriminator's input for real data (B, ...).
        fake: its input for generated data (B', ...), differentiable w.r.t. the generator.

    Returns:
        The scalar loss the generator minimises.
    """
    f_real = penultimate_features(discriminator, real).mean(0)
    f_fake = penultimate_features(discriminator, fake).mean(0)
    return (f_real - f_fake).pow(2).sum()
