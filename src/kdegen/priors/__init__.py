"""Latent priors: the distributions that drive a generator or decoder.

A prior has ``dim``, ``sample(n, generator=None) -> (n, dim)`` and ``log_prob(z) -> (n,)``;
a fitted prior also has ``fit(codes) -> self``. Any generator can be driven by any prior
(DESIGN.md): the standard normal of a plain GAN, the uniform noise the tutorial mentions,
and the kernel density estimate over recovered codes of Generator Reversal, Sec. 3.2.
GaussianMixture is the mixture-of-Gaussians target of GENs Sec. 5.4; ``converged_prior``
is the distribution GEN codes converge to for a target and a KDE bandwidth (GENs Eq. 8).
"""

from __future__ import annotations

from kdegen.priors.base import (
    PRIORS,
    Normal,
    Prior,
    Uniform,
    make_prior,
)
from kdegen.priors.kde import (
    BANDWIDTH_RULES,
    DEFAULT_KDE_BANDWIDTH,
    KDE,
    parse_bandwidth,
    select_bandwidth,
    spread,
)
from kdegen.priors.mixture import (
    CIRCLE_RADIUS,
    CIRCLE_STD,
    GaussianMixture,
    converged_prior,
)

__all__ = [
    "BANDWIDTH_RULES",
    "CIRCLE_RADIUS",
    "CIRCLE_STD",
    "DEFAULT_KDE_BANDWIDTH",
    "KDE",
    "PRIORS",
    "GaussianMixture",
    "Normal",
    "Prior",
    "Uniform",
    "converged_prior",
    "make_prior",
    "parse_bandwidth",
    "select_bandwidth",
    "spread",
]
