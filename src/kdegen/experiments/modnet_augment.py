"""ModNet augmentation (thesis Sec. 2.5.4, Fig. 2.7): a classifier trained on n real
examples, with and without ModNet's modifications of them into the other classes.

A ModNet (shared variant, :mod:`kdegen.methods.modnet`) is trained on the training
split, as the thesis's generator was. For n in {10, 100, 1000}, n real training examples
are chosen (the same number per class, seeded) and each is modified into every other
class, which adds (K - 1) n generated images labelled with their targets ("for the added
generated data we generated the other nine labels possible for each example"). The small
CNN of :mod:`kdegen.evaluation.embed.cnn` is trained on the n real images alone and on the
real and generated images together, for the same number of updates, and its accuracy on
the test split is reported. Repeats draw other examples (3; 1 when quick).

The evaluation classifier (trained on the whole training split, cached) also reads the
generated images: the share it labels as their targets says whether ModNet's changes are
real class changes or only fool ModNet's own discriminator.

Caveat: ModNet saw every training label while it learned, as in the thesis; the new
classifier sees only n real examples and their modifications, so the comparison asks
whether ModNet's knowledge reaches a classifier through its images. It is not a
semi-supervised setting with n labels in all.

Full: ModNet 1,500 steps (width 16, batches of 64), classifiers 600 updates, 3 repeats.
Quick: ModNet 600 steps (width 8, batches of 32), classifiers 150 updates, one repeat; a
ModNet this
short turns few images into their targets, so the quick table shows the pipeline, not
the effect.

Measured (full, mnist5k, seed 0): test accuracy real only -> real + ModNet images
31% -> 69% (n = 10), 89% -> 84% (n = 100), 97% -> 88% (n = 1000); the evaluation
classifier read the target in 69% of the generated images. The 31% that keep their old
class carry wrong labels, which outweighs the new images once the real ones suffice.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kdegen import distributed, runs
from kdegen.config import RunConfig
from kdegen.data import ImageData
from kdegen.experiments.base import (
    Outcome,
    Settings,
    embed_all,
    experiment,
    new_figure,
    reference_classifier,
    run_training,
    write_outputs,
)
from kdegen.images import save_grid
from kdegen.methods.labelled import stratified_choice
from kdegen.methods.modnet import ModNet, ModNetConfig
from kdegen.nets import classifier as cnn

SIZES = (10, 100, 1000)


@dataclass(frozen=True)
class Size:
    """How much training: ModNet's steps, width and batch; classifier updates; repeats."""

    modnet_steps: int
    width: int
    batch_size: int
    classifier_steps: int
    repeats: int


PLANS = {False: Size(1500, 16, 64, 600, 3), True: Size(600, 8, 32, 150, 1)}


def train_modnet(data: str, size: Size, settings: Settings) -> ModNet:
    """Train the shared-variant ModNet into ``OUT/runs/modnet`` and load it."""
    out = settings.out / "runs" / "modnet"
    cfg = run_training(
        data,
        size.modnet_steps,
        settings.seed,
        settings.device,
        batch_size=size.batch_size,
        log_every=25,
    )
    runs.start(
        RunConfig("modnet", ModNetConfig(width=size.width), cfg),
        out,
        force=True,
        progress=settings.progress,
    )
    method = runs.load_run(out, settings.device).method
    assert isinstance(method, ModNet)
    return method


def relabelled(modnet: ModNet, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Every image of ``x`` (n, ...) modified into each of the K - 1 other classes:
    ((K - 1) n images, their target labels)."""
    K = modnet.classes
    targets = (y[:, None] + torch.arange(1, K)[None, :]) % K  # (n, K - 1)
    generated = modnet.transform(x.repeat_interleave(K - 1, 0), targets.flatten())
    return generated.cpu(), targets.flatten()


def classifier_accuracy(
    x: Tensor, y: Tensor, test: ImageData, classes: int, steps: int, seed: int, device: torch.device
) -> float:
    """Test accuracy of the small CNN trained on (x, y) for ``steps`` updates."""
    config = cnn.ClassifierConfig(epochs=1, min_steps=steps, seed=seed)
    net = cnn.train(ImageData(x, y, "augmentation", num_classes=classes), config, device, False)
    return cnn.accuracy(net, test)


def _row(n: int, real: list[float], augmented: list[float], generated: int) -> dict[str, Any]:
    spread = statistics.pstdev
    return {
        "n_real": n,
        "n_generated": generated,
        "acc_real": statistics.fmean(real),
        "acc_real_spread": spread(real),
        "acc_augmented": statistics.fmean(augmented),
        "acc_augmented_spread": spread(augmented),
        "gain": statistics.fmean(augmented) - statistics.fmean(real),
    }


def _plot(rows: list[dict[str, Any]]) -> Any:
    fig, (ax,) = new_figure(1, width=5.5)
    ns = [r["n_real"] for r in rows]
    for key, label in (("acc_real", "real only"), ("acc_augmented", "real + ModNet")):
        ax.errorbar(
            ns,
            [r[key] for r in rows],
            [r[f"{key}_spread"] for r in rows],
            marker="o",
            capsize=3,
            label=label,
        )
    ax.set(xscale="log", xlabel="real training examples n", ylabel="test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.suptitle("ModNet augmentation (thesis 2.5.4)")
    fig.tight_layout()
    return fig


def _examples(modnet: ModNet, x: Tensor, out: Path) -> Path:
    """Ten training images (one per class) and their modifications into every class."""
    K = modnet.classes
    grid = modnet.transform(x.repeat_interleave(K, 0), torch.arange(K).repeat(len(x))).cpu()
    path = out / "modifications.png"
    save_grid(
        torch.cat([x, grid.view(len(x), K, *x.shape[1:]).transpose(0, 1).flatten(0, 1)]),
        path,
        nrow=len(x),
    )
    return path


@experiment("modnet-augment", "thesis 2.5.4: classifier on n real examples +- ModNet's images")
def modnet_augment(settings: Settings) -> Outcome:
    """Train ModNet, then classifiers with and without its relabelled images (see the module)."""
    data = settings.data or "mnist5k"
    size = PLANS[settings.quick]
    device = distributed.pick_device(settings.device)
    embedding, ref = reference_classifier(data, settings)
    train, test = ref.train, ref.test
    assert train is not None and train.labels is not None and test.labels is not None
    modnet = train_modnet(data, size, settings)
    rows, agree = [], []
    for n in sorted({min(n, len(train)) for n in SIZES}):
        real, augmented, generated = [], [], 0
        for r in range(size.repeats):
            idx = stratified_choice(train.labels, n, seed=1000 * settings.seed + r)
            x, y = train.images[idx], train.labels[idx]
            gx, gy = relabelled(modnet, x, y)
            probs = embed_all(embedding, gx).probs
            assert probs is not None
            agree.append(probs.argmax(1).cpu() == gy)
            fit = (test, modnet.classes, size.classifier_steps, settings.seed + r, device)
            real.append(classifier_accuracy(x, y, *fit))
            augmented.append(classifier_accuracy(torch.cat([x, gx]), torch.cat([y, gy]), *fit))
            generated = len(gx)
        rows.append(_row(n, real, augmented, generated))
    target_rate = float(torch.cat(agree).double().mean())
    gains = ", ".join(
        f"n={r['n_real']}: {100 * r['acc_real']:.1f}% -> {100 * r['acc_augmented']:.1f}%"
        for r in rows
    )
    summary = (
        f"Test accuracy, real only -> real + ModNet images: {gains}. The evaluation "
        f"classifier labels {100 * target_rate:.1f}% of the generated images as their "
        "target. ModNet itself learned from every training label, as in the thesis."
    )
    one_each = stratified_choice(train.labels, modnet.classes, seed=settings.seed)
    figure = _examples(modnet, train.images[one_each], settings.out)
    meta = {
        "data": data,
        "size": size.__dict__,
        "generated_target_rate": target_rate,
        "embedding": embedding.describe(),
        "modnet_run": str(settings.out / "runs" / "modnet"),
    }
    files = write_outputs(
        settings, "ModNet augmentation (thesis 2.5.4)", rows, summary, meta, _plot(rows)
    )
    return Outcome(rows, summary, [*files, figure])
