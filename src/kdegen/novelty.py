"""Novelty detection with an autoencoder's data-space density (GENs Sec. 5.5, Eq. 10-11).

    p(x) = p(z') |det dx'/dz'|^-1 p(x | x'),   z' = E(x),  x' = D(z'),

the in-manifold density (the latent density carried onto the decoder's manifold, with
|det A| = sqrt(det A^T A) for the d x l Jacobian A = dD/dz at z', Eq. 11) times an
off-manifold Gaussian N(x; x', sigma^2 I). The outlier score is -log p(x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import jacfwd, vmap

from kdegen.errors import UsageError
from kdegen.nets.modes import frozen
from kdegen.priors import Prior


def decoder_log_volume(decoder: nn.Module, z: Tensor, batch_size: int = 256) -> Tensor:
    """0.5 log det(A^T A) for the Jacobian A (d x l) of ``decoder`` at each code, (n,).

    Forward-mode Jacobians (l columns per code) under vmap, in eval mode.
    """

    def single(code: Tensor) -> Tensor:
        return decoder(code[None])[0].flatten()  # (d,)

    out = []
    with frozen(decoder):
        for i in range(0, len(z), batch_size):
            A = vmap(jacfwd(single))(z[i : i + batch_size])  # (b, d, l)
            gram = A.transpose(1, 2) @ A  # (b, l, l)
            sign, logdet = torch.linalg.slogdet(gram.double())
            out.append(torch.where(sign > 0, 0.5 * logdet, torch.full_like(logdet, math.inf)))
    return torch.cat(out).to(z.dtype)


@dataclass
class NoveltyScores:
    """Per-example parts of -log p(x) (Eq. 10), each (n,)."""

    score: Tensor  # -log p(x): high = unlikely = outlier
    log_latent: Tensor  # log p(z')
    log_volume: Tensor  # 0.5 log det(A^T A)
    squared_error: Tensor  # ||x - x'||^2


@torch.no_grad()
def _decode(decoder: nn.Module, z: Tensor) -> Tensor:
    with frozen(decoder):
        return torch.cat([decoder(z[i : i + 512]) for i in range(0, len(z), 512)])


def noise_variance(decoder: nn.Module, x: Tensor, z: Tensor) -> float:
    """sigma^2 of the off-manifold term: mean squared reconstruction error per dimension.

    Args:
        decoder: D.
        x: training data (n, *shape).
        z: their codes E(x) (n, l).
    """
    return float((_decode(decoder, z) - x).pow(2).mean())


def outlier_scores(
    decoder: nn.Module, prior: Prior, x: Tensor, z: Tensor, sigma2: float
) -> NoveltyScores:
    """-log p(x) of Eq. 10 for each example of ``x`` (n, *shape).

    Args:
        decoder: D.
        prior: the latent density p(z') (a GEN's converged prior, a target, a KDE).
        x: data.
        z: codes E(x) (n, l) (a VAE's means).
        sigma2: variance of the off-manifold Gaussian.
    """
    if not sigma2 > 0:
        raise UsageError(f"the off-manifold variance must be positive, got {sigma2}")
    recon = _decode(decoder, z)
    log_latent = prior.log_prob(z).to(z.dtype)
    log_volume = decoder_log_volume(decoder, z)
    sq = (recon - x).pow(2).flatten(1).sum(1)
    d = x[0].numel()
    log_off = -0.5 * sq / sigma2 - 0.5 * d * math.log(2 * math.pi * sigma2)
    score = -(log_latent - log_volume + log_off)
    return NoveltyScores(score, log_latent, log_volume, sq)


def auroc(scores: Tensor, is_outlier: Tensor) -> float:
    """Area under the ROC curve of telling outliers (higher score) from inliers."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(is_outlier.cpu(), dtype=bool)
    if y.all() or not y.any():
        raise UsageError("the AUROC needs both inliers and outliers in the data")
    s = np.nan_to_num(np.asarray(scores.double().cpu()), nan=np.inf, posinf=1e300)
    return float(roc_auc_score(y, s))
