"""Hierarchical ALI: the joint the discriminator judges, the reconstructions through each
level, `kdegen encode` on it, and its experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kdegen.cli import main
from kdegen.methods import METHODS, DataSpec
from kdegen.methods.hali import HALI
from kdegen.nets.joint import join

CPU = torch.device("cpu")
IMAGES = DataSpec((1, 8, 8), 10, 400)


def make(**kw: object) -> HALI:
    torch.manual_seed(0)
    cls = METHODS.get("hali")
    method = cls(cls.Config(width=8, latent=3, latent1=5, **kw), IMAGES, CPU)
    assert isinstance(method, HALI)
    return method


def test_the_discriminator_sees_x_z1_z2_of_each_path() -> None:
    m = make()
    E, G = m.levels()
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    z1 = E.first(x)
    torch.testing.assert_close(m.real_input(x), join(x, torch.cat([z1, E.second(z1)], 1)))
    z2 = torch.randn(4, 3)
    g1 = G.first(z2)
    torch.testing.assert_close(m.fake_input(z2), join(G.second(g1), torch.cat([g1, z2], 1)))
    assert z1.shape == (4, 5) and m.encode(x).shape == (4, 3)
    assert m.sample(6).shape == (6, 1, 8, 8)


def test_each_level_reconstructs_through_its_own_path() -> None:
    m = make()
    m.G.eval()
    m.E.eval()
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    E, G = m.levels()
    levels = m.level_reconstructions(x)
    assert list(levels) == ["z1", "z2"]
    with torch.no_grad():
        torch.testing.assert_close(levels["z1"], G.second(E.first(x)))
        torch.testing.assert_close(levels["z2"], G.second(G.first(E.second(E.first(x)))))


def test_encode_writes_both_levels_and_a_three_row_grid(tmp_path: Path) -> None:
    run = tmp_path / "hali"
    argv = ["train", "--method", "hali", "--data", "digits", "--steps", "3", "--width", "8",
            "--batch-size", "16", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "codes.npz"
    assert main(["encode", str(run), "--data", "digits", "--n", "20", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["codes"].shape == (20, 64)
        x = torch.from_numpy(np.asarray(f["reconstructions_z1"]))
        assert x.shape == (20, 1, 8, 8)
        errors = {k: np.asarray(f[f"errors_{k}"]) for k in ("z1", "z2")}
        np.testing.assert_allclose(errors["z2"], np.asarray(f["loss"]), rtol=1e-5)
    from PIL import Image

    width, height = Image.open(out.with_suffix(".png")).size
    assert height < width and height > 2 * 8  # rows: data, level 1, level 2


def test_quick_hali_levels_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["experiment", "hali-levels", "--quick", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    assert "HALI's reconstructions through z1" in capsys.readouterr().out
    data = json.loads((tmp_path / "results.json").read_text())
    names = [r["reconstruction"] for r in data["rows"]]
    assert names == ["bigan", "hali via z1", "hali via z2", "test images (ceiling)"]
    for row in data["rows"]:
        assert row["mse"] >= 0 and 0 <= row["class_agreement"] <= 1
    assert data["ceiling"] > 0.8 and (tmp_path / "plot.png").stat().st_size > 0
