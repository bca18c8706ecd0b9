"""The fixed priors (standard normal, uniform), the Prior protocol and the registry."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from kdegen.errors import UsageError
from kdegen.registry import Registry


@runtime_checkable
class Prior(Protocol):
    """What every prior provides."""

    dim: int

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` codes, shape (n, dim)."""
        ...

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density of each row of ``z`` (n, dim), shape (n,)."""
        ...


def _check_dim(dim: int) -> None:
    if dim < 1:
        raise UsageError(f"latent dimension must be at least 1, got {dim}")


def _check_codes(z: Tensor, dim: int) -> None:
    if z.dim() != 2 or z.shape[1] != dim:
        raise UsageError(f"codes must have shape (n, {dim}), got {tuple(z.shape)}")


class Normal:
    """Isotropic Gaussian N(0, std^2 I) in ``dim`` dimensions.

    Args:
        dim: latent dimension k.
        std: standard deviation of every coordinate.
        device: where samples are returned.
    """

    def __init__(self, dim: int, std: float = 1.0, device: str | torch.device = "cpu") -> None:
        _check_dim(dim)
        if not std > 0:
            raise UsageError(f"the normal prior's std must be positive, got {std}")
        self.dim, self.std, self.device = dim, float(std), torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        gen_device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.dim, generator=generator, device=gen_device)
        return (z * self.std).to(self.device)

    def log_prob(self, z: Tensor) -> Tensor:
        _check_codes(z, self.dim)
        sq = (z / self.std).pow(2).sum(1)
        return -0.5 * sq - self.dim * (math.log(self.std) + 0.5 * math.log(2 * math.pi))

    def __repr__(self) -> str:
        return f"Normal(dim={self.dim}, std={self.std})"


class Uniform:
    """Uniform on the cube [-1, 1]^dim."""

    def __init__(self, dim: int, device: str | torch.device = "cpu") -> None:
        _check_dim(dim)
        self.dim, self.device = dim, torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        gen_device = generator.device if generator is not None else self.device
        u = torch.rand(n, self.dim, generator=generator, device=gen_device)
        return (2 * u - 1).to(self.device)

    def log_prob(self, z: Tensor) -> Tensor:
        _check_codes(z, self.dim)
        inside = (z.abs() <= 1).all(1)
        value = torch.full((z.shape[0],), -self.dim * math.log(2.0), device=z.device)
        return torch.where(inside, value, torch.full_like(value, -math.inf))

    def __repr__(self) -> str:
        return f"Uniform(dim={self.dim})"


PRIORS: Registry[Callable[..., Prior]] = Registry("prior")
PRIORS.add("normal", Normal)
PRIORS.add("uniform", Uniform)


def make_prior(name: str, dim: int, device: str | torch.device = "cpu") -> Prior:
    """The fixed prior registered as ``name`` (normal, uniform) in ``dim`` dimensions."""
    return PRIORS.get(name)(dim, device=device)
