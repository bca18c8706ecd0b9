"""Generator reversal: codes z with G(z) ~ x by gradient descent on z.

Generator Reversal (Kilcher, Lucchi, Hofmann), Algorithm 1, with its three termination
rules: a fixed number of steps, a loss threshold, and Claim 4's two-sample rule: reverse
the real batch and a batch of generated samples side by side and stop once the unbiased
MMD^2 (Eq. 3, :func:`kdegen.stats.mmd2`) between the two code sets exceeds a threshold,
or a permutation test tells them apart. :class:`CodeBank` keeps one code per training
example and warm-starts each reversal from it, so the work of every iteration
accumulates instead of restarting.

Kernel width of the stopping rule. The appendix uses "an MMD threshold of 0.0001 with a
kernel bandwidth of 0.0001" and initial codes of std 1e-4. Read as h in kdegen's
exp(-||a - b||^2 / (2 h^2)), that kernel vanishes between any two distinct codes (for
k = 100 and init std 1e-4, ||a - b||^2 / (2 h^2) ~ k), so MMD^2 would stay 0 and the
rule never fire. kdegen reads the 1e-4 as the coefficient gamma of exp(-gamma ||a - b||^2),
i.e. h = 1 / sqrt(2e-4) ~ 70.7 (:data:`PAPER_MMD_BANDWIDTH`); any h can be passed.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.priors import Normal, Prior
from kdegen.stats.mmd import mmd2, mmd_test

PAPER_MMD_BANDWIDTH = 1.0 / math.sqrt(2e-4)
STOPS = ("steps", "loss", "mmd")
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    # per example, summed over pixels, shape (B,): l(z) = 1/2 ||G(z) - x||^2 (Proposition 1)
    "l2": lambda out, x: 0.5 * (out - x).pow(2).flatten(1).sum(1),
    "l1": lambda out, x: (out - x).abs().flatten(1).sum(1),
}
INITS = ("normal", "prior", "zeros")


@dataclass
class Reversal:
    """What :func:`invert` found.

    Attributes:
        codes: (N, k) recovered codes.
        reconstructions: (N, *shape) = generator(codes), or None with reconstruct=False.
        losses: mean reconstruction loss after each step (length ``steps_taken``).
        mmd: MMD^2 between real and reference codes after each step (stop="mmd").
        p_values: permutation p-values after each step (stop="mmd" with a level).
        steps_taken: gradient steps performed.
        example_loss: (N,) per-example loss of the final codes (with reconstruct=False: of
            the codes before the last step, which saves a forward pass).
        stopped_by: "steps", "loss" or "mmd".
        reference_codes: (M, k) codes of the reference batch (stop="mmd"), else None.
    """

    codes: Tensor
    reconstructions: Tensor | None
    losses: list[float] = field(default_factory=list)
    mmd: list[float] = field(default_factory=list)
    p_values: list[float] = field(default_factory=list)
    steps_taken: int = 0
    example_loss: Tensor | None = None
    stopped_by: str = "steps"
    reference_codes: Tensor | None = None


@contextmanager
def frozen(generator: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients inside; both restored exactly afterwards."""
    was_training = generator.training
    flags = [p.requires_grad for p in generator.parameters()]
    generator.eval()
    generator.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(generator.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        generator.train(was_training)


def latent_dim(generator: nn.Module) -> int:
    """The generator's latent dimension (its ``latent`` attribute)."""
    k = getattr(generator, "latent", None)
    if not isinstance(k, int):
        raise UsageError("the generator has no `latent` attribute; pass init_codes of shape (N, k)")
    return k


def initial_codes(
    n: int, k: int, init: str, init_std: float, prior: Prior | None,
    device: torch.device, generator: torch.Generator | None = None,
) -> Tensor:  # fmt: skip
    """Starting codes: init_std * N(0, I) ("normal"), prior samples ("prior") or zeros."""
    if init == "zeros":
        return torch.zeros(n, k, device=device)
    if init == "prior":
        return (prior or Normal(k, device=device)).sample(n, generator).to(device)
    if init == "normal":
        gen_device = generator.device if generator is not None else device
        return (init_std * torch.randn(n, k, generator=generator, device=gen_device)).to(device)
    raise UsageError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")


# output shape of each generator seen, so repeated reversals skip the trial forward pass
_OUTPUT_SHAPES: weakref.WeakKeyDictionary[nn.Module, tuple[int, ...]] = weakref.WeakKeyDictionary()


def check_data_shape(generator: nn.Module, x: Tensor, z: Tensor | None = None) -> None:
    """Fail with a clear message unless ``generator`` makes data shaped like ``x``.

    ``z`` is a code batch to try (default: one zero code of the generator's latent size).
    """
    out_shape = _OUTPUT_SHAPES.get(generator)
    if out_shape is None:
        if z is None:
            device = next(generator.parameters()).device
            z = torch.zeros(1, latent_dim(generator), device=device)
        with torch.no_grad(), frozen(generator):
            out_shape = tuple(generator(z[:1]).shape[1:])
        _OUTPUT_SHAPES[generator] = out_shape
    if tuple(x.shape[1:]) != out_shape:
        raise UsageError(
            f"data of shape {tuple(x.shape[1:])} cannot be reversed: the generator makes "
            f"{out_shape}; give data of the generator's shape"
        )


def _make_optimizer(name: str, params: list[Tensor], lr: float) -> torch.optim.Optimizer:
    if name == "sgd":  # plain gradient descent z <- z - lr * grad (Algorithm 1, line 4)
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise UsageError(f"unknown reversal optimizer {name!r}; choose sgd or adam")


def check_options(
    steps: int = 200, lr: float = 1.0, stop: str = "mmd", loss: str = "l2",
    level: float | None = None, optimizer: str = "sgd", init: str = "normal", **_: Any,
) -> None:  # fmt: skip
    """Raise UsageError for reversal options :func:`invert` would reject (same defaults)."""
    if steps < 0:
        raise UsageError(f"reversal steps must be >= 0, got {steps}")
    if not lr > 0:
        raise UsageError(f"the reversal learning rate must be positive, got {lr}")
    if stop not in STOPS:
        raise UsageError(f"unknown stop rule {stop!r}; choose one of: {', '.join(STOPS)}")
    if loss not in LOSSES:
        raise UsageError(f"unknown reversal loss {loss!r}; choose one of: {', '.join(LOSSES)}")
    if level is not None and not 0 < level < 1:
        raise UsageError(f"the test level must lie in (0, 1), got {level}")
    if optimizer not in ("sgd", "adam"):
        raise UsageError(f"unknown reversal optimizer {optimizer!r}; choose sgd or adam")
    if init not in INITS:
        raise UsageError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")


def invert(
    generator: nn.Module,
    x: Tensor,
    steps: int = 200,
    lr: float = 1.0,
    optimizer: str = "sgd",
    init: str = "normal",
    init_std: float = 1e-4,
    loss: str = "l2",
    stop: str = "mmd",
    tol: float = 1e-4,
    reference: Tensor | None = None,
    *,
    level: float | None = None,
    mmd_bandwidth: float = PAPER_MMD_BANDWIDTH,
    permutations: int = 100,
    prior: Prior | None = None,
    init_codes: Tensor | None = None,
    rng: torch.Generator | None = None,
    reconstruct: bool = True,
) -> Reversal:
    """Recover codes z with generator(z) ~ x by gradient descent on z (Algorithm 1).

    Args:
        generator: maps codes (B, k) to data (B, *shape); its parameters and mode are
            left exactly as they were, and it runs in eval mode meanwhile.
        x: data (N, *shape) to reverse.
        steps: number of steps (stop="steps"), or the cap for the other rules.
        lr: step size eta.
        optimizer: "sgd" (plain gradient descent) or "adam".
        init: initial codes: "normal" (init_std * N(0, I)), "prior", "zeros".
        init_std: scale of the "normal" initial codes (appendix: 1e-4).
        loss: per-example "l2" (1/2 ||G(z) - x||^2, Proposition 1) or "l1" (sum of absolute
            errors); each code's gradient comes from its own example only.
        stop: "steps", "loss" (mean loss below ``tol``) or "mmd" (Claim 4: MMD^2 between
            the real and reference codes above ``tol``, or a permutation test rejecting at
            ``level`` when one is given).
        tol: the loss or MMD^2 threshold.
        reference: generated data reversed alongside for stop="mmd" (default: ``N`` samples
            of generator(prior)).
        level: test level for the permutation test of the MMD rule.
        mmd_bandwidth: Gaussian kernel bandwidth h of the MMD rule.
        permutations: permutations of the test.
        prior: the generator's latent prior (default N(0, I)) for the default reference and
            init="prior".
        init_codes: (N, k) codes to start from instead (a warm start).
        rng: random generator for initial codes and the default reference.
        reconstruct: run the generator once more on the final codes for
            ``reconstructions`` and ``example_loss`` (False: skip it, as the code bank does).

    Returns:
        A :class:`Reversal`.

    Raises:
        UsageError: bad arguments, data of another shape, or a loss that became NaN.
    """
    check_options(steps, lr, stop, loss, level, optimizer, init)
    device = x.device
    k = init_codes.shape[1] if init_codes is not None else latent_dim(generator)
    loss_fn = LOSSES[loss]
    with frozen(generator):
        z = init_codes.detach().clone() if init_codes is not None else \
            initial_codes(len(x), k, init, init_std, prior, device, rng)  # fmt: skip
        if z.shape != (len(x), k):
            raise UsageError(f"init_codes must have shape ({len(x)}, {k}), got {tuple(z.shape)}")
        check_data_shape(generator, x, z)
        targets, codes = [x], [z.requires_grad_(True)]
        if stop == "mmd":
            ref = reference if reference is not None else \
                _generate(generator, prior or Normal(k, device=device), len(x), rng)  # fmt: skip
            check_data_shape(generator, ref, z)
            zr = initial_codes(len(ref), k, init, init_std, prior, device, rng)
            targets.append(ref)
            codes.append(zr.requires_grad_(True))
        opt = _make_optimizer(optimizer, codes, lr)
        result = _descend(generator, targets, codes, steps, stop, (tol, level, mmd_bandwidth),
                          permutations, loss_fn, opt, reconstruct)  # fmt: skip
    return result


def _generate(generator: nn.Module, prior: Prior, n: int, rng: torch.Generator | None) -> Tensor:
    with torch.no_grad():
        return generator(prior.sample(n, rng))


def _descend(
    generator: nn.Module,
    targets: list[Tensor],
    codes: list[Tensor],
    steps: int,
    stop: str,
    thresholds: tuple[float, float | None, float],
    permutations: int,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    opt: torch.optim.Optimizer,
    reconstruct: bool,
) -> Reversal:
    """The descent loop shared by every stop rule; ``codes[0]`` are the real data's.

    ``thresholds`` is (tol, level, MMD bandwidth).
    """
    tol, level, bandwidth = thresholds
    out = Reversal(codes[0], None)
    last: Tensor | None = None
    for step in range(steps):
        per = [loss_fn(generator(z), t) for z, t in zip(codes, targets, strict=True)]
        last = per[0].detach()
        mean = float(last.mean())
        if not math.isfinite(mean):
            raise UsageError(f"reversal diverged (loss {mean} at step {step}); lower the lr")
        if stop == "loss" and mean < tol:
            out.stopped_by = "loss"
            break
        opt.zero_grad(set_to_none=True)
        sum(p.sum() for p in per).backward()  # type: ignore[union-attr]
        opt.step()
        out.losses.append(mean)
        out.steps_taken = step + 1
        if stop == "mmd" and _mmd_says_stop(out, codes, bandwidth, tol, level, permutations):
            out.stopped_by = "mmd"
            break
    out.codes = codes[0].detach()
    out.reference_codes = codes[1].detach() if len(codes) > 1 else None
    if reconstruct or last is None:
        with torch.no_grad():
            out.reconstructions = generator(out.codes)
            out.example_loss = loss_fn(out.reconstructions, targets[0])
    else:
        out.example_loss = last
    return out


def _mmd_says_stop(
    out: Reversal, codes: list[Tensor], h: float, tol: float, level: float | None,
    permutations: int,
) -> bool:  # fmt: skip
    real, ref = codes[0].detach(), codes[1].detach()
    if level is None:
        value = mmd2(real, ref, bandwidth=h)
        out.mmd.append(value)
        return value > tol
    test = mmd_test(real, ref, bandwidth=h, permutations=permutations, seed=len(out.mmd))
    out.mmd.append(test.mmd2)
    out.p_values.append(test.p_value)
    return test.p_value < level


class CodeBank:
    """One code per training example, refined a few steps at a time (warm starts).

    Args:
        size: number of training examples.
        dim: latent dimension k.
        init: how codes start ("normal": init_std * N(0, I); "prior": N(0, I); "zeros").
        init_std: scale of "normal" initial codes.
        seed: seed of the initial codes.
        device: where the codes live.
    """

    def __init__(
        self, size: int, dim: int, init: str = "normal", init_std: float = 1e-4,
        seed: int = 0, device: str | torch.device = "cpu",
    ) -> None:  # fmt: skip
        if size < 1 or dim < 1:
            raise UsageError(f"a code bank needs size and dim >= 1, got {size}, {dim}")
        dev = torch.device(device)
        rng = torch.Generator().manual_seed(seed)
        self.codes = initial_codes(size, dim, init, init_std, None, torch.device("cpu"), rng).to(
            dev
        )
        self.visits = torch.zeros(size, dtype=torch.long, device=dev)
        self.steps = torch.zeros(size, dtype=torch.long, device=dev)
        self.loss = torch.full((size,), math.nan, device=dev)

    def refresh(self, generator: nn.Module, x: Tensor, index: Tensor, **kwargs: Any) -> Reversal:
        """Continue the reversal of examples ``index`` (data ``x``) from their stored codes.

        Keyword arguments go to :func:`invert` (steps, lr, stop, ...).
        """
        r = invert(generator, x, init_codes=self.codes[index], **kwargs)
        self.store(index, r.codes, r.steps_taken, r.example_loss)
        return r

    def store(self, index: Tensor, codes: Tensor, steps: int, loss: Tensor | None) -> None:
        """Write codes found for examples ``index`` (e.g. gathered from other processes)."""
        self.codes[index] = codes.to(self.codes.dtype)
        self.visits[index] += 1
        self.steps[index] += steps
        if loss is not None:
            self.loss[index] = loss.to(self.loss.dtype)

    def visited(self) -> Tensor:
        """Codes of examples reversed at least once, (n_visited, k)."""
        return self.codes[self.visits > 0]

    def state_dict(self) -> dict[str, Tensor]:
        return {"codes": self.codes, "visits": self.visits, "steps": self.steps, "loss": self.loss}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state["codes"].shape != self.codes.shape:
            raise UsageError(
                f"code bank of shape {tuple(state['codes'].shape)} does not fit "
                f"{tuple(self.codes.shape)}"
            )
        for name in ("codes", "visits", "steps", "loss"):
            getattr(self, name).copy_(state[name])
