"""Training autoencoder-family models (ae, vae, aae, gen) inside an experiment.

The GENs experiments train many small models (Table 2: 5 per method); they need neither
checkpoints nor run directories, so they train in memory through the Trainer
(:func:`kdegen.runs.training.train_in_memory`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kdegen.methods.autoencoder import AutoEncoder
from kdegen.methods.base import METHODS, DataSpec
from kdegen.runs.training import train_in_memory


def fit_autoencoder(
    method: str,
    config: Any,
    images: Tensor,
    labels: Tensor | None,
    steps: int,
    seed: int,
    batch_size: int = 64,
    progress: bool = False,
    num_classes: int | None = None,
) -> AutoEncoder:
    """Train ``method`` (ae, vae, aae or gen) with ``config`` for ``steps`` minibatches.

    Args:
        method: registered method name.
        config: its config (e.g. ``GENConfig(arch="fc", latent=8)``).
        images: training examples (N, *shape).
        labels: (N,) labels, or None.
        steps: minibatch updates.
        seed: seeds the initial weights, the minibatch order and the training noise.
        batch_size: examples per minibatch.
        progress: show a progress bar.
        num_classes: label classes (needed with ``labeled``).

    Returns:
        The trained method.
    """
    torch.manual_seed(seed)
    spec = DataSpec(tuple(images.shape[1:]), num_classes, len(images))
    model = METHODS.get(method)(config, spec, torch.device("cpu"))
    assert isinstance(model, AutoEncoder)
    train_in_memory(model, images, labels, steps, batch_size, seed, progress, desc=method)
    return model


def whiten(z: Tensor) -> Tensor:
    """Codes with zero mean and identity sample covariance (symmetric inverse square root)."""
    z = z.double()
    centred = z - z.mean(0)
    cov = centred.T @ centred / (len(z) - 1)
    values, vectors = torch.linalg.eigh(cov)
    inv_root = vectors @ torch.diag(values.clamp_min(1e-12).rsqrt()) @ vectors.T
    return centred @ inv_root
