"""Run directories under concurrent writers, forced restarts, damaged checkpoints, full
or unwritable disks and moved data files (issue 14, items 1, 2, 5, 6 and 13). Each test
here failed on the code before the fix it names."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kdegen.cli import main
from kdegen.errors import UsageError
from kdegen.files import lock_exclusive
from kdegen.runs.checkpoint import content_digest
from kdegen.runs.directory import load_checkpoint

SMALL = ["--latent", "4", "--hidden", "16", "--layers", "2", "--batch-size", "16",
         "--log-every", "2", "--checkpoint-every", "2", "--sample-every", "100",
         "--no-progress"]  # fmt: skip
SRC = str(Path(__file__).resolve().parents[1] / "src")


def train(out: Path, *extra: str, steps: int = 4) -> int:
    return main(["train", "--data", "ring8:n=300", "--steps", str(steps), "--out", str(out),
                 *SMALL, *extra])  # fmt: skip


def files_of(root: Path) -> dict[str, bytes]:
    """Every file kdegen keeps in a run (not its lock) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdegen: error: "), lines
    return lines[0]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    out = tmp_path / "R"
    assert train(out) == 0
    return out


# ----- 2: one writer per run directory ---------------------------------------------------


def test_a_second_writer_is_refused_naming_the_process_that_holds_the_run(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: two `train --resume R` at once both ran and interleaved metrics.jsonl."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from kdegen.files import lock_exclusive
            lock = lock_exclusive(Path({str(run / ".lock")!r}))
            print("locked", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = files_of(run)
        assert main(["train", "--resume", str(run), "--steps", "8", "--no-progress"]) == 2
        line = one_error_line(capsys)
        assert f"in use by pid {holder.pid} on " in line and "wait for it" in line
        assert train(run, "--force", "--seed", "3") == 2
        assert f"pid {holder.pid}" in one_error_line(capsys)
        assert files_of(run) == before
    finally:
        holder.kill()
        holder.wait()
    # the OS released the lock with the process: the run can be resumed now
    assert main(["train", "--resume", str(run), "--steps", "6", "--no-progress"]) == 0


def test_the_lock_is_released_when_training_returns(run: Path) -> None:
    lock = lock_exclusive(run / ".lock")  # would raise if train still held it
    lock.close()


# ----- 1: --force keeps the old run until the new one has a checkpoint -------------------


def test_a_forced_start_that_fails_before_its_first_checkpoint_keeps_the_old_run(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: --force deleted the old run first; a crash in the new one lost both."""
    from kdegen.methods.gan import GAN

    before = files_of(run)
    calls = {"n": 0}
    real = GAN.train_step

    def crashing(self: GAN, batch: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory")
        return real(self, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(GAN, "train_step", crashing)
    with pytest.raises(RuntimeError, match="out of memory"):
        train(run, "--force", "--seed", "7", "--checkpoint-every", "50")
    assert files_of(run) == before
    assert sorted(p.name for p in run.iterdir()) == [
        ".lock", "checkpoints", "config.json", "metrics.jsonl", "samples"
    ]  # fmt: skip


def test_a_forced_start_replaces_the_old_run_whole(run: Path) -> None:
    old_log = (run / "metrics.jsonl").read_text()
    assert train(run, "--force", "--seed", "7", steps=6) == 0
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 7
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6] and (run / "metrics.jsonl").read_text() != old_log
    assert load_checkpoint(run / "checkpoints/latest.pt")["step"] == 6
    assert not (run / ".kdegen-new").exists() and not (run / ".kdegen-old").exists()


def test_a_swap_cut_short_by_a_crash_is_finished_by_the_next_resume(tmp_path: Path) -> None:
    """A forced start killed in the middle of its swap (a few renames) is completed, not
    left half old, half new."""
    old, new = tmp_path / "R", tmp_path / "N"
    assert train(old) == 0
    assert train(new, "--seed", "5") == 0
    # the state after config.json and metrics.jsonl were swapped, before checkpoints/
    (old / ".kdegen-old").mkdir()
    (old / ".kdegen-new").mkdir()
    for name in ("config.json", "metrics.jsonl"):
        (old / name).rename(old / ".kdegen-old" / name)
        (new / name).rename(old / name)
    for name in ("checkpoints", "samples"):
        (new / name).rename(old / ".kdegen-new" / name)
    assert main(["train", "--resume", str(old), "--steps", "6", "--no-progress"]) == 0
    assert json.loads((old / "config.json").read_text())["train"]["seed"] == 5
    assert not (old / ".kdegen-new").exists() and not (old / ".kdegen-old").exists()
    assert load_checkpoint(old / "checkpoints/latest.pt")["step"] == 6


def test_a_crashed_forced_start_leaves_the_old_run_resumable(run: Path) -> None:
    """What a SIGKILL before the first checkpoint leaves: the new run half-made beside."""
    (run / ".kdegen-new/checkpoints").mkdir(parents=True)
    (run / ".kdegen-new/config.json").write_text("{}")
    assert main(["train", "--resume", str(run), "--steps", "6", "--no-progress"]) == 0
    assert not (run / ".kdegen-new").exists()
    assert load_checkpoint(run / "checkpoints/latest.pt")["step"] == 6


# ----- 5: checksums, and no hard link between latest.pt and step-*.pt --------------------


def _storage_offset(path: Path, tensor: torch.Tensor) -> int:
    """Where the bytes of ``tensor`` lie in a checkpoint file."""
    raw = path.read_bytes()
    offset = raw.find(tensor.contiguous().numpy().tobytes())
    assert offset >= 0
    return offset


def test_a_checkpoint_altered_in_place_is_refused_naming_the_fallback(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: 400 zeroed bytes in latest.pt loaded silently and resumed with other losses."""
    latest = run / "checkpoints/latest.pt"
    weight = load_checkpoint(latest)["method"]["networks"]["G"]
    big = max(weight.values(), key=lambda t: t.numel())
    start = _storage_offset(latest, big)
    raw = bytearray(latest.read_bytes())
    raw[start : start + min(400, big.numel() * 4)] = bytes(min(400, big.numel() * 4))
    latest.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match="fails its checksum"):
        load_checkpoint(latest)
    assert main(["train", "--resume", str(run), "--steps", "8", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "latest.pt fails its checksum" in line and "step-0000004.pt" in line
    latest.unlink()  # the advice: resume from the numbered checkpoint
    assert main(["train", "--resume", str(run), "--steps", "8", "--no-progress"]) == 0


def test_zeroed_bytes_anywhere_never_load_as_other_weights(run: Path, tmp_path: Path) -> None:
    latest = run / "checkpoints/latest.pt"
    raw = latest.read_bytes()
    reference = load_checkpoint(latest)
    damaged = tmp_path / "damaged.pt"
    for at in range(0, len(raw) - 64, max(1, len(raw) // 60)):
        damaged.write_bytes(raw[:at] + bytes(64) + raw[at + 64 :])
        try:
            state = load_checkpoint(damaged)
        except UsageError:
            continue
        assert content_digest(state) == content_digest(reference), at


def test_latest_and_numbered_checkpoints_are_separate_files(run: Path) -> None:
    """Before: step-*.pt was a hard link to latest.pt: one bad write damaged both."""
    latest = (run / "checkpoints/latest.pt").stat()
    numbered = (run / "checkpoints/step-0000004.pt").stat()
    assert latest.st_ino != numbered.st_ino and latest.st_nlink == 1


def test_the_checksum_sees_every_value_and_no_layout() -> None:
    state = {"a": torch.arange(6.0).reshape(2, 3), "b": {1: [torch.zeros(2), "x", 0.5]}}
    same = {"b": {1: [torch.zeros(2), "x", 0.5]}, "a": torch.arange(6.0).reshape(2, 3)}
    assert content_digest(state) == content_digest(same)
    for changed in (
        {**state, "a": state["a"].clone().index_put_((torch.tensor([0]),), torch.tensor(9.0))},
        {**state, "a": state["a"].reshape(3, 2)},
        {**state, "a": state["a"].double()},
        {**state, "b": {1: [torch.zeros(2), "y", 0.5]}},
        {**state, "b": {"1": [torch.zeros(2), "x", 0.5]}},
        {**state, "b": {1: [torch.zeros(2), "x", -0.5]}},
    ):
        assert content_digest(changed) != content_digest(state)


# ----- 6: unwritable --out and full disks ------------------------------------------------


def test_an_unwritable_out_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a Python traceback (PermissionError)."""
    assert train(Path("/sys/kdegen-cannot-write-here")) == 2
    line = one_error_line(capsys)
    assert "/sys/kdegen-cannot-write-here" in line and "permission" in line.lower()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # pragma: no cover  # CI runs as root
    tmp_path.chmod(0o500)
    try:
        assert train(tmp_path / "R") == 2
        assert "Permission denied" in one_error_line(capsys)
    finally:
        tmp_path.chmod(0o700)


def _with_file_size_limit(limit: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``kdegen argv`` in a process that may not write files over ``limit`` bytes: the
    operating system fails its writes as a full disk does (EFBIG instead of ENOSPC)."""

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "kdegen", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        preexec_fn=limit_files,
        timeout=120,
    )


def test_a_full_disk_keeps_the_file_sample_would_replace(run: Path, tmp_path: Path) -> None:
    """Before: torch's or numpy's traceback; the old file was replaced by a truncated one."""
    out = tmp_path / "s.npz"
    assert main(["sample", str(run), "--n", "10", "--out", str(out)]) == 0
    before = out.read_bytes()
    done = _with_file_size_limit(4096, ["sample", str(run), "--n", "20000", "--out", str(out)])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdegen: error: File too large: "), lines
    assert str(out) in lines[0] and "write elsewhere" in lines[0]
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_a_disk_that_fills_mid_run_stops_and_names_the_last_good_checkpoint(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import kdegen.runs.directory as directory

    real = directory.write_bytes_atomic

    def fills_at_step_8(path: Path, data: bytes) -> None:
        if load_step(data) >= 8:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    def load_step(data: bytes) -> int:
        import io

        return int(torch.load(io.BytesIO(data), weights_only=True)["step"])

    monkeypatch.setattr(directory, "write_bytes_atomic", fills_at_step_8)
    assert main(["train", "--resume", str(run), "--steps", "12", "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert "training stopped at step 8: No space left on device" in line
    assert "last good checkpoint (step 6)" in line and f"--resume {run}" in line
    assert load_checkpoint(run / "checkpoints/latest.pt")["step"] == 6


# ----- 13: data files by resolved path ---------------------------------------------------


def test_a_relative_data_path_resumes_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: config.json kept `pts.npz` as typed: resuming elsewhere found no file, and
    the absolute path was refused as a change of data."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.savez(data / "pts.npz", images=rng.normal(size=(200, 2)).astype(np.float32))
    monkeypatch.chdir(data)
    argv = ["train", "--data", "pts.npz", "--steps", "4", "--out", "../R", *SMALL]
    assert main(argv) == 0
    config = json.loads((tmp_path / "R/config.json").read_text())
    assert config["train"]["data"] == str(data / "pts.npz")
    assert config["data_file"]["bytes"] == (data / "pts.npz").stat().st_size
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "R", "--steps", "6", "--no-progress"]) == 0
    again = ["train", "--resume", "R", "--data", str(data / "pts.npz"), "--steps", "8"]
    assert main([*again, "--no-progress"]) == 0
    capsys.readouterr()
    np.savez(data / "pts.npz", images=rng.normal(size=(300, 2)).astype(np.float32))
    os.utime(data / "pts.npz", (time.time() + 5, time.time() + 5))
    assert main(["train", "--resume", "R", "--steps", "10", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "kdegen: warning: " in err and "changed since the run started" in err
    np.savez(tmp_path / "other.npz", images=rng.normal(size=(200, 2)).astype(np.float32))
    other = ["train", "--resume", "R", "--data", "other.npz", "--steps", "12"]
    assert main(other) == 2
    assert "--data cannot change" in one_error_line(capsys)
