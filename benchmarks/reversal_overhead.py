"""Cost of generator reversal in KDE-GAN training, and what the code bank buys.

Measured side by side in one run on mnist5k with the same networks and batches:
  * the iteration time of ``gan``, of the default ``kdegan`` (warm-started code bank), and
    of the paper's naive scheme (cold start, k reversal steps every iteration) for
    k = 5, 20, 50 (the paper reports 1.9x, 4.9x and 9.8x a plain iteration);
  * after training the default kdegan for ``--train-steps`` iterations, the mean training
    reconstruction error of its bank codes against that of 20 cold-start reversal steps
    through the same final generator on the same examples.
Targets: default kdegan <= 1.3x a gan iteration; bank error <= 20-cold-step error.

    python benchmarks/reversal_overhead.py [--iters 20] [--rounds 5] [--train-steps 1500]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdegen.config import TrainConfig
from kdegen.data import load
from kdegen.distributed import Context
from kdegen.methods import Batch, DataSpec, Method
from kdegen.methods.gan import GAN, GANConfig
from kdegen.methods.kdegan import KDEGAN, KDEGANConfig
from kdegen.reversal import LOSSES, invert
from kdegen.training import BatchStream, Trainer

CPU = torch.device("cpu")


def build(kind: str, spec: DataSpec) -> Method:
    torch.manual_seed(0)
    if kind == "gan":
        return GAN(GANConfig(), spec, CPU)
    if kind == "kdegan":
        return KDEGAN(KDEGANConfig(), spec, CPU)
    k = int(kind.split("-")[1])  # naive-k: cold start, k steps every iteration
    return KDEGAN(KDEGANConfig(warm_start=False, rev_stop="steps", rev_steps=k), spec, CPU)


def seconds_per_iteration(method: Method, batches: list[Batch]) -> float:
    start = time.perf_counter()
    for b in batches:
        method.train_step(b)
    return (time.perf_counter() - start) / len(batches)


def timing(images: torch.Tensor, spec: DataSpec, iters: int, rounds: int) -> None:
    stream = BatchStream(len(images), 64, seed=0)
    kinds = ["gan", "kdegan", "naive-5", "naive-20", "naive-50"]
    methods = {k: build(k, spec) for k in kinds}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    step = 0
    for k in kinds:  # warm-up (and codes in every bank)
        idx = stream.indices(step)
        methods[k].train_step(Batch(images[idx], None, idx))
    for r in range(rounds):
        idxs = [stream.indices(step + i) for i in range(iters)]
        step += iters
        batches = [Batch(images[i], None, i) for i in idxs]
        for k in kinds:
            times[k].append(seconds_per_iteration(methods[k], batches))
        row = "  ".join(f"{k} {times[k][-1] / times['gan'][-1]:.2f}x" for k in kinds[1:])
        print(f"round {r}: gan {times['gan'][-1] * 1000:.0f} ms/it  {row}")
    print("median cost relative to a gan iteration (paper: naive 5/20/50 = 1.9/4.9/9.8x):")
    for k in kinds[1:]:
        ratios = [a / b for a, b in zip(times[k], times["gan"], strict=True)]
        print(f"  {k:<9} {statistics.median(ratios):.2f}x")


def bank_quality(images: torch.Tensor, spec: DataSpec, train_steps: int) -> None:
    method = build("kdegan", spec)
    assert isinstance(method, KDEGAN)
    train = TrainConfig(steps=train_steps, batch_size=64, log_every=10**9,
                        sample_every=10**9, checkpoint_every=10**9)  # fmt: skip
    trainer = Trainer(method, images, None, train, None, Context(0, 1, CPU), progress=True)
    trainer.save_checkpoint = lambda: None  # type: ignore[method-assign]
    trainer.fit()
    seen = torch.nonzero(method.bank.visits > 0).squeeze(1)[:1000]
    x = images[seen]
    with torch.no_grad():
        method.G.eval()
        bank_error = float(LOSSES["l2"](method.G(method.bank.codes[seen]), x).mean())
    cold = invert(method.G, x, steps=20, stop="steps", rng=torch.Generator().manual_seed(0))
    assert cold.example_loss is not None
    cold_error = float(cold.example_loss.mean())
    print(f"after {train_steps} kdegan iterations, mean 1/2||G(z) - x||^2 over {len(seen)} "
          f"training images: bank codes {bank_error:.2f}, 20 cold-start steps {cold_error:.2f} "
          f"({'meets' if bank_error <= cold_error else 'misses'} the target)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=20, help="iterations per method per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=1500)
    args = p.parse_args()
    data = load("mnist5k")
    spec = DataSpec(tuple(data.shape), 10, len(data))
    print(f"mnist5k, batch 64, default networks, {torch.get_num_threads()} threads")
    timing(data.images, spec, args.iters, args.rounds)
    bank_quality(data.images, spec, args.train_steps)


if __name__ == "__main__":
    main()
