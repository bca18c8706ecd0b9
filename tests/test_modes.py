"""Mode coverage on the 2-D mixtures: the GAN trainer learns all modes, sharply."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdegen import runs
from kdegen.config import RunConfig, TrainConfig
from kdegen.data import load
from kdegen.methods.gan import GANConfig


def coverage(run: Path, data: str) -> tuple[int, float]:
    """(modes hit by a high-quality sample, share of samples within 3 std of a centre)."""
    method = runs.load_run(run, "cpu").method
    mixture = load(data, split="test")
    assert mixture.centres is not None and mixture.std is not None
    samples = method.sample(2500, torch.Generator().manual_seed(0))
    nearest, mode = torch.cdist(samples, mixture.centres).min(1)
    good = nearest < 3 * mixture.std
    return int(mode[good].unique().numel()), float(good.float().mean())


def train(tmp_path: Path, data: str, steps: int, batch: int, **options: object) -> Path:
    config = RunConfig(
        "gan",
        GANConfig(lr_decay="linear", **options),  # type: ignore[arg-type]
        TrainConfig(data=data, steps=steps, batch_size=batch, seed=0, log_every=100,
                    sample_every=steps, checkpoint_every=steps),
    )  # fmt: skip
    return runs.start(config, tmp_path / str(options.get("objective")), progress=False).path


def test_quick_ring8_non_saturating(tmp_path: Path) -> None:
    run = train(tmp_path, "ring8", 1500, 128, objective="non-saturating")
    modes, quality = coverage(run, "ring8")
    assert modes >= 6 and quality >= 0.3, (modes, quality)


@pytest.mark.slow
def test_grid25_non_saturating(tmp_path: Path) -> None:
    run = train(tmp_path, "grid25", 10000, 256, objective="non-saturating")
    modes, quality = coverage(run, "grid25")
    print(f"grid25 {run.name}: {modes} modes, {quality:.1%} high quality")
    assert modes >= 20 and quality >= 0.7, (modes, quality)


@pytest.mark.slow
def test_grid25_wgan_gp(tmp_path: Path) -> None:
    run = train(tmp_path, "grid25", 8000, 128, objective="wgan-gp", n_critic=3, gp_weight=1.0,
                lr_g=2e-3, beta2=0.9)  # fmt: skip
    modes, quality = coverage(run, "grid25")
    print(f"grid25 {run.name}: {modes} modes, {quality:.1%} high quality")
    assert modes >= 20 and quality >= 0.7, (modes, quality)
