"""Cost of a GEN training step against plain and adversarial autoencoder steps.

Same networks (FC-layers and conv), same batches of mnist5k, measured alternately in one
run: ``ae``, ``aae``, ``gen`` with m = 4,000 lagging samples in its default queue mode,
the same leaving each image's own code out (``--leave-out``), and ``gen`` re-encoding the
lagging set every k_b = 10 steps (the paper's Algorithm 1).
Targets: gen <= 1.3x ae and gen <= aae.

    python benchmarks/gen_step.py [--iters 30] [--rounds 5] [--arch fc]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdegen.data import load
from kdegen.methods import METHODS, Batch, DataSpec, Method
from kdegen.runs.training import BatchStream

KINDS = {
    "ae": ("ae", {}),
    "aae": ("aae", {}),
    "gen": ("gen", {"m": 4000, "bandwidth": 0.6}),
    "gen-leave-out": ("gen", {"m": 4000, "bandwidth": 0.6, "leave_out": True}),
    "gen-reencode": ("gen", {"m": 4000, "bandwidth": 0.6, "lag": "reencode", "k_b": 10}),
}


def build(kind: str, arch: str, spec: DataSpec, images: torch.Tensor) -> Method:
    name, extra = KINDS[kind]
    cls = METHODS.get(name)
    torch.manual_seed(0)
    method = cls(cls.Config(arch=arch, latent=8, **extra), spec, torch.device("cpu"))
    method.bind_data(images, None)
    return method


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--arch", default="fc", choices=("fc", "conv"))
    args = p.parse_args()
    data = load("mnist5k")
    spec = DataSpec(tuple(data.shape), 10, len(data))
    methods = {k: build(k, args.arch, spec, data.images) for k in KINDS}
    stream = BatchStream(len(data), 64, seed=0)
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    print(f"mnist5k, batch 64, latent 8, {args.arch} networks, {torch.get_num_threads()} threads")
    step = 0
    for r in range(args.rounds):
        batches = []
        for _ in range(args.iters):
            idx = stream.indices(step)
            batches.append(Batch(data.images[idx], None, idx))
            step += 1
        for kind, method in methods.items():
            start = time.perf_counter()
            for b in batches:
                method.train_step(b)
            times[kind].append((time.perf_counter() - start) / len(batches))
        row = "  ".join(f"{k} {times[k][-1] / times['ae'][-1]:.2f}x" for k in KINDS if k != "ae")
        print(f"round {r}: ae {times['ae'][-1] * 1000:.1f} ms/step  {row}")
    print("median cost relative to an ae step (targets: gen <= 1.3x ae, gen <= aae):")
    for kind in KINDS:
        ratios = [a / b for a, b in zip(times[kind], times["ae"], strict=True)]
        print(f"  {kind:<13} {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
