"""Data-parallel training under ``torchrun``: process group, gradient and buffer sync.

Every process holds full copies of the networks, draws its own shard of each global
batch (DistributedSampler order) and averages gradients across processes before each
optimizer step, which is what DistributedDataParallel does. The averaging is explicit,
one flattened all-reduce per network and phase, rather than DDP's module wrapper:
a GAN step runs several forward passes per backward, mixes phases that update
different networks and takes double-backward gradient penalties, all of which the
wrapper's one-forward-one-backward bookkeeping does not allow. (StyleGAN2-ADA syncs
its phases the same way.) gloo on the CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from kdegen.errors import UsageError


@dataclass(frozen=True)
class Context:
    """This process's place in the job: rank among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """Resolve ``auto`` to cuda (this process's GPU) when available, else cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


def setup(device: str = "auto") -> Context:
    """Join the torchrun process group when launched by torchrun, else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, dev)


def teardown(synchronise: bool = True) -> None:
    """Leave the process group (if any), after every process has come to leave it.

    Without the barrier a process that finished first closed its gloo connections while
    a peer was still writing its results, and the peer's transport thread aborted the
    process (seen once in 2 processes on a loaded 2-core machine). After an error pass
    ``synchronise=False``: the peers may be inside another collective, and leaving at
    once makes theirs fail instead of waiting for the timeout."""
    if dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Replace each gradient by its mean over processes (no-op when alone).

    Parameters without a gradient contribute zeros so every process reduces
    the same flat vector.
    """
    world = world_size()
    if world == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
    )
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (batch-norm statistics) over processes."""
    world = world_size()
    if world == 1:
        return
    with torch.no_grad():
        for b in module.buffers():
            if b.is_floating_point():
                dist.all_reduce(b.data)
                b.data /= world


def any_process(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on at least one process (used to stop together)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (a picklable value), in rank order."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
