"""The autoencoder family (every registered AutoEncoder subclass) with both architectures,
the VAE's KL term, and the command-line tools. The method contract (state round trip,
seeded repeats, resume, encodings) is in test_contract.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kdegen.cli import main
from kdegen.methods import METHODS, Batch, DataSpec
from kdegen.methods.autoencoder import AutoEncoder

IMAGE = DataSpec((1, 8, 8), 10, 64)
NAMES = [n for n in METHODS.names() if issubclass(METHODS.get(n), AutoEncoder)]


def build(name: str, arch: str = "fc", **kw: object) -> object:
    torch.manual_seed(0)
    cls = METHODS.get(name)
    return cls(
        cls.Config(arch=arch, latent=4, hidden=32, width=8, **kw), IMAGE, torch.device("cpu")
    )


def batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.rand(16, 1, 8, 8, generator=g) * 2 - 1,
                 torch.randint(0, 10, (16,), generator=g), torch.arange(16))  # fmt: skip


@pytest.mark.parametrize("arch", ["fc", "conv"])
@pytest.mark.parametrize("name", NAMES)
def test_every_architecture_trains_and_encodes_images(name: str, arch: str) -> None:
    m = build(name, arch)
    m.bind_data(torch.rand(64, 1, 8, 8) * 2 - 1, None)  # type: ignore[attr-defined]
    nets = m.networks()  # type: ignore[attr-defined]
    weights = {k: [p.detach().clone() for p in net.parameters() if p.dim() > 1]
               for k, net in nets.items()}  # fmt: skip
    losses = m.train_step(batch())  # type: ignore[attr-defined]
    assert losses and all(math.isfinite(float(v)) for v in losses.values())
    assert all(k.endswith("_loss") for k in losses)
    for k, net in nets.items():
        after = [p for p in net.parameters() if p.dim() > 1]
        assert any(not torch.equal(a, b) for a, b in zip(weights[k], after, strict=True)), k
    assert m.sample(5).shape == (5, 1, 8, 8)  # type: ignore[attr-defined]
    x = batch(1).x
    codes = m.encode(x)  # type: ignore[attr-defined]
    assert codes.shape == (16, 4)
    # an example's code does not depend on its batch (eval mode, batch norm included)
    torch.testing.assert_close(m.encode(x[3:4]), codes[3:4], rtol=1e-5, atol=1e-6)  # type: ignore[attr-defined]


def test_vae_kl_closed_form() -> None:
    m = build("vae")
    m.codes(batch().x)  # type: ignore[attr-defined]
    mu, logvar = m._last  # type: ignore[attr-defined]
    kl = m.latent_loss(None, batch())["kl_loss"]  # type: ignore[attr-defined]
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    torch.testing.assert_close(kl, expected, rtol=1e-5, atol=1e-6)


def test_cli_train_encode_sample(tmp_path: Path) -> None:
    run = tmp_path / "ae"
    common = ["--data", "digits", "--latent", "4", "--batch-size", "16", "--no-progress"]
    assert main(["train", "--method", "aae", *common, "--steps", "3", "--out", str(run)]) == 0
    codes = tmp_path / "c.npz"
    assert main(["encode", str(run), "--data", "digits", "--n", "20", "--out", str(codes)]) == 0
    with np.load(codes) as f:
        assert f["codes"].shape == (20, 4) and f["loss"].shape == (20,)
    assert (tmp_path / "c.png").is_file()
    assert main(["sample", str(run), "--n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["sample", str(run), "--prior", "kde", "--codes", str(codes),
                 "--out", str(tmp_path / "k.png")]) == 0  # fmt: skip
