"""Session-wide test settings: caches live in the session's temporary folder.

kdegen caches trained classifiers and JSD bandwidths under ``$KDEGEN_CACHE``; tests must
neither read a user's cache (a stale entry would hide a bug) nor write to the home folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = os.environ.get("KDEGEN_CACHE")
    os.environ["KDEGEN_CACHE"] = str(tmp_path_factory.mktemp("kdegen-cache"))
    yield
    if old is None:
        os.environ.pop("KDEGEN_CACHE", None)
    else:
        os.environ["KDEGEN_CACHE"] = old
