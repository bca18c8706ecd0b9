"""Run by tests/test_distributed.py under torchrun: 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from kdegen import distributed, runs
from kdegen.config import RunConfig, TrainConfig
from kdegen.data import load
from kdegen.methods import METHODS
from kdegen.methods.gan import GANConfig
from kdegen.runs.directory import RunDir
from kdegen.runs.training import Trainer


def flat_parameters(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([q.detach().flatten() for q in module.parameters()])


def main(out: Path) -> None:
    ctx = distributed.setup("cpu")
    # rank r contributes a gradient of r + 1 everywhere: the average is 1.5
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.full((3,), float(ctx.rank + 1))
    distributed.average_gradients([p])

    config = RunConfig(
        "gan",
        GANConfig(latent=4, hidden=16, layers=2, objective="wgan-gp", n_critic=2),
        TrainConfig(data="ring8:n=1000", steps=12, batch_size=32, log_every=4, device="cpu"),
    )
    data = load(config.train.data)
    spec = runs.spec_of(data)
    # different initial weights per process: the trainer must broadcast rank 0's
    torch.manual_seed(ctx.rank)
    method = runs.resolve(config, spec)
    gan = METHODS.get("gan")(method.options, spec, ctx.device)
    run = RunDir(out / "run") if ctx.is_main else None
    if run is not None:
        run.create(force=False)
    trainer = Trainer(gan, data.images, data.labels, config.train, run, ctx, progress=False)
    start = flat_parameters(gan.G)
    trainer.fit()
    end = flat_parameters(gan.G)
    gathered = [torch.zeros_like(end) for _ in range(ctx.world)]
    dist.all_gather(gathered, end)
    starts = [torch.zeros_like(start) for _ in range(ctx.world)]
    dist.all_gather(starts, start)
    if ctx.is_main:
        result = {
            "world": ctx.world,
            "mean_grad": p.grad.tolist(),
            "broadcast": all(torch.equal(starts[0], s) for s in starts),
            "same_weights": all(torch.equal(gathered[0], g) for g in gathered),
            "moved": not torch.equal(start, end),
            "per_process_batch": trainer.stream.per_process,
        }
        (out / "result.json").write_text(json.dumps(result))
    distributed.teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
