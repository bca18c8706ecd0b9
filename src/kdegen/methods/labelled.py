"""Labels in the conditional methods (cgan, acgan, ssgan, modnet): checks, sample layouts,
the seeded stratified choice of labelled examples, and classification accuracy.

The labelled subset of the semi-supervised GAN follows Salimans et al. (2016, Sec. 5):
N examples, the same number from each class, chosen once by a fixed seed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kdegen.errors import UsageError
from kdegen.methods.base import Batch, DataSpec
from kdegen.methods.capabilities import Classifies

LABEL_SEED = 1234  # the labelled subset is the same for every run on the same data


def require_classes(spec: DataSpec, method: str) -> int:
    """The data's number of classes; a UsageError when the data has no labels."""
    if spec.num_classes is None or spec.num_classes < 2:
        raise UsageError(
            f"--method {method} needs labelled data with at least 2 classes "
            "(e.g. --data mnist5k or digits, or an .npz with labels)"
        )
    return int(spec.num_classes)


def batch_labels(batch: Batch, method: str) -> Tensor:
    """The batch's labels; a UsageError when the data came without them."""
    if batch.y is None:
        raise UsageError(f"--method {method} needs labelled data; this data has no labels")
    return batch.y


def row_labels(n: int, classes: int, device: torch.device | str = "cpu") -> Tensor:
    """Labels (n,) that give one class per row of a square-ish grid of n images.

    The grid of :func:`kdegen.images.grid` has ceil(sqrt(n)) columns; row r shows class
    r mod K (a grid of 100 shows all ten digits, one per row).
    """
    cols = max(1, math.ceil(math.sqrt(n)))
    return (torch.arange(n, device=device) // cols) % classes


def other_labels(y: Tensor, classes: int, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random label different from each of ``y`` (B,), from torch's RNG."""
    shift = torch.randint(1, classes, y.shape, generator=generator, device="cpu")
    return (y + shift.to(y.device)) % classes


def check_label(label: int, classes: int) -> None:
    """A UsageError unless ``label`` is a class index of a K-class model."""
    if not 0 <= label < classes:
        raise UsageError(f"label {label} is not a class of this run; give 0..{classes - 1}")


def stratified_choice(labels: Tensor, n: int, seed: int = LABEL_SEED) -> Tensor:
    """Indices of ``n`` examples, as equal a number from each class as the data allows.

    Each class gives floor(n / K) examples, and one more for n mod K classes chosen at
    random; a class with too few examples gives all it has, and the rest come from the
    remaining examples. Seeded, so the same data gives the same choice.

    Args:
        labels: class labels (N,) of the training set.
        n: how many examples (at most N).
        seed: seed of the choice.

    Returns:
        Sorted indices (n,).
    """
    labels = labels.cpu()
    if not 0 < n <= len(labels):
        raise UsageError(f"--labeled {n} must be between 1 and the {len(labels)} examples")
    g = torch.Generator().manual_seed(seed)
    classes = int(labels.max()) + 1
    extra = set(torch.randperm(classes, generator=g)[: n % classes].tolist())
    chosen: list[Tensor] = []
    for c in range(classes):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        chosen.append(members[: n // classes + (c in extra)])
    picked = torch.cat(chosen)
    if len(picked) < n:  # some classes were too small: fill from the other examples
        rest = torch.ones(len(labels), dtype=torch.bool)
        rest[picked] = False
        pool = torch.nonzero(rest).flatten()
        picked = torch.cat(
            [picked, pool[torch.randperm(len(pool), generator=g)][: n - len(picked)]]
        )
    return picked.sort().values


@torch.no_grad()
def accuracy(model: Classifies, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Share of ``labels`` (N,) that ``model.classify`` predicts (argmax) for ``images``."""
    right = 0
    for i in range(0, len(images), batch_size):
        logits = model.classify(images[i : i + batch_size])
        right += int((logits.argmax(1).cpu() == labels[i : i + batch_size].cpu()).sum())
    return right / max(len(images), 1)
