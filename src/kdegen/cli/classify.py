"""``kdegen classify``: the accuracy of a run's classifier on a labelled split.

Runs whose method classifies (``ssgan``'s K+1-way discriminator, ``acgan``'s auxiliary
classifier, ``modnet``'s classifier) predict the argmax of their class logits; the
accuracy is the share of the split's labels they predict (the tutorial's semi-supervised
tables report its complement).
"""

from __future__ import annotations

from kdegen import runs
from kdegen.cli.base import DataOptions, command
from kdegen.cli.flags import parse
from kdegen.data import ImageData, load
from kdegen.errors import UsageError
from kdegen.methods.capabilities import Classifies, capable
from kdegen.methods.labelled import accuracy


def check_labelled(data: ImageData, shape: tuple[int, ...], classes: int | None, what: str) -> None:
    """A UsageError unless ``data`` has labels below ``classes`` and examples of ``shape``."""
    if tuple(data.shape) != tuple(shape):
        raise UsageError(
            f"{what} has examples of shape {tuple(data.shape)}; the run was "
            f"trained on shape {tuple(shape)}"
        )
    if data.labels is None:
        raise UsageError(f"{what} has no labels to compare the predictions with")
    if classes is not None and len(data.labels) and int(data.labels.max()) >= classes:
        raise UsageError(
            f"{what} has labels up to {int(data.labels.max())}; the run knows {classes} classes"
        )


@command("classify")
def cmd_classify(argv: list[str]) -> int:
    """Report the accuracy of a run's classifier (ssgan, acgan, modnet) on labelled data."""
    args = parse(DataOptions, argv, "kdegen classify", cmd_classify.__doc__)
    loaded = runs.load_run(args.run, args.device)
    method: Classifies = capable(
        loaded.method,
        Classifies,
        loaded.config.method,
        "no classifier; classify works on ssgan, acgan and modnet runs",
    )
    spec = loaded.method.spec
    check_labelled(
        data := load(args.data, split=args.split),
        spec.shape,
        spec.num_classes,
        f"{args.data} ({args.split})",
    )
    assert data.labels is not None
    acc = accuracy(method, data.images, data.labels)
    print(
        f"{args.split} accuracy of {loaded.run.path} (step {loaded.step}) on {args.data}: "
        f"{100 * acc:.2f}% of {len(data)} examples"
    )
    return 0
