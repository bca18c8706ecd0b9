"""Network modes around inference and generator phases: :func:`frozen`, :func:`evaluating`.

Both restore exactly what was there before (each network's train/eval mode, each
parameter's ``requires_grad``), so they nest and can wrap networks mid-training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


@contextmanager
def frozen(*nets: nn.Module, keep_mode: bool = False) -> Iterator[None]:
    """No weight gradients for ``nets`` inside (gradients still flow through them to their
    inputs), in eval mode unless ``keep_mode`` (a generator phase through a discriminator
    that stays in training mode, batch statistics and all)."""
    modes = [net.training for net in nets]
    flags = [[p.requires_grad for p in net.parameters()] for net in nets]
    for net in nets:
        if not keep_mode:
            net.eval()
        net.requires_grad_(False)
    try:
        yield
    finally:
        for net, mode, net_flags in zip(nets, modes, flags, strict=True):
            for p, flag in zip(net.parameters(), net_flags, strict=True):
                p.requires_grad_(flag)
            net.train(mode)


@contextmanager
def evaluating(*nets: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; the networks' modes are restored afterwards."""
    modes = [net.training for net in nets]
    for net in nets:
        net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for net, mode in zip(nets, modes, strict=True):
            net.train(mode)


def chunked(fn: Callable[[Tensor], Tensor], x: Tensor, size: int, empty: Tensor) -> Tensor:
    """``fn`` over consecutive chunks of ``size`` rows of ``x``, concatenated (``empty``
    when ``x`` has no rows)."""
    parts = [fn(x[i : i + size]) for i in range(0, len(x), size)]
    return torch.cat(parts) if parts else empty


def sizes(n: int, size: int) -> list[int]:
    """``n`` split into chunks of at most ``size`` (for drawing noise chunk by chunk)."""
    return [min(size, n - i) for i in range(0, n, size)]
