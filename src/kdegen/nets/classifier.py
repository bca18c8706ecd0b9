"""The small CNN whose activations embed images for the metrics (thesis Sec. 3.2.1, 3.3.2).

The thesis embeds MNIST with "a 4 layer CNN architecture, followed by a fully connected
layer", Xavier-initialised, and reads the measure off its logits; Sec. 3.4.3 shows that
prelogits (the inputs of the logit layer) and hypercolumns (Hariharan et al.: activations
of every layer, sampled, side by side) rank models the same way. This network:

    x (B, C, H, W) -> conv 3x3, w  -> conv 3x3 /2, 2w -> conv 3x3 /2, 4w -> conv 3x3, 4w
      -> average pool to 4 x 4 -> flatten -> linear, hidden (prelogits) -> linear, classes

with ReLUs and no batch normalisation or dropout, so an image's features never depend on
the other images of its batch. The pooling to a fixed 4 x 4 grid lets one network take
any image size (8 x 8 digits to 64 x 64 faces). Hypercolumns: each conv layer's
activations average-pooled to a 2 x 2 grid and concatenated, (B, 4 * 11w).

Training is seeded and deterministic on a given machine: Adam with a one-cycle learning
rate over 8 epochs (at least 800 updates, for small sets), random shifts of up to H/14
pixels as augmentation. On the CPU it trains on one thread: convolutions this small gain
little from a second one, and lose a lot (5-10x) when the cores are shared with other work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm  # type: ignore[import-untyped]

from kdegen.config import Config, option
from kdegen.data import ImageData
from kdegen.errors import UsageError

POOL_GRID = 4  # the conv stack is pooled to 4 x 4 before the dense layers
HYPERCOLUMN_GRID = 2  # each layer's activations pooled to 2 x 2 in the hypercolumns


@dataclass(frozen=True)
class ClassifierConfig(Config):
    """Settings of the embedding classifier (they are part of its cache key).

    The defaults are sized for mnist5k.
    """

    width: int = option(16, "filters of the first conv layer (then 2w, 4w, 4w)", ge=1)
    hidden: int = option(128, "prelogit units", ge=1)
    epochs: int = option(8, "passes over the training set ...", ge=1)
    min_steps: int = option(800, "... but at least this many updates (small sets)", ge=1)
    batch_size: int = option(64, "images per update", ge=1)
    lr: float = option(3e-3, "peak learning rate of the one-cycle schedule", gt=0)
    seed: int = option(0, "seed of the initial weights and the batches")


class Activations(NamedTuple):
    """What the network computes for a batch: (B, classes), (B, hidden), (B, 4 * 11w)."""

    logits: Tensor
    prelogits: Tensor
    hypercolumns: Tensor


class SmallCNN(nn.Module):
    """Four conv layers, a hidden dense layer (the prelogits) and the logit layer.

    Args:
        channels: image channels C.
        classes: number of classes.
        width: filters of the first layer.
        hidden: prelogit units.
    """

    def __init__(self, channels: int, classes: int, width: int = 16, hidden: int = 128) -> None:
        super().__init__()
        w = width
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(channels, w, 3, 1, 1),
                nn.Conv2d(w, 2 * w, 3, 2, 1),
                nn.Conv2d(2 * w, 4 * w, 3, 2, 1),
                nn.Conv2d(4 * w, 4 * w, 3, 1, 1),
            ]
        )
        self.hidden = nn.Linear(4 * w * POOL_GRID**2, hidden)
        self.out = nn.Linear(hidden, classes)

    def activations(self, x: Tensor) -> Activations:
        """All three embeddings of a batch of images in [-1, 1]."""
        columns = []
        for conv in self.convs:
            x = F.relu(conv(x))
            columns.append(F.adaptive_avg_pool2d(x, HYPERCOLUMN_GRID).flatten(1))
        pre = F.relu(self.hidden(F.adaptive_avg_pool2d(x, POOL_GRID).flatten(1)))  # (B, hidden)
        return Activations(self.out(pre), pre, torch.cat(columns, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.activations(x).logits  # (B, classes)


def build(channels: int, classes: int, config: ClassifierConfig) -> SmallCNN:
    """A freshly initialised network: Xavier-uniform weights, zero biases (seeded)."""
    net = SmallCNN(channels, classes, config.width, config.hidden)
    g = torch.Generator().manual_seed(config.seed)
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight, generator=g)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def _shift(x: Tensor, g: torch.Generator) -> Tensor:
    """Roll a batch by one random offset of up to H/14 pixels each way (augmentation)."""
    most = max(1, round(x.shape[2] / 14))
    dy, dx = (int(v) for v in torch.randint(-most, most + 1, (2,), generator=g))
    return torch.roll(x, (dy, dx), (2, 3))


def train(
    data: ImageData, config: ClassifierConfig, device: torch.device, progress: bool = True
) -> SmallCNN:
    """Train the classifier on labelled images; returns it in eval mode on ``device``.

    Args:
        data: labelled images (N, C, H, W) in [-1, 1].
        config: network size and schedule.
        device: where to train.
        progress: show a progress bar (stderr).
    """
    if data.labels is None or data.kind != "image":
        raise UsageError(f"{data.name}: the classifier needs labelled images")
    classes = int(data.num_classes or int(data.labels.max()) + 1)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _fit(
            data, build(data.images.shape[1], classes, config).to(device), config, device, progress
        )
    finally:
        torch.set_num_threads(threads)


def _fit(
    data: ImageData,
    net: SmallCNN,
    config: ClassifierConfig,
    device: torch.device,
    progress: bool,
) -> SmallCNN:
    assert data.labels is not None
    g = torch.Generator().manual_seed(config.seed)
    n = len(data)
    per_epoch = math.ceil(n / config.batch_size)
    total = max(config.epochs * per_epoch, config.min_steps)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=total)
    net.train()
    bar = tqdm(total=total, desc=f"classifier {data.name}", disable=not progress, leave=False)
    order = torch.arange(n)
    for step in range(total):
        if step % per_epoch == 0:
            order = torch.randperm(n, generator=g)
        first = (step % per_epoch) * config.batch_size
        idx = order[first : first + config.batch_size]
        x = _shift(data.images[idx], g).to(device)
        loss = F.cross_entropy(net(x), data.labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        bar.update()
        if step % per_epoch == per_epoch - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return net.eval()


@torch.no_grad()
def accuracy(net: SmallCNN, data: ImageData, batch_size: int = 500) -> float:
    """Share of ``data``'s labels the network predicts (argmax of the logits)."""
    assert data.labels is not None
    device = next(net.parameters()).device
    net.eval()
    right = 0
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size].to(device)
        right += int((net(x).argmax(1).cpu() == data.labels[start : start + batch_size]).sum())
    return right / len(data)
