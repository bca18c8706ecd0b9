"""Data-parallel training with 2 CPU processes under torchrun (gloo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_two_processes_share_gradients_and_weights(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("ddp_worker.py")
    proc = subprocess.run([*TORCHRUN, str(worker), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world"] == 2 and result["per_process_batch"] == 16
    assert result["mean_grad"] == [1.5, 1.5, 1.5]
    assert result["broadcast"] and result["same_weights"] and result["moved"]
    records = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in records] == [4, 8, 12]  # written once, by rank 0


def test_cli_under_torchrun_trains_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    flags = ["--data", "ring8:n=1000", "--latent", "4", "--hidden", "16", "--layers", "2",
             "--batch-size", "32", "--log-every", "5", "--device", "cpu",
             "--no-progress"]  # fmt: skip
    cmd = [*TORCHRUN, "-m", "kdegen", "train", *flags, "--steps", "10", "--out", str(run)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resume = [*TORCHRUN, "-m", "kdegen", "train", "--resume", str(run), "--steps", "20",
              "--no-progress"]  # fmt: skip
    proc = subprocess.run(resume, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20]
    assert (run / "checkpoints/latest.pt").is_file()


def test_kdegan_code_bank_is_gathered_across_processes(tmp_path: Path) -> None:
    """Each process refreshes its half of each iteration's bank codes; the saved bank holds
    both halves."""
    import torch

    run = tmp_path / "kde"
    flags = ["--method", "kdegan", "--data", "ring8:n=1000", "--latent", "3", "--hidden", "16",
             "--batch-size", "32", "--steps", "6", "--device", "cpu", "--no-progress"]  # fmt: skip
    proc = subprocess.run([*TORCHRUN, "-m", "kdegen", "train", *flags, "--out", str(run)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(run / "checkpoints/latest.pt", weights_only=True)
    bank = state["method"]["extra"]["bank"]
    # 6 iterations of as many codes as the batch of 32 holds, 16 per process, each member
    # of the rotation once
    assert int(bank["visits"].sum()) == 6 * 32 and int(bank["visits"].max()) == 1
