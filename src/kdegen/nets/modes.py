"""Network modes for inference: :func:`frozen` and :func:`evaluating`.

Both put networks in eval mode for their block and restore exactly what was there
before (each network's mode and each parameter's ``requires_grad``), so they nest and
can be used on networks that are mid-training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


@contextmanager
def frozen(*nets: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients inside (gradients still flow to the inputs)."""
    modes = [net.training for net in nets]
    flags = [[p.requires_grad for p in net.parameters()] for net in nets]
    for net in nets:
        net.eval()
        net.requires_grad_(False)
    try:
        yield
    finally:
        for net, mode, net_flags in zip(nets, modes, flags, strict=True):
            for p, flag in zip(net.parameters(), net_flags, strict=True):
                p.requires_grad_(flag)
            net.train(mode)


def evaluating(
    fn: Callable[[Tensor], Tensor], x: Tensor, *nets: nn.Module, chunk: int = 0
) -> Tensor:
    """``fn(x)`` with ``nets`` in eval mode and no autograd, over chunks of ``chunk`` rows
    (0: all at once); the networks' modes are restored afterwards."""
    modes = [net.training for net in nets]
    for net in nets:
        net.eval()
    try:
        with torch.no_grad():
            if chunk <= 0 or len(x) <= chunk:
                return fn(x)
            return torch.cat([fn(part) for part in x.split(chunk)])
    finally:
        for net, mode in zip(nets, modes, strict=True):
            net.train(mode)
