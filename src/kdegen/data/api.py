"""The public entry points: :func:`load` a dataset by name or path, and :func:`dataset_infos`."""

from __future__ import annotations

from dataclasses import dataclass

from kdegen.data.base import (
    DATASETS,
    ImageData,
    Request,
    check_split,
    describe_options,
    resolve_options,
    split_spec,
)
from kdegen.data.files import looks_like_path, read_path
from kdegen.data.vision import torchvision_available
from kdegen.errors import UsageError


def load(spec: str, split: str = "train", **options: object) -> ImageData:
    """Load a dataset by name (with options) or a user file or folder.

    Args:
        spec: a dataset name, optionally with options (``"mnist1000:bias=1,digits=6789"``),
            or a path to an image folder, an image, a ``.npz`` or a ``.npy`` file.
        split: "train" or "test"; ignored for user files (the file is what it is).
        **options: dataset options as keyword arguments (same names as in the spec).

    Returns:
        The loaded data; every user mistake raises :class:`kdegen.UsageError`.
    """
    check_split(split)
    name = spec.partition(":")[0].strip()
    raw: dict[str, str] = {}
    if name in DATASETS:
        name, raw = split_spec(spec)
    elif looks_like_path(spec):
        if options:
            raise UsageError(
                f"user files take no options (got {', '.join(sorted(options))}); "
                f"remove them when loading {spec}"
            )
        return read_path(spec)
    else:
        raise UsageError(
            f"{DATASETS.unknown_message(name)}; or give an image folder, .npz or .npy file"
        )
    twice = sorted(set(raw) & set(options))
    if twice:
        raise UsageError(
            f"option {', '.join(twice)} given both in {spec!r} and as a keyword; give it once"
        )
    entry = DATASETS.get(name)
    values = resolve_options(entry, {**raw, **options})
    return entry.loader(Request(spec, split, values))


@dataclass(frozen=True)
class DatasetInfo:
    """What ``kdegen datasets`` shows about one registered dataset."""

    name: str
    description: str
    train_size: int
    test_size: int
    shape: tuple[int, ...]
    kind: str
    num_classes: int | None
    source: str
    available: bool
    options: tuple[str, ...]


def dataset_infos() -> list[DatasetInfo]:
    """Describe every registered dataset without loading or downloading anything.

    Returns:
        One :class:`DatasetInfo` per dataset, in registration order. ``source`` is
        "embedded", "download", or "download (needs kdegen[vision])" when torchvision
        is missing (then ``available`` is False).
    """
    has_vision = torchvision_available()
    infos = []
    for name, entry in DATASETS.items():
        if not entry.downloads:
            source, available = "embedded", True
        elif has_vision:
            source, available = "download", True
        else:
            source, available = "download (needs kdegen[vision])", False
        infos.append(
            DatasetInfo(
                name,
                entry.description,
                entry.sizes[0],
                entry.sizes[1],
                entry.shape,
                entry.kind,
                entry.num_classes,
                source,
                available,
                describe_options(entry.options) if entry.options else (),
            )
        )
    return infos
