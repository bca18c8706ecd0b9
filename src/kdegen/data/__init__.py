"""Datasets for kdegen: embedded sets, 2-D mixtures, user files and torchvision downloads.

``load("mnist5k", split="train")`` returns an :class:`ImageData`; ``dataset_infos()``
lists every registered dataset for ``kdegen datasets``. Importing this package
registers all datasets in :data:`DATASETS`.
"""

from __future__ import annotations

# Imported for their side effect: each module registers its datasets in DATASETS.
from kdegen.data import embedded, mixtures, stacked, vision  # noqa: F401
from kdegen.data.api import DatasetInfo, dataset_infos, load
from kdegen.data.base import DATASETS, Dataset, ImageData, Request, dataset
from kdegen.data.files import canonical_spec, file_fingerprint, npz_size, save_npz, streamed_npz

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "ImageData",
    "Request",
    "canonical_spec",
    "dataset",
    "dataset_infos",
    "file_fingerprint",
    "load",
    "npz_size",
    "save_npz",
    "streamed_npz",
]
