"""The GAN family of the tutorial: gan, kdegan, bigan, unrolled, pacgan, minibatch
discrimination and feature matching. Contract tests over option variants of the methods
(each method's plain settings are in test_contract.py), then each technique against a
closed form or an independent computation."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from kdegen import runs
from kdegen.cli import main
from kdegen.config import RunConfig, TrainConfig
from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.methods import METHODS, Batch, DataSpec, Method, unrolled
from kdegen.methods.bigan import BiGAN
from kdegen.methods.pacgan import PacGANConfig, pack
from kdegen.methods.unrolled import (
    AdamMoments,
    UnrolledConfig,
    UnrolledGAN,
    UnrollRule,
    unrolled_generator_loss,
)
from kdegen.nets import build_pair
from kdegen.nets.minibatch import (
    MinibatchDiscrimination,
    add_minibatch_discrimination,
    feature_matching_loss,
)
from kdegen.objectives import OBJECTIVES
from kdegen.runs.directory import RunDir
from kdegen.runs.training import Trainer

CPU = torch.device("cpu")
POINTS = DataSpec((2,), None, 400)
IMAGES = DataSpec((1, 8, 8), 10, 400)

MBD = {"minibatch_discrimination": 4, "minibatch_dim": 3}
# option variants: objectives with a regulariser, minibatch discrimination, feature matching,
# unrolling and packing settings (test_contract.py runs each method's plain settings)
CASES: list[tuple[str, dict[str, Any]]] = [
    ("gan", {"objective": "wgan-gp"}),
    ("gan", MBD),
    ("gan", {"feature_matching": True}),
    ("bigan", {"objective": "wgan", "feature_matching": True}),
    ("unrolled", {"unroll_steps": 2}),
    ("unrolled", {"unroll_steps": 2, "unroll_optimizer": "sgd", "first_order": True, **MBD}),
    ("pacgan", {"pack": 3, "objective": "wgan-gp", **MBD}),
    # the thesis's training heuristics (test_heuristics.py checks what each does)
    ("gan", {"g_steps": 2, "label_flip": 0.2, "instance_noise": 0.3, "freeze_d_layers": 1}),
    ("unrolled", {"unroll_steps": 2, "label_smoothing": 0.9, "freeze_d_layers": 1}),
    ("bigan", {"objective": "lsgan", "label_flip": 0.1, "instance_noise": 0.2}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in CASES]


def options(spec: DataSpec, **kw: Any) -> dict[str, Any]:
    """Small networks: DCGAN width 8 for images, 2 x 16 MLPs for points."""
    small = {"width": 8, "latent": 6} if spec.is_image else {"hidden": 16, "layers": 2, "latent": 3}
    return {**small, **kw}


def make(name: str, spec: DataSpec, seed: int = 0, **kw: Any) -> Method:
    """The method, bound (as the trainer does) to a training set of ``spec.size`` examples."""
    torch.manual_seed(seed)
    cls = METHODS.get(name)
    method: Method = cls(cls.Config(**options(spec, **kw)), spec, CPU)
    data = torch.randn(spec.size, *spec.shape, generator=torch.Generator().manual_seed(9))
    method.bind_data(data.clamp(-1, 1) if spec.is_image else data, None)
    return method


def batch_for(method: Method, spec: DataSpec, seed: int = 1) -> Batch:
    n = 16 * method.batches_per_step
    x = torch.randn(n, *spec.shape, generator=torch.Generator().manual_seed(seed))
    return Batch(x.clamp(-1, 1) if spec.is_image else x, None, torch.arange(n))


def weights(method: Method) -> dict[str, list[Tensor]]:
    return {k: [p.detach().clone() for p in m.parameters()] for k, m in method.networks().items()}


# ----- contracts ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [POINTS, IMAGES], ids=["points", "images"])
@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_step_is_finite_and_moves_every_network(
    name: str, kw: dict[str, Any], spec: DataSpec
) -> None:
    method = make(name, spec, **kw)
    before = weights(method)
    losses = method.train_step(batch_for(method, spec))
    assert {"d_loss", "g_loss"} <= set(losses)
    assert all(math.isfinite(float(v)) for v in losses.values()), losses
    after = weights(method)
    for net, params in before.items():
        assert any(not torch.equal(a, b) for a, b in zip(params, after[net], strict=True)), net
    assert method.sample(5).shape == (5, *spec.shape)


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_state_round_trip_continues_identically(name: str, kw: dict[str, Any]) -> None:
    a = make(name, POINTS, **kw)
    a.train_step(batch_for(a, POINTS, 1))
    b = make(name, POINTS, seed=5, **kw)  # other initial weights, overwritten by the load
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)  # as in a checkpoint (no tensor shared with ``a``)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(a.sample(7, g1), b.sample(7, g2))
    outs = []
    for m in (a, b):
        torch.manual_seed(9)
        outs.append({k: float(v) for k, v in m.train_step(batch_for(m, POINTS, 2)).items()})
    assert outs[0] == outs[1]
    for x, y in zip(weights(a).values(), weights(b).values(), strict=True):
        assert all(torch.equal(p, q) for p, q in zip(x, y, strict=True))


def _config(name: str, kw: dict[str, Any], steps: int, data: str) -> RunConfig:
    spec = IMAGES if data == "digits" else POINTS
    cls = METHODS.get(name)
    train = TrainConfig(data=data, steps=steps, batch_size=16, seed=2, log_every=2,
                        checkpoint_every=100, sample_every=100, grid_size=4)  # fmt: skip
    return RunConfig(name, cls.Config(**options(spec, **kw)), train)


def _losses(run: Path) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k.endswith("loss") or k == "step"}
            for r in RunDir(run).read_metrics()]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kw", "data"),
    [*((n, kw, "ring8:n=400") for n, kw in CASES), ("pacgan", {}, "digits")],
    ids=[*(f"{i}-points" for i in IDS), "pacgan-images"],
)  # fmt: skip
def test_seeded_runs_repeat_and_resume_exactly(
    tmp_path: Path, name: str, kw: dict[str, Any], data: str
) -> None:
    runs.start(_config(name, kw, 9, data), tmp_path / "a", progress=False)
    runs.start(_config(name, kw, 9, data), tmp_path / "b", progress=False)
    runs.start(_config(name, kw, 5, data), tmp_path / "part", progress=False)
    runs.resume(tmp_path / "part", progress=False, steps=9)
    full = _losses(tmp_path / "a")
    assert len(full) == 4 and full == _losses(tmp_path / "b") == _losses(tmp_path / "part")


# ----- minibatch discrimination and feature matching ----------------------------------------


def test_minibatch_discrimination_of_identical_samples_is_n_minus_1() -> None:
    """All rows equal: every M_(i,b) - M_(j,b) is 0, so o_b = sum over n - 1 others of exp(0)."""
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, kernels=4, kernel_dim=3)
    f = torch.randn(1, 6).expand(7, 6)
    out = layer(f)
    assert out.shape == (7, 10)
    assert torch.equal(out[:, :6], f)
    torch.testing.assert_close(out[:, 6:], torch.full((7, 4), 6.0))


def test_minibatch_discrimination_matches_the_direct_formula() -> None:
    torch.manual_seed(1)
    layer = MinibatchDiscrimination(5, kernels=3, kernel_dim=2).double()
    f = torch.randn(6, 5, dtype=torch.float64)
    T = layer.T.detach().numpy().reshape(5, 3, 2)
    M = np.einsum("na,abc->nbc", f.numpy(), T)
    expected = np.zeros((6, 3))
    for i in range(6):
        for j in range(6):
            if i != j:
                expected[i] += np.exp(-np.abs(M[i] - M[j]).sum(1))
    np.testing.assert_allclose(layer(f)[:, 5:].detach().numpy(), expected, rtol=1e-12)


def test_minibatch_discrimination_is_twice_differentiable() -> None:
    """Needed by the unrolled GAN (torch.cdist's backward is not differentiable)."""
    layer = MinibatchDiscrimination(3, 2, 2).double()
    f = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(layer(f)[:, 3:].pow(2).sum(), f, create_graph=True)
    (h,) = torch.autograd.grad(g.pow(2).sum(), f)
    assert torch.isfinite(h).all()


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
def test_minibatch_layer_sits_before_the_last_linear_layer(shape: tuple[int, ...]) -> None:
    _, D = build_pair("auto", 4, shape)
    width = D.head.in_features
    add_minibatch_discrimination(D, 5, 3)
    assert isinstance(D.head[0], MinibatchDiscrimination) and D.head[0].in_features == width
    assert isinstance(D.head[1], nn.Linear) and D.head[1].in_features == width + 5
    assert D(torch.randn(4, *shape)).shape == (4,)
    with pytest.raises(UsageError, match="no linear head"):
        add_minibatch_discrimination(D, 5, 3)  # the head is no longer one linear layer


def test_feature_matching_is_the_squared_gap_of_mean_features() -> None:
    gan = make("gan", POINTS, feature_matching=True, **MBD)
    real, fake = torch.randn(9, 2), torch.randn(11, 2)
    with torch.no_grad():
        f_real, f_fake = gan.D.features(real), gan.D.features(fake)  # before the MBD layer
    expected = sum((float(a) - float(b)) ** 2 for a, b in zip(f_real.mean(0), f_fake.mean(0),
                                                               strict=True))  # fmt: skip
    assert feature_matching_loss(gan.D, real, fake).item() == pytest.approx(expected, rel=1e-5)
    # the generator step minimises it on fresh fakes; the discriminator gets no gradient
    torch.manual_seed(4)
    z = gan.noise(9)
    with torch.no_grad():
        direct = feature_matching_loss(gan.D, real, gan.G(z)).item()
    torch.manual_seed(4)
    d_before = weights(gan)["D"]
    assert float(gan.generator_step(real)["g_loss"]) == pytest.approx(direct, rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(d_before, weights(gan)["D"], strict=True))


# ----- unrolled GAN ---------------------------------------------------------------------------


class TinyD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def _tiny_problem() -> tuple[nn.Module, nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    D = TinyD().double()
    real = torch.randn(6, 2, dtype=torch.float64) + 1.0
    z = torch.randn(5, 2, dtype=torch.float64)
    return G, D, real, z


def _moments(D: nn.Module) -> AdamMoments:
    g = torch.Generator().manual_seed(7)
    m = {n: 0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in D.named_parameters()}
    v = {n: 0.01 + 0.01 * torch.rand(p.shape, generator=g, dtype=p.dtype)
         for n, p in D.named_parameters()}  # fmt: skip
    return AdamMoments(m, v, 3)


@pytest.mark.parametrize("rule", ["sgd", "adam"])
@pytest.mark.parametrize("objective", ["non-saturating", "wgan"])
def test_unrolled_generator_gradient_matches_finite_differences(rule: str, objective: str) -> None:
    G, D, real, z = _tiny_problem()
    obj = OBJECTIVES.get(objective)
    update = UnrollRule(rule, 0.5 if rule == "sgd" else 0.05)
    moments = _moments(D) if rule == "adam" else None

    def loss(first_order: bool = False) -> Tensor:
        return unrolled_generator_loss(D, obj, real, G(z), 3, update, first_order,
                                       moments=moments)  # fmt: skip

    params = list(G.parameters())
    exact = torch.autograd.grad(loss(), params)
    eps = 1e-6
    for p, grad in zip(params, exact, strict=True):
        numeric = torch.zeros_like(p)
        for i in range(p.numel()):
            values = []
            for shift in (eps, -2 * eps, eps):  # p + eps, p - eps, back to p
                with torch.no_grad():
                    p.view(-1)[i] += shift
                values.append(loss().item())
            numeric.view(-1)[i] = (values[0] - values[1]) / (2 * eps)
        torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-8)
    # the gradient through the unrolled updates is a real part of it
    first = torch.autograd.grad(loss(first_order=True), params)
    gap = sum(float((a - b).abs().sum()) for a, b in zip(exact, first, strict=True))
    assert gap > 1e-3 * sum(float(a.abs().sum()) for a in exact)


def test_zero_unrolled_steps_is_the_plain_gan() -> None:
    """k = 0: the real-data term does not depend on G, so G moves exactly as in ``gan``."""
    a, b = make("gan", POINTS), make("unrolled", POINTS, unroll_steps=0)
    for m in (a, b):
        torch.manual_seed(3)
        m.train_step(batch_for(m, POINTS))
    for p, q in zip(a.G.parameters(), b.G.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_unrolling_leaves_the_discriminator_as_it_was() -> None:
    """The unrolled copies are discarded: the G phase changes no parameter or running
    statistic of D (batch norm in the DCGAN discriminator)."""
    gan = make("unrolled", IMAGES, unroll_steps=2)
    assert isinstance(gan, UnrolledGAN)
    gan.train_step(batch_for(gan, IMAGES))
    state = {k: v.clone() for k, v in gan.D.state_dict().items()}
    gan.generator_step(torch.rand(16, 1, 8, 8) * 2 - 1)
    assert all(torch.equal(state[k], v) for k, v in gan.D.state_dict().items())


def test_unrolled_steps_follow_the_learning_rate_decay(monkeypatch: pytest.MonkeyPatch) -> None:
    gan = make("unrolled", POINTS, unroll_steps=1, lr_decay="linear", lr_d=0.004)
    rates: list[float] = []
    original = unrolled.unrolled_generator_loss

    def spy(*args: Any) -> Tensor:
        rates.append(args[5].lr)  # the UnrollRule
        return original(*args)

    monkeypatch.setattr(unrolled, "unrolled_generator_loss", spy)
    for step in (0, 75):
        gan.set_progress(step, 100)
        gan.generator_step(torch.randn(8, 2))
    assert rates == pytest.approx([0.004, 0.001])


def test_unrolled_defaults_and_rejections() -> None:
    c = UnrolledConfig().resolved(POINTS)
    assert (c.unroll_steps, c.unroll_optimizer, c.first_order) == (5, "adam", False)
    assert c.unroll_lr == c.lr_d > 0
    with pytest.raises(UsageError, match="feature-matching"):
        UnrolledConfig(feature_matching=True)
    with pytest.raises(UsageError, match="unroll-steps"):
        UnrolledConfig(unroll_steps=-1)


# ----- PacGAN ---------------------------------------------------------------------------------


def test_pack_shapes_and_order() -> None:
    x = torch.arange(6 * 3 * 4 * 4, dtype=torch.float32).view(6, 3, 4, 4)
    packed = pack(x, 2)
    assert packed.shape == (3, 6, 4, 4)
    assert torch.equal(packed[1, :3], x[2]) and torch.equal(packed[1, 3:], x[3])
    points = torch.randn(9, 2)
    assert pack(points, 3).shape == (3, 6)
    assert torch.equal(pack(points, 3)[2], points[6:].reshape(-1))
    with pytest.raises(ValueError, match="groups of 2"):
        pack(points, 2)


@pytest.mark.parametrize("spec", [POINTS, IMAGES], ids=["points", "images"])
def test_pacgan_discriminator_sees_m_samples(spec: DataSpec) -> None:
    gan = make("pacgan", spec, pack=3)
    assert gan.batches_per_step == 3  # n_critic 1 times m real minibatches
    seen: list[tuple[int, ...]] = []
    gan.D.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape)))
    gan.train_step(batch_for(gan, spec))  # 48 real examples
    packed = (16, 3 * spec.shape[0], *spec.shape[1:])
    assert seen == [packed, packed, packed]  # D: real and fake packs; G phase: fake packs
    with pytest.raises(UsageError, match="--pack"):
        PacGANConfig(pack=0)


def test_pacgan_packs_distinct_training_examples() -> None:
    gan = make("pacgan", POINTS, pack=2)
    data = load("ring8:n=400")
    train = TrainConfig(data="ring8:n=400", batch_size=32)
    from kdegen.distributed import Context

    trainer = Trainer(gan, data.images, None, train, None, Context(0, 1, CPU), progress=False)
    for step in range(20):  # across epoch boundaries too (6 steps per epoch)
        groups = pack(trainer.batch(step).index.view(-1, 1), 2)  # (32, 2) example indices
        assert len(groups) == 32 and (groups[:, 0] != groups[:, 1]).all()


# ----- BiGAN ----------------------------------------------------------------------------------


def test_bigan_encoder_inverts_its_generator_better_than_chance() -> None:
    """After a short training on ring8, E(G(z)) is nearer z, and G(E(x)) lands in x's mode
    more often, than for shuffled pairs."""
    bigan = make("bigan", POINTS, latent=2, hidden=64)
    assert isinstance(bigan, BiGAN)
    data = load("ring8:n=4000")
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for _ in range(1000):
        idx = torch.randint(len(data), (128,), generator=g)
        bigan.train_step(Batch(data.images[idx]))
    z = bigan.noise(2000, g)
    with torch.no_grad():
        bigan.G.eval()
        codes = bigan.encode(bigan.G(z))
    shuffled = torch.randperm(2000, generator=g)
    err, base = (codes - z).norm(dim=1).mean(), (codes - z[shuffled]).norm(dim=1).mean()
    assert err < 0.7 * base, (err, base)
    test = load("ring8", "test")
    assert test.centres is not None
    x = test.images[:2000]
    mode = torch.cdist(x, test.centres).argmin(1)
    back = torch.cdist(bigan.reconstruct(x), test.centres).argmin(1)
    agree, chance = (back == mode).float().mean(), (back == mode[shuffled]).float().mean()
    assert agree > 1.5 * chance, (agree, chance)


def test_bigan_encode_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train", "--method", "bigan", "--data", "digits", "--steps", "3", "--width", "8",
            "--latent", "5", "--batch-size", "16", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "codes.npz"
    assert main(["encode", str(run), "--data", "digits", "--n", "12", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["codes"].shape == (12, 5) and np.isfinite(f["loss"]).all()
    assert (tmp_path / "codes.png").is_file()
    loaded = runs.load_run(run, "cpu").method
    x = load("digits", "test").images[:12]
    assert isinstance(loaded, BiGAN)
    with np.load(out) as f:
        np.testing.assert_allclose(f["codes"], loaded.encode(x).numpy(), rtol=1e-5, atol=1e-6)
    assert loaded.reconstruct(x).shape == x.shape


def test_bad_options_are_usage_errors() -> None:
    cls = METHODS.get("gan")
    with pytest.raises(UsageError, match="minibatch-discrimination"):
        cls.Config(minibatch_discrimination=-1)
    with pytest.raises(UsageError, match="minibatch-dim"):
        cls.Config(minibatch_dim=0)
