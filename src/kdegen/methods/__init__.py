"""Trainable systems registered by name: ``METHODS.get("gan")`` and, later, kdegan, gen, ...

Importing this package registers every method module listed here.
"""

from kdegen.methods import (
    aae,
    acgan,
    autoencoder,
    bigan,
    cgan,
    gan,
    gen,
    kdegan,
    modnet,
    pacgan,
    ssgan,
    unrolled,
    vae,
)
from kdegen.methods.base import METHODS, Batch, DataSpec, Method, MethodConfig

__all__ = [
    "METHODS",
    "Batch",
    "DataSpec",
    "Method",
    "MethodConfig",
    "aae",
    "acgan",
    "autoencoder",
    "bigan",
    "cgan",
    "gan",
    "gen",
    "kdegan",
    "modnet",
    "pacgan",
    "ssgan",
    "unrolled",
    "vae",
]
