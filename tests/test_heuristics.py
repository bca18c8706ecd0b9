"""The training heuristics of the thesis, Sec. 2.4.1 (kdegen.methods.heuristics): each
does what it says in every GAN-family method, checked against direct computations."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdegen.cli import main
from kdegen.methods import METHODS, Batch, DataSpec, Method
from kdegen.methods.heuristics import InstanceNoise, noise_std, real_targets, weight_layers
from kdegen.objectives import OBJECTIVES

CPU = torch.device("cpu")
POINTS = DataSpec((2,), None, 400)
DIGITS = DataSpec((1, 8, 8), 10, 400)
FAMILY = ["gan", "kdegan", "bigan", "pacgan", "unrolled", "cgan", "acgan", "ssgan"]


def make(name: str, spec: DataSpec, **kw: Any) -> Method:
    torch.manual_seed(0)
    cls = METHODS.get(name)
    small = {"width": 8, "latent": 6} if spec.is_image else {"hidden": 16, "layers": 2}
    extra = {"rev_restarts": 0} if name == "kdegan" else {}
    method: Method = cls(cls.Config(**small, **extra, **kw), spec, CPU)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(spec.size, *spec.shape, generator=g).clamp(-1, 1)
    y = torch.arange(spec.size) % 10 if spec.num_classes else None
    method.bind_data(x, y)
    return method


def batch(method: Method, spec: DataSpec, seed: int) -> Batch:
    n = 16 * method.batches_per_step
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *spec.shape, generator=g).clamp(-1, 1)
    y = torch.arange(n) % 10 if spec.num_classes else None
    return Batch(x, y, torch.arange(n))


@pytest.mark.parametrize("start", ["input", "output"])
@pytest.mark.parametrize("name", FAMILY)
def test_frozen_layers_keep_their_initial_weights_bitwise(name: str, start: str) -> None:
    spec = DIGITS if name in ("cgan", "acgan", "ssgan") else POINTS
    objective = "wgan" if name == "gan" else "non-saturating"  # wgan clips every weight
    count = 1 if spec.is_image else 2
    m = make(name, spec, freeze_d_layers=count, freeze_d_from=start, objective=objective)
    D: nn.Module = m.networks()["D"]
    layers = weight_layers(D)
    frozen = layers[:count] if start == "input" else layers[-count:]
    moving = [layer for layer in layers if all(layer is not f for f in frozen)]
    before = [[p.detach().clone() for p in layer.parameters()] for layer in layers]
    for step in range(3):
        m.train_step(batch(m, spec, step))
    for layer, old in zip(layers, before, strict=True):
        same = all(torch.equal(p, q) for p, q in zip(layer.parameters(), old, strict=True))
        assert same == any(layer is f for f in frozen), (name, layer)
    assert moving  # the rest of D learns


def test_freezing_more_layers_than_the_discriminator_has_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["train", "--data", "ring8", "--layers", "2", "--freeze-d-layers", "4"]
    assert main([*argv, "--steps", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdegen: error: --freeze-d-layers 4: the discriminator has 3 weight")
    assert err.endswith("give at most 2")
    assert not (tmp_path / "r").exists()


def test_real_targets_are_the_ones_asked() -> None:
    v = torch.zeros(200_000)
    assert torch.equal(real_targets(v, 0.9, 0.0), torch.full_like(v, 0.9))
    torch.manual_seed(0)
    t = real_targets(v, 0.9, 0.3)
    assert t.unique().tolist() == [0.0, pytest.approx(0.9)]
    flipped = float((t == 0).double().mean())
    assert abs(flipped - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(v))  # binomial, 4 sigma


@pytest.mark.parametrize("objective", ["minimax", "non-saturating", "lsgan"])
def test_targeted_losses_match_their_closed_forms(objective: str) -> None:
    torch.manual_seed(1)
    vr, vf, t = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64), None
    t = torch.rand(50, dtype=torch.float64)
    obj = OBJECTIVES.get(objective)
    assert obj.targeted_d_loss is not None
    got = obj.targeted_d_loss(vr, vf, t)
    if objective == "lsgan":
        want = 0.5 * ((vr - t) ** 2).mean() + 0.5 * (vf**2).mean()
    else:  # the cross-entropy of sigmoid(v) against the targets
        want = F.binary_cross_entropy(torch.sigmoid(vr), t) + F.binary_cross_entropy(
            torch.sigmoid(vf), torch.zeros_like(vf)
        )
    torch.testing.assert_close(got, want)
    ones = torch.ones_like(vr)
    torch.testing.assert_close(obj.targeted_d_loss(vr, vf, ones), obj.d_loss(vr, vf))


def test_the_method_trains_its_discriminator_on_the_smoothed_targets() -> None:
    m = make("gan", POINTS, label_smoothing=0.8)
    vr, vf = torch.randn(30), torch.randn(30)
    want = F.binary_cross_entropy_with_logits(vr, torch.full_like(vr, 0.8))
    want = want + F.binary_cross_entropy_with_logits(vf, torch.zeros_like(vf))
    torch.testing.assert_close(m.d_loss(vr, vf), want)  # type: ignore[attr-defined]


@pytest.mark.parametrize("objective", ["wgan-gp", "hinge", "fgan-kl"])
def test_label_heuristics_are_refused_where_there_is_no_label(
    objective: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for flag in (["--label-smoothing", "0.9"], ["--label-flip", "0.1"]):
        argv = ["train", "--data", "ring8", "--objective", objective, *flag]
        assert main([*argv, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{flag[0]} changes the real examples' label" in err[0]
        assert "minimax, non-saturating, lsgan" in err[0]


def test_instance_noise_has_the_scheduled_std_and_is_logged(tmp_path: Path) -> None:
    out = tmp_path / "r"
    argv = ["train", "--data", "ring8:n=300", "--steps", "20", "--batch-size", "16",
            "--hidden", "8", "--layers", "1", "--log-every", "1", "--instance-noise", "0.5",
            "--instance-noise-decay", "7", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for record in logged:  # the std of the step that ended at record["step"]
        want = 0.5 * math.exp(-(record["step"] - 1) / 7)
        assert record["instance_noise"] == pytest.approx(want, rel=1e-12)
    assert json.loads((out / "config.json").read_text())["options"]["instance_noise_decay"] == 7


def test_instance_noise_adds_gaussian_noise_of_that_std_in_training_only() -> None:
    net = nn.Identity()
    hook = InstanceNoise(net)
    hook.std = noise_std(0.5, 50.0, 25)
    assert hook.std == pytest.approx(0.5 * math.exp(-0.5))
    torch.manual_seed(0)
    x = torch.zeros(200_000)
    noise = net(x)
    assert abs(float(noise.std()) - hook.std) < 4 * hook.std / math.sqrt(2 * len(x))
    assert abs(float(noise.mean())) < 4 * hook.std / math.sqrt(len(x))
    net.eval()
    assert torch.equal(net(x), x)


@pytest.mark.parametrize("name", ["gan", "cgan"])
def test_g_steps_updates_the_generator_k_times_per_discriminator_update(name: str) -> None:
    spec = DIGITS if name == "cgan" else POINTS
    m = make(name, spec, g_steps=3)
    for step in range(2):
        m.train_step(batch(m, spec, step))
    opts = m.optimizers()
    steps = {k: {int(s["step"]) for s in o.state.values()} for k, o in opts.items()}
    assert steps == {"G": {6}, "D": {2}}


def test_quick_heuristics_experiment_writes_table_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kdegen.experiments import heuristics as hx

    argv = ["experiment", "heuristics", "--quick", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "freezing beats noise and flipping" in out or "freezing does not beat" in out
    data = json.loads((tmp_path / "results.json").read_text())
    labels = list(hx.HEURISTICS)
    assert [(r["data"], r["heuristic"]) for r in data["rows"]] == [
        (d, h) for d in ("grid25", "digits") for h in labels
    ]
    for row in data["rows"]:
        if row["data"] == "grid25":
            assert 0 <= row["modes_mean"] <= 25 and 0 <= row["high_quality"] <= 1
            assert row["is_final"] is None
        else:
            assert 1 <= row["is_final"] <= 10 and row["fid_final"] >= 0
    assert set(data["digits_ranking"]) == set(labels)
    assert data["curves"]["digits/plain"][0]["steps"] == [30, 60]
    config = json.loads((tmp_path / "runs/digits-noise-0.2-seed0/config.json").read_text())
    assert config["options"]["instance_noise"] == 0.2
    assert config["options"]["instance_noise_decay"] == 60 / hx.NOISE_FOLDS
    both = json.loads((tmp_path / "runs/grid25-freeze-1+flip-0.1-seed0/config.json").read_text())
    assert both["options"]["freeze_d_layers"] == 1 and both["options"]["label_flip"] == 0.1
    assert (tmp_path / "plot.png").stat().st_size > 0
    assert main(argv) == 0  # every run is a part: the second time reuses them all
    assert "reusing 14 of 14 finished parts" in capsys.readouterr().err
