"""KDE estimates of the Jensen-Shannon divergence and of entropy (GENs, Saha et al.).

GENs Eq. 1: p_e is a Gaussian KDE of m codes with isotropic kernel G_h of std h.
Eq. 2 / supplement Eq. 1: the JSD between p_e and a target p_t from two expectations,
over codes z' ~ p_e (the minibatch) and over target samples z'' ~ p_t. Supplement Eq. 2-3
and Table 1: the bandwidth that maximises this JSD between two sample sets of the target
itself. Eq. 9 / supplement Eq. 4-5: the leave-one-out KDE entropy and its
maximum-likelihood bandwidth.

Convention. The paper leaves out constants; kdegen keeps them and uses natural logs:

    JSD = 1/2 E_{z'~p_e}[log(2 p_e / (p_e + p_t))] + 1/2 E_{z''~p_t}[log(2 p_t / (p_e + p_t))]

which is 0 for equal and log 2 for disjoint distributions (the paper's "between 0 and 1"
is the same in bits). The paper's Eq. 2 equals 2 JSD - 2 log 2: same gradient direction
and the same maximising bandwidth. The two halves are returned separately by
:func:`kde_jsd_terms`. Only the first depends on z' (the GEN loss, Eq. 3).

The KDE log density is :func:`kdegen.kernels.kde_log_prob`, differentiable in its queries.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.kernels import kde_log_prob
from kdegen.priors import GaussianMixture, Normal, Prior, Uniform, select_bandwidth, spread

METHOD_VERSION = 1  # bump when the bandwidth search changes: cached results are then ignored
MIN_QUERY = 2000  # smallest query sets of the bandwidth search (see optimal_jsd_bandwidth)
SEARCH_RANGE = (1e-3, 4.0)  # h searched within these multiples of the target's spread
LOG2 = math.log(2.0)


def _as_codes(x: Tensor, name: str, dim: int | None = None) -> Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 2 or t.shape[0] == 0 or (dim is not None and t.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, l)"
        raise UsageError(f"{name} must be a non-empty {want} array, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise UsageError(f"{name} contains NaN or infinite values; check what produced them")
    return t if t.is_floating_point() else t.double()


def _check_bandwidth(h: float) -> float:
    if not (math.isfinite(h) and h > 0):
        raise UsageError(f"the KDE bandwidth must be a positive number, got {h}")
    return float(h)


def _half_jsd(log_own: Tensor, log_other: Tensor) -> Tensor:
    """1/2 mean log(2 p_own / (p_own + p_other)) from log densities (n,), stable."""
    return 0.5 * (LOG2 + log_own - torch.logaddexp(log_own, log_other)).mean()


def kde_jsd_terms(
    z_query: Tensor,
    z_kde: Tensor,
    target: Prior,
    bandwidth: float,
    z_target: Tensor | None = None,
    n_target: int | None = None,
    generator: torch.Generator | None = None,
    block: int = kernels.DEFAULT_BLOCK,
) -> tuple[Tensor, Tensor]:
    """The two halves of the KDE-JSD of Eq. 2 (constants kept); they sum to the JSD.

    Args:
        z_query: (n, l) codes z' ~ p_e (the minibatch); gradients flow to them.
        z_kde: (m, l) codes z_i of the KDE p_e (constants).
        target: the target prior p_t (``sample`` and ``log_prob``).
        bandwidth: kernel std h.
        z_target: (n'', l) target samples z''; None draws ``n_target`` from ``target``.
        n_target: how many z'' to draw; None: as many as ``z_query``.
        generator: random source for drawing z''.
        block: tile size of the kernel sums.

    Returns:
        (1/2 E_z'[log 2p_e/(p_e+p_t)], 1/2 E_z''[log 2p_t/(p_e+p_t)]), scalar tensors.
    """
    first = _first_term(z_query, z_kde, target, bandwidth, block)
    if z_target is None:
        count = n_target if n_target is not None else z_query.shape[0]
        if count < 1:
            raise UsageError(f"n_target must be positive, got {count}")
        with torch.no_grad():
            z_target = target.sample(count, generator=generator).to(z_query.device)
    z2 = _as_codes(z_target, "z_target", target.dim).to(dtype=first.dtype)
    log_pt = target.log_prob(z2).to(first.dtype)
    second = _half_jsd(log_pt, kde_log_prob(z2, _as_codes(z_kde, "z_kde"), bandwidth, block))
    return first, second


def _first_term(z_query: Tensor, z_kde: Tensor, target: Prior, h: float, block: int) -> Tensor:
    z1 = _as_codes(z_query, "z_query", target.dim)
    centres = _as_codes(z_kde, "z_kde", target.dim)
    log_pe = kde_log_prob(z1, centres, _check_bandwidth(h), block)
    return _half_jsd(log_pe, target.log_prob(z1).to(log_pe.dtype))


def kde_jsd(
    z_query: Tensor,
    z_kde: Tensor,
    target: Prior,
    bandwidth: float,
    z_target: Tensor | None = None,
    n_target: int | None = None,
    first_only: bool = False,
    generator: torch.Generator | None = None,
    block: int = kernels.DEFAULT_BLOCK,
) -> Tensor:
    """KDE estimate of JSD[p_e, p_t] (Eq. 2 with constants kept: in [0, log 2] in expectation).

    Arguments as :func:`kde_jsd_terms`; with ``first_only`` only the first half,
    1/2 E_z'[log 2p_e/(p_e+p_t)], which carries the whole gradient w.r.t. ``z_query``
    (the GEN loss, Eq. 3) and needs no target samples.

    Returns:
        A scalar tensor.
    """
    if first_only:
        return _first_term(z_query, z_kde, target, bandwidth, block)
    first, second = kde_jsd_terms(
        z_query, z_kde, target, bandwidth, z_target, n_target, generator, block
    )
    return first + second


# ---- the bandwidth of Table 1 ------------------------------------------------------------


def optimal_jsd_bandwidth(
    dim: int,
    m: int,
    target: Prior | None = None,
    trials: int = 10,
    seed: int = 0,
    n_query: int | None = None,
    cache: bool = True,
    block: int = kernels.DEFAULT_BLOCK,
) -> tuple[float, float]:
    """The KDE bandwidth that best tells two sample sets of the target apart (Table 1).

    Per trial: m KDE centres and two query sets z', z'' (n_query each), all drawn
    independently from the target; h maximises :func:`kde_jsd` (uphill walk in log h to
    bracket the maximum, then bounded Brent to 0.1 % in h). Results are cached in
    ``$KDEGEN_CACHE/bandwidths`` (default ``~/.cache/kdegen/bandwidths``) for Normal,
    Uniform and GaussianMixture targets. The cost grows as trials * n_query * m.

    Args:
        dim: latent dimension l.
        m: number of KDE samples.
        target: the target prior; None is the standard normal N(0, I_l).
        trials: independent repetitions (the paper's error bars use 10).
        seed: seed of the draws.
        n_query: size of each query set; None takes max(m, 2000).
        cache: read and write the disk cache.
        block: tile size of the kernel sums.

    Returns:
        (mean, std) of the per-trial optimal h (std with ddof 1; 0 for one trial).

    Raises:
        UsageError: if the optimum reaches the target's (smallest component) std, i.e.
            h >= 1 for the standard normal: m samples cannot support l dimensions (Eq. 8).
    """
    target = Normal(dim) if target is None else target
    if dim < 1 or m < 2 or trials < 1 or target.dim != dim:
        raise UsageError(
            f"need dim >= 1 matching the target's ({target.dim}), m >= 2 and trials >= 1; "
            f"got dim={dim}, m={m}, trials={trials}"
        )
    n = n_query if n_query is not None else max(m, MIN_QUERY)
    key = {
        "version": METHOD_VERSION,
        "target": _describe(target),
        "dim": dim,
        "m": m,
        "trials": trials,
        "seed": seed,
        "n_query": n,
    }
    path = _cache_path(key) if cache and key["target"] is not None else None
    hs = _read_cache(path, key) if path is not None else None
    if hs is None:
        start = time.perf_counter()
        hs = _solve_trials(target, m, n, trials, seed, block)
        if path is not None:
            _write_cache(path, {"key": key, "h": hs, "seconds": time.perf_counter() - start})
    h = sum(hs) / len(hs)
    h_std = math.sqrt(sum((x - h) ** 2 for x in hs) / (len(hs) - 1)) if len(hs) > 1 else 0.0
    _check_supported(h, target, m)
    return h, h_std


def _solve_trials(target: Prior, m: int, n: int, trials: int, seed: int, block: int) -> list[float]:
    """The maximising h of each trial (what the cache stores)."""
    g = torch.Generator().manual_seed(seed)
    hs = []
    with torch.no_grad():
        for _ in range(trials):
            centres, z1, z2 = (target.sample(k, generator=g) for k in (m, n, n))
            hs.append(_best_bandwidth(target, centres, z1, z2, block))
    return hs


def _best_bandwidth(target: Prior, centres: Tensor, z1: Tensor, z2: Tensor, block: int) -> float:
    log_pt1, log_pt2 = target.log_prob(z1), target.log_prob(z2)  # do not depend on h

    def jsd(h: float) -> float:
        first = _half_jsd(kde_log_prob(z1, centres, h, block), log_pt1)
        second = _half_jsd(log_pt2, kde_log_prob(z2, centres, h, block))
        return float(first + second)

    m, dim = centres.shape
    sigma = spread(centres) or 1.0
    scott = sigma * m ** (-1.0 / (dim + 4))  # a start near the optimum: few steps to bracket
    lo, hi = SEARCH_RANGE[0] * sigma, SEARCH_RANGE[1] * sigma
    h = _maximise(jsd, scott, lo, hi)
    if h >= hi * (1 - 1e-9):
        raise UsageError(
            f"the JSD of a KDE of {m} samples grows up to h = {hi:.3g} ({SEARCH_RANGE[1]:g}x "
            f"the target's spread): too few samples for {dim} dimensions; use more samples m "
            "or a smaller latent dimension"
        )
    return h


def _maximise(
    f: Callable[[float], float], h0: float, lo: float, hi: float, step: float = 1.25
) -> float:
    """argmax of f on [lo, hi]: walk uphill from h0 by factors of ``step`` until f falls
    (a bracket around the maximum), then bounded Brent in log h within the bracket."""
    a, b, s = math.log(lo), math.log(hi), math.log(step)

    def g(x: float) -> float:
        return f(math.exp(x))

    x = min(max(math.log(h0), a), b)
    fx = g(x)
    for d in (s, -s):  # find the uphill direction; neither: x brackets the maximum
        nxt = min(max(x + d, a), b)
        if nxt != x and (fn := g(nxt)) > fx:
            break
    else:
        return _brent(g, max(x - s, a), min(x + s, b))
    prev, x, fx = x, nxt, fn
    while True:
        nxt = min(max(x + d, a), b)
        if nxt == x:  # reached a bound: the maximum lies on it
            return math.exp(x)
        if (fn := g(nxt)) <= fx:
            return _brent(g, min(prev, nxt), max(prev, nxt))
        prev, x, fx = x, nxt, fn


def _brent(g: Callable[[float], float], a: float, b: float) -> float:
    res = minimize_scalar(lambda x: -g(x), bounds=(a, b), method="bounded", options={"xatol": 1e-3})
    return math.exp(float(res.x))


def _check_supported(h: float, target: Prior, m: int) -> None:
    """Eq. 8: codes converge to variance s^2 - h^2 per component, so h must stay below s."""
    if isinstance(target, Normal):
        limit, what = target.std, "the target's std"
    elif isinstance(target, GaussianMixture):
        limit, what = float(target.stds.min()), "the smallest component std"
    else:
        return
    if h >= limit:
        raise UsageError(
            f"the optimal KDE bandwidth h = {h:.3f} is not below {what} ({limit:.3g}): "
            f"{m} KDE samples cannot support a {target.dim}-dimensional latent space (GENs "
            "Eq. 8, code variance s^2 - h^2 <= 0); use more samples m or a smaller latent dimension"
        )


def _describe(target: Prior) -> str | None:
    """A complete description of the target for the cache key; None: not cacheable."""
    if isinstance(target, GaussianMixture):
        parts = (target.means, target.stds, target.weights)
        return "GaussianMixture" + json.dumps([p.cpu().tolist() for p in parts])
    if isinstance(target, Normal | Uniform):
        return repr(target)
    return None


def _cache_path(key: dict[str, Any]) -> Path:
    root = os.environ.get("KDEGEN_CACHE")
    folder = Path(root).expanduser() if root else Path("~/.cache/kdegen").expanduser()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / "bandwidths" / f"jsd-l{key['dim']}-m{key['m']}-{digest}.json"


def _read_cache(path: Path, key: dict[str, Any]) -> list[float] | None:
    """The cached per-trial bandwidths; None when missing, corrupt or for another key."""
    try:
        payload = json.loads(path.read_text())
        hs = [float(x) for x in payload["h"]]
        ok = payload["key"] == key and len(hs) == key["trials"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return hs if ok and all(math.isfinite(x) and x > 0 for x in hs) else None


def _write_cache(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically (a temporary file renamed over the target): readers never see half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump(payload, f, indent=1)
        os.replace(f.name, path)
    except OSError as e:
        warnings.warn(
            f"cannot cache the bandwidth in {path.parent} ({e}); set KDEGEN_CACHE "
            "to a writable folder",
            stacklevel=3,
        )


# ---- entropy (Eq. 9) ---------------------------------------------------------------------


def entropy_bandwidth(z: Tensor, block: int = 2048) -> float:
    """The maximum-likelihood bandwidth of the leave-one-out KDE (supplement Eq. 5).

    Args:
        z: (m, l) samples, m >= 2.
        block: tile size of the kernel sums.
    """
    z = _as_codes(z, "z")
    if z.shape[0] < 2:
        raise UsageError("the entropy bandwidth needs at least 2 samples")
    return select_bandwidth(z, "ml", block)


def kde_entropy(z: Tensor, bandwidth: float | None = None, block: int = 2048) -> float:
    """Leave-one-out KDE entropy, -(1/m) sum_i log (1/(m-1)) sum_{j!=i} G_h(z_i - z_j) (Eq. 9).

    Args:
        z: (m, l) samples, m >= 2 (computed in float64).
        bandwidth: kernel std h; None takes :func:`entropy_bandwidth` (supplement Eq. 5).
        block: tile size of the kernel sums.

    Returns:
        The entropy estimate in nats.
    """
    z = _as_codes(z, "z").double()
    if z.shape[0] < 2:
        raise UsageError("the KDE entropy needs at least 2 samples")
    h = entropy_bandwidth(z, block) if bandwidth is None else _check_bandwidth(bandwidth)
    return -float(kde_log_prob(z, z, h, block, exclude_self=True).mean())
