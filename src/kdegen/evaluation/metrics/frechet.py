"""Frechet Inception Distance (Heusel et al. 2017) in float64.

Each feature set is summarised by a Gaussian (mean mu, covariance S with ddof=1) and

    FID = ||mu_1 - mu_2||^2 + tr S_1 + tr S_2 - 2 tr (S_1^{1/2} S_2 S_1^{1/2})^{1/2},

the Frechet (2-Wasserstein) distance between the two Gaussians. The trace term uses the
symmetric form: S_1^{1/2} from ``eigh`` of S_1, then the eigenvalues of the symmetric
PSD matrix S_1^{1/2} S_2 S_1^{1/2} (the same eigenvalues as S_1 S_2, whose square
roots sum to tr (S_1 S_2)^{1/2}). Negative eigenvalues of rounding size are clipped to 0;
a clearly negative one means a matrix is not a covariance and is reported, never
silently dropped as the imaginary part of a general matrix square root would be.

Sizes. A covariance (ddof=1) needs 2 samples. With n <= d samples it is singular
(rank < d) and FID is biased high; pytorch-fid asks for more samples than the 2048
dimensions of Inception features for this reason. The value is still finite (the
symmetric form needs no inverse), so :func:`fid` warns rather than refuses.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from kdegen.errors import UsageError
from kdegen.evaluation.metrics.inputs import Array, Minimum, as_pair
from kdegen.evaluation.metrics.registry import Inputs, register_metric

EIG_TOLERANCE = 1e-10  # eigenvalues below -tol * max|eigenvalue| are not rounding
MOMENT_BLOCK = 4096  # rows per chunk when accumulating a covariance
MINIMUM = Minimum(2, "a covariance needs 2")


def feature_moments(x: Tensor, block: int = MOMENT_BLOCK) -> tuple[Tensor, Tensor]:
    """Mean (d,) and covariance (d, d), ddof=1, in float64, accumulated over row chunks."""
    n = x.shape[0]
    mu = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for i in range(0, n, block):
        mu += x[i : i + block].double().sum(0)
    mu /= n
    cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    for i in range(0, n, block):
        centred = x[i : i + block].double() - mu  # (block, d)
        cov.addmm_(centred.T, centred)
    return mu, cov / (n - 1)


def _clipped(values: Tensor, name: str, strict: bool) -> Tensor:
    """Eigenvalues with rounding-size negatives set to 0; larger ones raise or warn."""
    lowest = float(values.min())
    if lowest < -EIG_TOLERANCE * max(float(values.abs().max()), 1e-300):
        message = f"{name} has eigenvalue {lowest:.3g} < 0 beyond rounding"
        if strict:
            raise UsageError(f"{message}; pass a covariance matrix (symmetric PSD)")
        warnings.warn(f"{message}; clipped to 0", RuntimeWarning, stacklevel=3)
    return values.clamp(min=0)


def frechet_distance(mu1: Array, sigma1: Array, mu2: Array, sigma2: Array) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Args:
        mu1, mu2: means (d,).
        sigma1, sigma2: covariances (d, d), symmetric positive semi-definite.

    Returns:
        The squared 2-Wasserstein distance between the Gaussians.
    """
    m1, m2 = (torch.as_tensor(m).double().cpu() for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s).double().cpu() for s in (sigma1, sigma2))
    d = m1.shape[0] if m1.dim() == 1 else -1
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise UsageError(
            "need means (d,) and covariances (d, d) of one d, got "
            f"{tuple(m1.shape)}, {tuple(s1.shape)}, {tuple(m2.shape)}, {tuple(s2.shape)}"
        )
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        finite = bool(torch.isfinite(s).all()) and bool(torch.isfinite(m1 + m2).all())
        if not finite or float((s - s.T).abs().max()) > 1e-8 * float(s.abs().max()):
            raise UsageError(f"{name} must be a finite symmetric matrix (a covariance)")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    values, vectors = torch.linalg.eigh(s1)
    root1 = (vectors * _clipped(values, "sigma1", strict=True).sqrt()) @ vectors.T  # S1^1/2
    _clipped(torch.linalg.eigvalsh(s2), "sigma2", strict=True)
    inner = root1 @ s2 @ root1
    values = _clipped(torch.linalg.eigvalsh((inner + inner.T) / 2), "S1^1/2 S2 S1^1/2", False)
    trace_sqrt = values.sqrt().sum()
    value = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt
    return float(value)


def fid(a: Array, b: Array) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` and ``b``.

    Args:
        a: (n, d) features, n >= 2 (e.g. Inception pool features of generated images).
        b: (m, d) features of the reference set, m >= 2.

    Returns:
        FID (float64 throughout). Warns when a set has no more samples than dimensions.
    """
    names = ("first feature set", "second feature set")
    ta, tb = as_pair(a, b, names)
    MINIMUM.check("fid", dict(zip(names, (ta, tb), strict=True)))
    d = ta.shape[1]
    if min(ta.shape[0], tb.shape[0]) <= d:
        warnings.warn(
            f"FID from {min(ta.shape[0], tb.shape[0])} samples in {d} dimensions: the "
            "covariance is singular and FID biased high; use more samples than dimensions",
            RuntimeWarning,
            stacklevel=2,
        )
    mu1, s1 = feature_moments(ta)
    mu2, s2 = feature_moments(tb)
    return frechet_distance(mu1, s1, mu2, s2)


@register_metric("fid", ("generated", "test"), "Frechet distance of Gaussian fits (FID)", MINIMUM)
def _fid_metric(inputs: Inputs) -> dict[str, float]:
    return {"value": fid(inputs["generated"], inputs["test"])}
