"""Session-wide test settings: one intra-op thread; caches in the session's temporary folder.

kdegen caches trained classifiers and JSD bandwidths under ``$KDEGEN_CACHE``; tests must
neither read a user's cache (a stale entry would hide a bug) nor write to the home folder.
The tests' networks and kernel tiles are small: on 2 (possibly shared) cores, OpenMP
threads waiting for each other at every small op cost far more than they save (a tiny
MLP trains 30x slower with 2 threads than with 1 on a loaded machine).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from kdegen.evaluation.embed.classifier import forget_loaded

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's private ``$KDEGEN_CACHE`` (one digits classifier trained per session)."""
    old = os.environ.get("KDEGEN_CACHE")
    folder = tmp_path_factory.mktemp("kdegen-cache")
    os.environ["KDEGEN_CACHE"] = str(folder)
    yield folder
    forget_loaded()
    if old is None:
        os.environ.pop("KDEGEN_CACHE", None)
    else:
        os.environ["KDEGEN_CACHE"] = old
