"""The --quick versions of mode-collapse and mode-recovery, run side by side from the command
line as a user would: about 2 minutes on 2 cores (one process each), every method trained.

Their outputs are checked for what the quick sizes do reliably: WGAN-GP and the unrolled
GAN cover all of ring8 (Metz et al. Fig. 2), and on digits1000 the GANs learn numbers
(Inception Scores far above 1) without exceeding the real images' score.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _start(name: str, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "kdegen", "experiment", name, "--quick", "--out", str(out),
            "--no-progress"]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


@pytest.mark.slow  # minutes of training; tests/test_mode_*.py run tiny versions by default
def test_quick_mode_collapse_and_mode_recovery(tmp_path: Path) -> None:
    collapse, recovery = tmp_path / "collapse", tmp_path / "recovery"
    procs = [_start("mode-collapse", collapse), _start("mode-recovery", recovery)]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-2000:]
        assert "wrote" in stdout

    rows = json.loads((collapse / "results.json").read_text())["rows"]
    ring = {r["method"]: r for r in rows}
    from kdegen.experiments.mode_collapse import METHOD_OPTIONS

    assert [r["data"] for r in rows] == ["ring8"] * len(METHOD_OPTIONS)  # quick: ring8 only
    assert ring["wgan-gp"]["modes_mean"] == ring["unrolled"]["modes_mean"] == 8, ring
    assert sum(r["modes_mean"] >= 6 for r in ring.values()) >= 5, ring
    assert (collapse / "plot.png").stat().st_size > 0

    found = json.loads((recovery / "results.json").read_text())
    assert found["data"] == "digits1000" and found["steps_per_phase"] == 300
    scores = {(r["method"], r["phase"]): r for r in found["rows"]}
    real = scores[("data", "real images")]
    assert real["inception_score"] > 50  # a 97% digit classifier on real numbers
    for method in ("gan", "bigan"):
        full = scores[(method, "full from the start")]
        assert 10 < full["inception_score"] < real["inception_score"], full
        assert full["modes"] <= found["samples"]
    assert set(found["recovery_ratio"]) | set(found["not_learned"]) == {"gan", "bigan", "kdegan"}
    assert (recovery / "kdegan-after-restriction.png").is_file()
