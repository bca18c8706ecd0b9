"""ModNet (thesis Sec. 2.5): the zero delta gives back the input exactly, the combination
rules against their closed forms, Eq. 2.5 against a direct cross-entropy, both variants'
contract (a frozen classifier stays frozen), and ``kdegen modnet``. Resume (separate
variant) is in test_contract.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdegen import runs
from kdegen.cli import main
from kdegen.config import RunConfig, TrainConfig
from kdegen.errors import UsageError
from kdegen.methods import Batch, DataSpec
from kdegen.methods.modnet import ModNet, ModNetConfig, apply_delta
from kdegen.nets.unet import UNet, auto_depth

SPEC = DataSpec((1, 8, 8), 10, 64)
VARIANTS = {
    "shared": {},
    "separate": {"variant": "separate"},
    "frozen": {"variant": "separate", "pretrain_epochs": 1, "freeze_classifier": True},
}


def build(**kw: object) -> ModNet:
    torch.manual_seed(0)
    m = ModNet(ModNetConfig(width=8, **kw), SPEC, torch.device("cpu"))  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(1)
    m.bind_data(torch.rand(64, 1, 8, 8, generator=g) * 2 - 1, torch.arange(64) % 10)
    return m


def images(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Images in [-1, 1] with saturated pixels, as real digits have."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 8, 8, generator=g) * 3 - 1.5).clamp(-1, 1)


def batch(seed: int = 0) -> Batch:
    return Batch(images(16, seed), torch.arange(16) % 10, torch.arange(16))


@pytest.mark.parametrize("combine", ["tanh", "clip"])
def test_zero_delta_gives_back_the_input_exactly(combine: str) -> None:
    m = build(combine=combine)
    x = images()
    assert bool((x == -1).any()) and bool((x == 1).any())
    assert not torch.equal(m.transform(x, torch.full((16,), 3)), x)  # initial G changes x
    with torch.no_grad():
        m.G.last.weight.zero_()  # type: ignore[union-attr, operator]
        m.G.last.bias.zero_()  # type: ignore[union-attr, operator]
    target = torch.arange(16) % 10
    assert torch.equal(m.transform(x, target), x)
    m.G.train()
    assert torch.equal(m.modify(x, target), x)


def test_combination_rules_closed_forms() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1000, generator=g, dtype=torch.float64) * 1.9 - 0.95  # |x| <= 1 - margin
    u = torch.randn(1000, generator=g, dtype=torch.float64) * 3
    torch.testing.assert_close(apply_delta(x, u, "tanh", 0.05), torch.tanh(torch.atanh(x) + u))
    torch.testing.assert_close(apply_delta(x, u, "clip"), (x + torch.tanh(u)).clamp(-1, 1))
    edge = torch.tensor([-1.0, 1.0, -0.99], dtype=torch.float64)
    step = torch.tensor([2.0, -2.0, 1.0], dtype=torch.float64)
    out = apply_delta(edge, step, "tanh", 0.05)
    assert bool((out.abs() <= 1).all())
    assert out[0] > -1 and out[1] < 1  # saturated pixels can change
    # the same change of pre-tanh value as a pixel at the margin
    torch.testing.assert_close(out[0] + 1, torch.tanh(torch.atanh(torch.tensor(-0.95)) + 2).double()
                               + 0.95)  # fmt: skip


def test_unet_shapes() -> None:
    assert auto_depth(28, 28) == 2 and auto_depth(8, 8) == 1 and auto_depth(32, 32) == 3
    for size in ((28, 28), (8, 8), (28, 84), (7, 9)):
        net = UNet(3, 4, size, width=4, depth=1 if min(size) < 8 else 0)
        out = net(torch.randn(2, 3, *size), torch.tensor([0, 3]))
        assert out.shape == (2, 3, *size)
    with pytest.raises(UsageError):
        UNet(1, 10, (4, 4), depth=3)


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    picked = logits.gather(1, y[:, None]).squeeze(1)
    return (torch.log(torch.exp(logits).sum(1)) - picked).mean()


def test_label_loss_is_eq_2_5() -> None:
    m = build(class_weight=0.5, classify_fakes=True)
    x, y = images(), torch.arange(16) % 10
    target = (y + 3) % 10
    with torch.no_grad():
        fake = m.modify(x, target)
        expected = 0.5 * (
            _cross_entropy(m.D(x)[:, 1:], y) + _cross_entropy(m.D(fake)[:, 1:], target)
        )
    out = m.discriminator_step(x, y, fake, target)
    torch.testing.assert_close(out["label_loss"], expected, rtol=1e-5, atol=1e-6)
    real_only = build(class_weight=0.5, classify_fakes=False)
    with torch.no_grad():
        expected = 0.5 * _cross_entropy(real_only.D(x)[:, 1:], y)
    out = real_only.discriminator_step(x, y, fake, target)
    torch.testing.assert_close(out["label_loss"], expected, rtol=1e-5, atol=1e-6)
    g_out = m.generator_step(x, target)
    assert math.isfinite(float(g_out["l1_loss"])) and 0 <= float(g_out["target_acc"]) <= 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_contract(variant: str) -> None:
    m = build(**VARIANTS[variant])
    before = {k: [p.detach().clone() for p in net.parameters()] for k, net in m.networks().items()}
    losses = m.train_step(batch())
    assert {"d_loss", "g_loss", "l1_loss", "g_label_loss"} <= set(losses)
    assert all(math.isfinite(float(v)) for v in losses.values())
    for k, net in m.networks().items():
        changed = any(
            not torch.equal(a, b) for a, b in zip(before[k], net.parameters(), strict=True)
        )
        assert changed == (variant != "frozen" or k != "C"), k
    other = build(**VARIANTS[variant])
    other.load_state_dict(m.state_dict())
    assert other.pretrained == m.pretrained == (variant == "frozen")
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(m.sample(6, g1), other.sample(6, g2))
    x = images(5)
    assert torch.equal(m.classify(x), other.classify(x))
    assert m.classify(x).shape == (5, 10)


@pytest.mark.parametrize("variant", VARIANTS)
def test_seeded_steps_repeat(variant: str) -> None:
    a, b = build(**VARIANTS[variant]), build(**VARIANTS[variant])
    for m in (a, b):
        torch.manual_seed(7)
        m.train_step(batch())
    sa, sb = a.state_dict()["networks"], b.state_dict()["networks"]
    assert all(torch.equal(sa[n][k], sb[n][k]) for n in sa for k in sa[n])


def test_frozen_classifier_is_pretrained_once() -> None:
    m = build(**VARIANTS["frozen"])
    assert m.C is not None and m.opt_c is None and "C" not in m.optimizers()
    weights = [p.detach().clone() for p in m.C.parameters()]
    m.bind_data(torch.zeros(64, 1, 8, 8), torch.zeros(64, dtype=torch.long))  # a resume
    assert all(torch.equal(a, b) for a, b in zip(weights, m.C.parameters(), strict=True))


@pytest.mark.parametrize("objective", ["wgan-gp", "wgan", "hinge"])
def test_any_objective(objective: str) -> None:
    losses = build(objective=objective).train_step(batch())
    assert all(math.isfinite(float(v)) for v in losses.values())
    assert ("gp_loss" in losses) == (objective == "wgan-gp")


@pytest.mark.parametrize(
    ("options", "expect"),
    [
        ({"freeze_classifier": True, "variant": "separate"}, "--pretrain-epochs"),
        ({"pretrain_epochs": 2}, "--variant separate"),
        ({"variant": "both"}, "--variant"),
        ({"margin": 1.0}, "--margin"),
        ({"lam": -1.0}, "--lam"),
    ],
)
def test_bad_config(options: dict[str, object], expect: str) -> None:
    with pytest.raises(UsageError, match=expect):
        ModNetConfig(**options)  # type: ignore[arg-type]


def test_needs_labelled_images() -> None:
    with pytest.raises(UsageError, match="images"):
        ModNet(ModNetConfig(), DataSpec((2,), 8, 10), torch.device("cpu"))
    with pytest.raises(UsageError, match="labelled"):
        ModNet(ModNetConfig(), DataSpec((1, 8, 8), None, 10), torch.device("cpu"))
    m = ModNet(ModNetConfig(width=4), SPEC, torch.device("cpu"))
    with pytest.raises(UsageError, match="kdegen modnet"):
        m.sample(4)  # no training images bound (a loaded run)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("modnet") / "run"
    assert main(["train", "--method", "modnet", "--data", "digits", "--width", "4", "--steps", "3",
                 "--batch-size", "16", "--sample-every", "3", "--no-progress",
                 "--out", str(out)]) == 0  # fmt: skip
    return out


def test_cli_modnet_and_classify(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert list((run / "samples").glob("*.png"))  # the trainer's grid of modified images
    png = tmp_path / "m.png"
    argv = ["modnet", str(run), "--data", "digits", "--target", "3", "--n", "5", "--out", str(png)]
    assert main(argv) == 0
    assert "/5 outputs" in capsys.readouterr().out
    picture = np.asarray(Image.open(png))
    assert picture.shape == (3 * (8 + 2) + 2, 5 * (8 + 2) + 2)  # rows: inputs, deltas, outputs
    assert main(["classify", str(run), "--data", "digits"]) == 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--target", "10"], "--target 10 is not a class"),
        (["--target", "-1"], "--target -1 is not a class"),
        (["--target", "3", "--n", "0"], "--n"),
        (["--target", "x"], "invalid int"),
        (["--target", "3", "--data", "ring8"], "shape"),
    ],
)
def test_cli_bad_inputs(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expect: str
) -> None:
    data = [] if "--data" in argv else ["--data", "digits"]
    assert main(["modnet", str(run), *data, *argv, "--out", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "m.png").exists()


def test_cli_needs_a_modnet_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gan = tmp_path / "gan"
    assert main(["train", "--data", "ring8:n=64", "--steps", "1", "--batch-size", "16",
                 "--no-progress", "--out", str(gan)]) == 0  # fmt: skip
    argv = [
        "modnet",
        str(gan),
        "--data",
        "ring8",
        "--target",
        "1",
        "--out",
        str(tmp_path / "m.png"),
    ]
    assert main(argv) == 2
    assert "--method modnet" in capsys.readouterr().err


def test_augmentation_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kdegen.experiments import modnet_augment as experiment
    from kdegen.experiments.base import Settings, run_experiment

    # the pipeline at a smaller size than --quick (ModNet 20 steps, classifiers 30 updates)
    monkeypatch.setitem(experiment.PLANS, True, experiment.Size(20, 4, 16, 30, 1))
    outcome = run_experiment("modnet-augment", Settings(tmp_path, True, "digits", progress=False))
    assert [r["n_real"] for r in outcome.rows] == [10, 100, 1000]
    for r in outcome.rows:
        assert r["n_generated"] == 9 * r["n_real"]
        assert 0 <= r["acc_real"] <= 1 and 0 <= r["acc_augmented"] <= 1
    for name in ("table.md", "results.json", "plot.png", "modifications.png"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "runs" / "modnet" / "checkpoints" / "latest.pt").is_file()


@pytest.mark.slow
def test_modnet_changes_digits_into_their_targets(tmp_path: Path) -> None:
    """On mnist5k the evaluation classifier, which ModNet never saw, reads the target in
    most modified test digits (measured: 65% after 1,000 steps; 1% with --classify-fakes)."""
    from kdegen.experiments.base import Settings, embed_all, reference_classifier

    train = TrainConfig(data="mnist5k", steps=1000, seed=0, sample_every=1000,
                        checkpoint_every=1000)  # fmt: skip
    runs.start(RunConfig("modnet", ModNetConfig(width=16), train), tmp_path / "run",
               progress=False)  # fmt: skip
    method = runs.load_run(tmp_path / "run", "cpu").method
    assert isinstance(method, ModNet)
    embedding, ref = reference_classifier("mnist5k", Settings(tmp_path, progress=False))
    assert ref.test.labels is not None
    x, y = ref.test.images[:500], ref.test.labels[:500]
    target = (y + 1 + torch.arange(500) % 9) % 10
    probs = embed_all(embedding, method.transform(x, target)).probs
    assert probs is not None
    rate = float((probs.argmax(1).cpu() == target).double().mean())
    assert rate > 0.4, rate


def test_learning_rates_default_and_decay_as_for_the_gan_family() -> None:
    """ModNet shares the GAN family's objective and learning-rate options: 2e-4 for images
    by default, and --lr-decay linear scales every optimizer (the classifier's too)."""
    config = ModNetConfig(width=8, variant="separate", lr_decay="linear", lr_d=1e-3)
    model = ModNet(config, SPEC, torch.device("cpu"))
    assert model.config.lr_g == 2e-4 and model.config.lr_d == 1e-3
    model.set_progress(30, 40)
    assert model.opt_c is not None
    got = [g["lr"] for opt in (model.opt_g, model.opt_d, model.opt_c) for g in opt.param_groups]
    assert got == pytest.approx([2e-4 / 4, 1e-3 / 4, 1e-3 / 4])
