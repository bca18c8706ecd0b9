"""Trainer behaviour: run directory, determinism, resume after an interruption, batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdegen import runs
from kdegen.config import RunConfig, TrainConfig
from kdegen.errors import UsageError
from kdegen.methods.gan import GANConfig
from kdegen.runs.directory import RunDir, load_checkpoint
from kdegen.runs.training import BatchStream

RING = "ring8:n=2000"


def small_config(steps: int, data: str = RING, **options: object) -> RunConfig:
    opts = {"latent": 4, "hidden": 32, "layers": 2, **options}
    train = TrainConfig(
        data=data, steps=steps, batch_size=32, seed=3, log_every=5, sample_every=20,
        checkpoint_every=10, grid_size=16,
    )  # fmt: skip
    return RunConfig("gan", GANConfig(**opts), train)  # type: ignore[arg-type]


def losses(run: Path) -> list[dict[str, float]]:
    """The loss columns of metrics.jsonl (timing columns differ between runs)."""
    records = RunDir(run).read_metrics()
    return [{k: v for k, v in r.items() if k == "step" or k.endswith("_loss")} for r in records]


def test_run_directory_layout(tmp_path: Path) -> None:
    run = runs.start(small_config(25), tmp_path / "r", progress=False)
    assert json.loads(run.config.read_text())["options"]["arch"] == "mlp"  # resolved
    assert (run.checkpoints / "latest.pt").is_file()
    assert sorted(p.name for p in run.checkpoints.glob("step-*.pt")) == [
        "step-0000020.pt", "step-0000025.pt"
    ]  # fmt: skip
    assert sorted(p.name for p in run.samples.iterdir()) == ["step-0000020.png", "step-0000025.png"]
    records = run.read_metrics()
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25]
    assert {"d_loss", "g_loss", "it_per_s", "samples_per_s"} <= set(records[0])
    assert load_checkpoint(run.latest)["step"] == 25


def test_seeded_runs_repeat_exactly(tmp_path: Path) -> None:
    runs.start(small_config(20), tmp_path / "a", progress=False)
    runs.start(small_config(20), tmp_path / "b", progress=False)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    other = small_config(20)
    other = RunConfig("gan", other.options, TrainConfig(**{**other.train.__dict__, "seed": 4}))
    runs.start(other, tmp_path / "c", progress=False)
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


@pytest.mark.parametrize(
    ("data", "options"),
    [(RING, {"objective": "wgan-gp"}), ("digits", {"width": 8, "latent": 8, "objective": "lsgan"})],
)
def test_resume_logs_the_same_losses_as_an_uninterrupted_run(
    tmp_path: Path, data: str, options: dict[str, object]
) -> None:
    runs.start(small_config(40, data, **options), tmp_path / "full", progress=False)
    # stop at 17 (mid log interval, off the checkpoint grid), resume to 40
    runs.start(small_config(17, data, **options), tmp_path / "part", progress=False)
    runs.resume(tmp_path / "part", progress=False, steps=40)
    assert losses(tmp_path / "full") == losses(tmp_path / "part")
    full = load_checkpoint(tmp_path / "full/checkpoints/latest.pt")["method"]["networks"]["G"]
    part = load_checkpoint(tmp_path / "part/checkpoints/latest.pt")["method"]["networks"]["G"]
    assert all(torch.equal(full[k], part[k]) for k in full)


def test_resume_rejects_changing_the_method_options(tmp_path: Path) -> None:
    runs.start(small_config(10), tmp_path / "r", progress=False)
    with pytest.raises(UsageError, match="cannot change when resuming"):
        runs.resume(tmp_path / "r", progress=False, batch_size=8)


def _wait_for_step(metrics: Path, step: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.is_file():
            lines = metrics.read_text().splitlines()
            if lines and json.loads(lines[-1])["step"] >= step:
                return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        time.sleep(0.05)
    raise AssertionError("training did not reach the step in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_continues_exactly(tmp_path: Path, signum: int) -> None:
    """A real interruption: the process stops at a step boundary with a checkpoint, and the
    resumed run's losses equal an uninterrupted run's."""
    flags = ["--data", RING, "--latent", "4", "--hidden", "32", "--layers", "2",
             "--batch-size", "32", "--seed", "5", "--log-every", "1", "--checkpoint-every",
             "1000", "--sample-every", "1000", "--no-progress"]  # fmt: skip
    cmd = [sys.executable, "-m", "kdegen", "train", *flags]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*cmd, "--steps", "100000", "--out", str(tmp_path / "stop")],
        stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    _wait_for_step(tmp_path / "stop/metrics.jsonl", 30, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"resume" in err
    stopped = load_checkpoint(tmp_path / "stop/checkpoints/latest.pt")["step"]
    assert 30 <= stopped < 100000
    target = stopped + 15
    resume = [sys.executable, "-m", "kdegen", "train", "--resume", str(tmp_path / "stop")]
    subprocess.run([*resume, "--steps", str(target), "--no-progress"], check=True, env=env)
    full = [*cmd, "--steps", str(target), "--out", str(tmp_path / "full")]
    subprocess.run(full, check=True, env=env)
    assert losses(tmp_path / "full") == losses(tmp_path / "stop")


def test_batch_stream_is_a_function_of_seed_and_index() -> None:
    a, b = BatchStream(103, 10, seed=1), BatchStream(103, 10, seed=1)
    assert a.per_epoch == 10  # the incomplete 11th batch is dropped
    epoch0 = torch.cat([a.indices(k) for k in range(10)])
    assert sorted(epoch0.tolist()) == sorted(set(epoch0.tolist()))  # no repeats in an epoch
    assert torch.equal(a.indices(13), b.indices(13)) and torch.equal(b.indices(2), epoch0[20:30])
    assert not torch.equal(a.indices(10), a.indices(0))  # a new order each epoch
    # two processes split every global batch into disjoint halves
    r0, r1 = BatchStream(100, 10, 1, rank=0, world=2), BatchStream(100, 10, 1, rank=1, world=2)
    assert r0.per_process == 5
    assert not set(r0.indices(3).tolist()) & set(r1.indices(3).tolist())
    with pytest.raises(UsageError, match="divisible"):
        BatchStream(100, 9, 1, rank=0, world=2)
    with pytest.raises(UsageError, match="fewer than one batch"):
        BatchStream(5, 10, 1)


def _record_batches(method: object) -> list[torch.Tensor]:
    """Wrap ``method.train_step`` to keep the example indices of every step's batch."""
    seen: list[torch.Tensor] = []
    step = method.train_step  # type: ignore[attr-defined]

    def recording(batch):  # type: ignore[no-untyped-def]
        seen.append(batch.index.clone())
        return step(batch)

    method.train_step = recording  # type: ignore[attr-defined]
    return seen


def test_experiment_autoencoders_train_epochs_without_replacement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Experiments train through the Trainer: one epoch of N/B steps sees every example once."""
    from kdegen.experiments import autoencoders
    from kdegen.methods import autoencoder

    bind = autoencoder.AutoEncoder.bind_data
    batches: list[list[torch.Tensor]] = []

    def bind_and_record(self, images, labels):  # type: ignore[no-untyped-def]
        batches.append(_record_batches(self))
        return bind(self, images, labels)

    monkeypatch.setattr(autoencoder.AutoEncoder, "bind_data", bind_and_record)
    images = torch.randn(96, 1, 8, 8)
    config = autoencoders.METHODS.get("ae").Config(arch="fc", latent=2, hidden=16)
    autoencoders.fit_autoencoder("ae", config, images, None, steps=6, seed=0, batch_size=16)
    idx = torch.cat(batches[0])
    assert len(idx) == 96 and sorted(idx.tolist()) == list(range(96))


def test_mode_recovery_gives_a_critic_its_batches_per_step() -> None:
    """A WGAN's step takes n_critic batches in the experiments too (not one)."""
    from kdegen.experiments import mode_recovery
    from kdegen.methods.base import DataSpec
    from kdegen.methods.gan import GAN

    data = type("D", (), {"images": torch.randn(640, 2)})()
    config = GANConfig(latent=2, hidden=8, layers=1, objective="wgan-gp", n_critic=3)
    method = GAN(config, DataSpec((2,), None, 640), torch.device("cpu"))
    seen = _record_batches(method)
    mode_recovery._train(method, data, steps=2, seed=0, label="wgan", progress=False)
    assert [len(i) for i in seen] == [3 * mode_recovery.BATCH] * 2


def test_divergence_stops_with_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14, 8: a loss that turns NaN stops the run at the next record with the step and
    the loss named; the checkpoint written before it is kept, metrics.jsonl holds no NaN,
    and the CLI exits 1 with one line."""
    from kdegen.cli import main
    from kdegen.methods.gan import GAN
    from kdegen.runs.training import TrainingDiverged

    step = GAN.train_step
    calls = {"n": 0}

    def nan_after_12(self, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        losses = step(self, batch)
        return {**losses, "d_loss": torch.tensor(float("nan"))} if calls["n"] > 12 else losses

    monkeypatch.setattr(GAN, "train_step", nan_after_12)
    config = small_config(40)  # records every 5 steps, checkpoints every 10
    with pytest.raises(TrainingDiverged, match="by step 15: d_loss") as stop:
        runs.start(config, tmp_path / "run", progress=False)
    assert stop.value.saved == 10
    text = (tmp_path / "run/metrics.jsonl").read_text()
    assert "NaN" not in text and [json.loads(r)["step"] for r in text.splitlines()] == [5, 10]
    assert load_checkpoint(tmp_path / "run/checkpoints/latest.pt")["step"] == 10
    calls["n"] = 0
    argv = ["train", "--data", RING, "--latent", "4", "--hidden", "32", "--layers", "2"]
    argv += ["--steps", "40", "--log-every", "5", "--no-progress", "--out", str(tmp_path / "cli")]
    assert main(argv) == 1


def test_a_failed_write_keeps_the_old_file_and_stale_temporaries_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14, 3: `sample --out s.npz` on a full disk replaced a valid s.npz with an
    unreadable one; a killed writer's temporary files stayed in the run directory."""
    import numpy as np

    from kdegen.data import load, save_npz

    out = tmp_path / "s.npz"
    save_npz(out, torch.zeros(4, 2))
    before = out.read_bytes()

    def disk_full(handle, **arrays):  # type: ignore[no-untyped-def]
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_npz(out, torch.ones(4, 2))
    monkeypatch.undo()
    assert out.read_bytes() == before and load(str(out)).images.shape == (4, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary left

    run = tmp_path / "run"
    runs.start(small_config(10), run, progress=False)
    stale = [run / ".config.json.999.tmp", run / "checkpoints/.latest.pt.999.tmp",
             run / "checkpoints/step-0000010.pt.tmp"]  # fmt: skip
    for path in stale:
        path.write_bytes(b"left by a killed process")
    runs.resume(run, progress=False, steps=20)
    assert not any(p.exists() for p in stale)
