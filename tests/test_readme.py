"""The README's Python examples run as written, and its first lines are the two commands."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_make_commands() -> None:
    lines = README.read_text().splitlines()
    block = lines[lines.index("```") + 1 : lines.index("```") + 3]
    assert block[0].startswith("make run") and block[1].startswith("make test")


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    assert os.path.isdir(tmp_path / "runs/api-demo/checkpoints")
    assert tuple(namespace["x"].shape) == (1000, 2)  # type: ignore[attr-defined]
