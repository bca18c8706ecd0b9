"""Framework overhead: DCGAN step rate through Trainer + gan method vs a bare inline loop.

Both sides train the same networks (kdegen.nets' DCGAN pair on mnist5k), with the same
batch size, optimizers and objective (non-saturating). The bare loop is written out
below in plain PyTorch; the framework side is ``Trainer.fit`` with its batch stream,
loss accumulation, metrics.jsonl logging and progress bookkeeping. Rounds alternate
A/B so machine noise hits both; the script prints each round and the median ratio
(framework rate / bare rate; the target is >= 0.95).

    python benchmarks/train_speed.py [--steps 60] [--rounds 5] [--width 64] [--batch 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kdegen.config import TrainConfig
from kdegen.data import load
from kdegen.distributed import Context
from kdegen.methods import DataSpec
from kdegen.methods.gan import GAN, GANConfig
from kdegen.nets import dcgan_pair, init_dcgan_weights
from kdegen.runs.directory import RunDir
from kdegen.runs.training import Trainer


def bare_loop(images: torch.Tensor, steps: int, width: int, batch: int) -> float:
    """Steps per second of a hand-written DCGAN loop."""
    torch.manual_seed(0)
    G, D = dcgan_pair(100, tuple(images.shape[1:]), width)
    init_dcgan_weights(G)
    init_dcgan_weights(D)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    order = torch.randperm(len(images))
    start = time.perf_counter()
    for step in range(steps):
        j = (step * batch) % (len(images) - batch)
        real = images[order[j : j + batch]]
        with torch.no_grad():
            fake = G(torch.randn(batch, 100))
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        g_loss = F.softplus(-D(G(torch.randn(batch, 100)))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        D.requires_grad_(True)
        opt_g.step()
        _ = float(d_loss.detach()), float(g_loss.detach())  # a bare loop looks at its losses
    return steps / (time.perf_counter() - start)


def framework(images: torch.Tensor, steps: int, width: int, batch: int, out: Path) -> float:
    """Steps per second of Trainer.fit on the gan method (logging to a real run dir)."""
    torch.manual_seed(0)
    config = GANConfig(width=width, latent=100, lr_g=2e-4)
    gan = GAN(config, DataSpec(tuple(images.shape[1:]), 10, len(images)), torch.device("cpu"))
    train = TrainConfig(steps=steps, batch_size=batch, log_every=10,
                        sample_every=10**9, checkpoint_every=10**9)  # fmt: skip
    run = RunDir(out)
    run.create(force=True)
    trainer = Trainer(gan, images, None, train, run, Context(0, 1, torch.device("cpu")), False)
    trainer.save_checkpoint = lambda: None  # type: ignore[method-assign]  # not in the loop
    trainer.save_sample_grid = lambda: None  # type: ignore[method-assign]
    start = time.perf_counter()
    trainer.fit()
    return steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--width", type=int, default=GANConfig().width)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    images = load("mnist5k").images
    print(f"DCGAN width {args.width}, batch {args.batch}, {args.steps} steps per round, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    bare_loop(images, 5, args.width, args.batch)  # warm-up
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            a = bare_loop(images, args.steps, args.width, args.batch)
            b = framework(images, args.steps, args.width, args.batch, Path(tmp) / "run")
            ratios.append(b / a)
            print(f"round {r}: bare {a:.2f} it/s  framework {b:.2f} it/s  ratio {b / a:.3f}")
    print(f"median ratio framework/bare: {statistics.median(ratios):.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
