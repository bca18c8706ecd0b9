"""The ``classifier`` embedding: a small CNN trained on the reference data, cached on disk.

The thesis computes the Distribution Divergence Measure on the logits of a classifier
trained on the dataset of interest (Sec. 3.2.1); prelogits and hypercolumns work as well
(Sec. 3.4.3), and its softmax gives the class probabilities of the Inception and Mode
Scores. The network and its training are in :mod:`kdegen.evaluation.embed.cnn`.

What it is trained on (:func:`plan_classifier`):

- a dataset name: the dataset's train split; its accuracy is measured on the test split;
- ``mnist1000`` (three mnist5k digits side by side, 1,000 classes): a digit classifier
  trained on mnist5k, applied to each 28 x 28 third. Features are the three slices'
  features side by side; the class probabilities over the 1,000 numbers are the products
  p(100a + 10b + c) = p1(a) p2(b) p3(c); the per-position digit probabilities feed the
  mnist1000 mode count; ``digits1000`` likewise with the 8 x 8 ``digits``;
- files: the ``--train-data`` given, or else the reference files themselves when they
  are labelled (the accuracy is then a training accuracy).

Trained networks are cached in ``$KDEGEN_CACHE/classifiers`` (default ``~/.cache/kdegen``)
under a key hashing the settings and the training images and labels, written atomically
and read with ``torch.load(weights_only=True)``: loading never runs code. An unreadable
cache file is reported and the network trained again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kdegen.data import ImageData, load
from kdegen.errors import UsageError
from kdegen.evaluation.embed.base import (
    Embedded,
    Embedding,
    EmbedSettings,
    Reference,
    need_images,
    register_embedding,
)
from kdegen.files import save_atomic
from kdegen.nets import classifier as cnn

CACHE_FORMAT = "kdegen-classifier-1"
# datasets made of ``tiles`` images of another dataset side by side: classify each tile
TILED: dict[str, tuple[str, int]] = {"mnist1000": ("mnist5k", 3), "digits1000": ("digits", 3)}


@dataclass(frozen=True)
class ClassifierPlan:
    """What the classifier learns from.

    Attributes:
        name: a short name for the cache file and messages.
        train: labelled images of one tile.
        test: labelled held-out images for the accuracy, or None (accuracy on ``train``).
        tiles: the images to embed are this many such images side by side.
    """

    name: str
    train: ImageData
    test: ImageData | None
    tiles: int = 1


@dataclass(frozen=True)
class TrainedClassifier:
    """A trained network with its accuracy and where it is cached."""

    net: cnn.SmallCNN
    accuracy: float
    accuracy_split: str
    path: Path
    seconds: float  # training time (0 when loaded from the cache)


def plan_classifier(reference: Reference, train_name: str | None = None) -> ClassifierPlan:
    """Choose the training data of the classifier for ``reference`` (see the module).

    Raises:
        UsageError: points instead of images, or no labelled images to learn from.
    """
    need_images(reference, "classifier")
    if reference.base_name in TILED:
        source, tiles = TILED[reference.base_name]
        return ClassifierPlan(source, load(source, "train"), load(source, "test"), tiles)
    test = reference.test if reference.test.labels is not None else None
    train = reference.train
    if train is None and test is not None:
        return ClassifierPlan(train_name or reference.name, test, None)
    if train is None or train.labels is None:
        what = reference.name if train is None else train.name
        raise UsageError(
            f"{what} has no labels to train the classifier on; pass --train-data with "
            "labelled images (e.g. a dataset name), or use --embedding pca or pixels"
        )
    return ClassifierPlan(train_name or reference.name, train, test)


def cache_dir() -> Path:
    """``$KDEGEN_CACHE/classifiers``, by default ``~/.cache/kdegen/classifiers``."""
    return Path(os.environ.get("KDEGEN_CACHE") or "~/.cache/kdegen").expanduser() / "classifiers"


def cache_path(plan: ClassifierPlan, config: cnn.ClassifierConfig) -> Path:
    """The cache file: a hash of the format, the settings and the training data."""
    h = hashlib.sha256(json.dumps([CACHE_FORMAT, asdict(config)]).encode())
    h.update(plan.train.images.contiguous().numpy().tobytes())
    assert plan.train.labels is not None
    h.update(plan.train.labels.contiguous().numpy().tobytes())
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(plan.name).name)[:40] or "data"
    return cache_dir() / f"{stem}-{h.hexdigest()[:16]}.pt"


_MEMORY: dict[Path, TrainedClassifier] = {}


def forget_loaded() -> None:
    """Drop the classifiers kept in memory (the next request reads the disk cache)."""
    _MEMORY.clear()


def get_classifier(
    plan: ClassifierPlan, config: cnn.ClassifierConfig, device: torch.device, progress: bool
) -> TrainedClassifier:
    """The trained classifier of ``plan``: from memory, the disk cache, or trained now.

    Prints its accuracy once per process (when ``progress``).
    """
    path = cache_path(plan, config)
    if path in _MEMORY:
        return _MEMORY[path]
    found = _load_cached(path, plan, config)
    if found is None:
        found = _train_and_cache(plan, config, path, device, progress)
    _MEMORY[path] = found
    if progress:
        how = f"trained in {found.seconds:.0f} s" if found.seconds else "cached"
        print(
            f"classifier for {plan.name}: {found.accuracy_split} accuracy "
            f"{100 * found.accuracy:.1f}% ({how}: {path})"
        )
    found.net.to(device)
    return found


def _classes(plan: ClassifierPlan) -> int:
    assert plan.train.labels is not None
    return int(plan.train.num_classes or int(plan.train.labels.max()) + 1)


def _load_cached(
    path: Path, plan: ClassifierPlan, config: cnn.ClassifierConfig
) -> TrainedClassifier | None:
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
            raise ValueError("not a kdegen classifier")
        net = cnn.SmallCNN(plan.train.images.shape[1], _classes(plan), config.width, config.hidden)
        net.load_state_dict(payload["state"])
        accuracy, split = float(payload["accuracy"]), str(payload["accuracy_split"])
    except Exception as e:  # damaged files raise many types; retraining fixes them all
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        print(
            f"kdegen: warning: classifier cache {path} is unreadable ({reason}); training it again",
            file=sys.stderr,
        )
        return None
    return TrainedClassifier(net.eval(), accuracy, split, path, 0.0)


def _train_and_cache(
    plan: ClassifierPlan,
    config: cnn.ClassifierConfig,
    path: Path,
    device: torch.device,
    progress: bool,
) -> TrainedClassifier:
    start = time.perf_counter()
    net = cnn.train(plan.train, config, device, progress)
    seconds = time.perf_counter() - start
    held_out = plan.test if plan.test is not None and plan.test.labels is not None else None
    split = "test" if held_out is not None else "training"
    acc = cnn.accuracy(net, held_out if held_out is not None else plan.train)
    state = {k: v.cpu() for k, v in net.state_dict().items()}
    payload = {
        "format": CACHE_FORMAT,
        "config": asdict(config),
        "state": state,
        "accuracy": acc,
        "accuracy_split": split,
        "name": plan.name,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic(payload, path)
    except OSError as e:
        print(
            f"kdegen: warning: cannot cache the classifier in {path.parent} ({e.strerror}); "
            "set KDEGEN_CACHE to a writable folder",
            file=sys.stderr,
        )
    return TrainedClassifier(net, acc, split, path, seconds)


def _product(probs: list[Tensor]) -> Tensor:
    """Joint probabilities of independent positions: (B, k^t), index a k^(t-1) + ... ."""
    joint = probs[0]
    for p in probs[1:]:
        joint = (joint[:, :, None] * p[:, None, :]).flatten(1)
    return joint


class ClassifierEmbedding(Embedding):
    """Logits, prelogits or hypercolumns of the trained CNN, and its softmax."""

    name = "classifier"

    def __init__(
        self, trained: TrainedClassifier, plan: ClassifierPlan, features: str, device: torch.device
    ) -> None:
        super().__init__(device)
        self.trained, self.plan, self.features = trained, plan, features
        self.gives_digits = plan.tiles > 1

    def embed_batch(self, x: Tensor) -> Embedded:
        if x.shape[3] % self.plan.tiles:
            raise UsageError(
                f"images {x.shape[3]} pixels wide cannot be cut into {self.plan.tiles} digits"
            )
        acts = [self.trained.net.activations(t) for t in x.chunk(self.plan.tiles, dim=3)]
        features = torch.cat([getattr(a, self.features) for a in acts], 1)
        probs = [torch.softmax(a.logits.double(), 1) for a in acts]
        digits = torch.stack(probs, 1) if self.gives_digits else None
        return Embedded(features, _product(probs), digits)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": self.features,
            "trained_on": self.plan.name,
            "tiles": self.plan.tiles,
            "accuracy": self.trained.accuracy,
            "accuracy_split": self.trained.accuracy_split,
            "cache": str(self.trained.path),
        }


def classifier_embedding(
    reference: Reference, settings: EmbedSettings, train_name: str | None = None
) -> ClassifierEmbedding:
    """The classifier embedding for ``reference`` (trained or loaded; see the module)."""
    plan = plan_classifier(reference, train_name)
    trained = get_classifier(plan, settings.classifier, settings.device, settings.progress)
    return ClassifierEmbedding(trained, plan, settings.features, settings.device)


@register_embedding("classifier", classifies=True)
def _classifier(reference: Reference, settings: EmbedSettings) -> Embedding:
    return classifier_embedding(reference, settings)
