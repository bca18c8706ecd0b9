"""Generator reversal: codes z with G(z) ~ x by gradient descent on z.

Generator Reversal (Kilcher, Lucchi, Hofmann), Algorithm 1, with its three termination
rules: a fixed number of steps, a loss threshold, and Claim 4's two-sample rule.

Step rules. Algorithm 1 is plain gradient descent z <- z - eta grad (``"sgd"``; the
appendix uses eta = 1). On kdegen's generators no fixed eta serves: the gradient of
1/2 ||G(z) - x||^2 spans orders of magnitude across examples and over training, so one
eta crawls for some codes and throws others out of range. The default rule
(``"normalized"``) takes a step of its own length eta_i along each code's gradient
direction, z_i <- z_i - eta_i g_i / ||g_i||, and adapts eta_i per code: x1.2 while
consecutive gradients point the same way (positive inner product), x0.5 when they turn
back (an overshoot). Within one call a step that raised a code's loss is undone and its
eta_i halved, so on a fixed generator each code's loss, and their mean, never rises.
``"adam"`` is also offered. A code whose loss becomes NaN or infinite is put back where
the call started it and counted in :attr:`Reversal.resets`; it is never returned.
``l2`` adds lambda/2 ||z||^2, the regulariser the paper's Proposition 1 suggests
(locally strongly convex; the MAP code under an N(0, I) prior).

Claim 4's rule reverses the real batch and a batch that G generates from the
distribution that currently drives it (``prior``: the KDE, in KDE-GAN) side by side,
from the same kind of starting codes, and stops once the two code sets can be told
apart: a permutation test of the unbiased MMD^2 (Eq. 3) rejecting at ``level``, or,
without a level, MMD^2 above ``tol``. The kernel width is chosen from the codes
themselves (median heuristic: the median distance between pooled codes, recomputed
each step) unless ``mmd_bandwidth`` fixes it. The appendix's "kernel bandwidth 0.0001"
cannot be a width h of exp(-||a - b||^2 / (2 h^2)): every kernel value between two
distinct codes would vanish and the rule never fire; read as gamma of
exp(-gamma ||a - b||^2) it is h = 70.7 (:data:`PAPER_MMD_BANDWIDTH`), a constant that is
far wider than codes of any scale kdegen sees, so that MMD^2 stays near 0 whatever the
codes are. A width measured on the codes asks the question Claim 4 asks.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.priors import Normal, Prior
from kdegen.stats.mmd import mmd2, mmd_test

PAPER_MMD_BANDWIDTH = 1.0 / math.sqrt(2e-4)
STOPS = ("steps", "loss", "mmd")
OPTIMIZERS = ("normalized", "adam", "sgd")
INITS = ("prior", "normal", "zeros")
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    # per example, summed over pixels, shape (B,): l(z) = 1/2 ||G(z) - x||^2 (Proposition 1)
    "l2": lambda out, x: 0.5 * (out - x).pow(2).flatten(1).sum(1),
    "l1": lambda out, x: (out - x).abs().flatten(1).sum(1),
}
# the same losses between every example (N) and every output (P), shape (N, P)
PAIRWISE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "l2": lambda out, x: 0.5 * kernels.sq_dists(x.flatten(1), out.flatten(1)),
    "l1": lambda out, x: torch.cdist(x.flatten(1), out.flatten(1), p=1),
}
GROW, SHRINK = 1.2, 0.5  # step-length factors of the normalized rule
MIN_STEP, MAX_STEP = 1e-6, 10.0  # bounds of a normalized step length


@dataclass
class StepState:
    """Per-code state of the normalized rule, kept between calls by the code bank.

    Attributes:
        length: (N,) step length eta_i of each code.
        direction: (N, k) each code's last gradient direction (zeros: none yet).
    """

    length: Tensor
    direction: Tensor

    @staticmethod
    def fresh(n: int, k: int, length: float, device: torch.device) -> StepState:
        return StepState(torch.full((n,), float(length), device=device),
                         torch.zeros(n, k, device=device))  # fmt: skip


@dataclass
class Candidates:
    """Codes a reversal may restart from, with the generator's outputs for them.

    The outputs may be a few generator updates old: the code bank draws a pool once per
    KDE refit rather than paying a generator pass at every refresh.

    Attributes:
        codes: (P, k).
        outputs: (P, *shape), the generator's outputs for ``codes`` in eval mode.
    """

    codes: Tensor
    outputs: Tensor

    @staticmethod
    def of(generator: nn.Module, codes: Tensor) -> Candidates:
        """``codes`` and the generator's outputs for them now."""
        with torch.no_grad(), frozen(generator):
            return Candidates(codes, generator(codes))

    @staticmethod
    def draw(generator: nn.Module, prior: Prior, n: int,
             rng: torch.Generator | None = None) -> Candidates:  # fmt: skip
        """``n`` draws of ``prior`` and the generator's outputs for them."""
        return Candidates.of(generator, prior.sample(n, rng))


@dataclass
class Reversal:
    """What :func:`invert` found.

    Attributes:
        codes: (N, k) recovered codes.
        reconstructions: (N, *shape) = generator(codes), or None with reconstruct=False.
        losses: mean reconstruction loss after each step (length ``steps_taken``); with the
            normalized rule, of the codes accepted so far (it never rises).
        mmd: MMD^2 between real and reference codes after each step (stop="mmd").
        p_values: permutation p-values after each step (stop="mmd" with a level).
        bandwidths: the MMD kernel width used at each step (stop="mmd").
        steps_taken: gradient steps performed.
        example_loss: (N,) per-example loss of the returned codes (with reconstruct=False:
            of the last codes evaluated, which saves a forward pass).
        start_loss: (N,) per-example loss of the starting codes.
        start_information: mean loss of each start code against its own example divided by
            the mean against another example's (1: the codes say nothing of their examples).
        stopped_by: "steps", "loss" or "mmd".
        reference_codes: (M, k) codes of the reference batch (stop="mmd"), else None.
        resets: codes put back to their start because their loss was not finite.
        restarts: codes that restarted from one of the ``candidates``.
        state: the normalized rule's step lengths and directions after the call.
    """

    codes: Tensor
    reconstructions: Tensor | None
    losses: list[float] = field(default_factory=list)
    mmd: list[float] = field(default_factory=list)
    p_values: list[float] = field(default_factory=list)
    bandwidths: list[float] = field(default_factory=list)
    steps_taken: int = 0
    example_loss: Tensor | None = None
    start_loss: Tensor | None = None
    start_information: float = math.nan
    stopped_by: str = "steps"
    reference_codes: Tensor | None = None
    resets: int = 0
    restarts: int = 0
    state: StepState | None = None


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
    """Starting codes: prior samples ("prior"), init_std * N(0, I) ("normal") or zeros."""
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


def check_options(
    steps: int = 200, lr: float = 0.2, stop: str = "steps", loss: str = "l2",
    level: float | None = None, optimizer: str = "normalized", init: str = "prior",
    l2: float = 0.0, mmd_bandwidth: float | None = None, tol: float = 1e-4, **_: object,
) -> None:  # fmt: skip
    """Raise UsageError for reversal options :func:`invert` would reject (same defaults;
    other keyword arguments of :func:`invert` are ignored)."""
    if steps < 0:
        raise UsageError(f"reversal steps must be >= 0, got {steps}")
    if not (lr > 0 and math.isfinite(lr)):
        raise UsageError(f"the reversal learning rate must be positive, got {lr}")
    if stop not in STOPS:
        raise UsageError(f"unknown stop rule {stop!r}; choose one of: {', '.join(STOPS)}")
    if loss not in LOSSES:
        raise UsageError(f"unknown reversal loss {loss!r}; choose one of: {', '.join(LOSSES)}")
    if level is not None and not 0 < level < 1:
        raise UsageError(f"the test level must lie in (0, 1), got {level}")
    if optimizer not in OPTIMIZERS:
        raise UsageError(
            f"unknown reversal optimizer {optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}"
        )
    if init not in INITS:
        raise UsageError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")
    if not (l2 >= 0 and math.isfinite(l2)):
        raise UsageError(f"the reversal's l2 weight must be >= 0, got {l2}")
    if mmd_bandwidth is not None and not (mmd_bandwidth > 0 and math.isfinite(mmd_bandwidth)):
        raise UsageError(f"the MMD kernel bandwidth must be positive, got {mmd_bandwidth}")
    if math.isnan(tol):
        raise UsageError("the stop rule's threshold is NaN; give a number")


def invert(
    generator: nn.Module,
    x: Tensor,
    steps: int = 200,
    lr: float = 0.2,
    optimizer: str = "normalized",
    init: str = "prior",
    init_std: float = 1e-4,
    loss: str = "l2",
    stop: str = "steps",
    tol: float = 1e-4,
    reference: Tensor | None = None,
    *,
    level: float | None = None,
    mmd_bandwidth: float | None = None,
    permutations: int = 100,
    prior: Prior | None = None,
    init_codes: Tensor | None = None,
    rng: torch.Generator | None = None,
    reconstruct: bool = True,
    l2: float = 0.0,
    state: StepState | None = None,
    candidates: Candidates | Tensor | None = None,
) -> Reversal:
    """Recover codes z with generator(z) ~ x by gradient descent on z (Algorithm 1).

    Args:
        generator: maps codes (B, k) to data (B, *shape); its parameters and mode are
            left exactly as they were, and it runs in eval mode meanwhile.
        x: data (N, *shape) to reverse.
        steps: number of steps (stop="steps"), or the cap for the other rules.
        lr: step size: the first step length of the normalized rule, eta of sgd and adam.
        optimizer: "normalized" (see the module), "adam" or "sgd" (plain gradient descent).
        init: initial codes: "prior" (draws from ``prior``), "normal" (init_std * N(0, I)),
            "zeros".
        init_std: scale of the "normal" initial codes (appendix: 1e-4).
        loss: per-example "l2" (1/2 ||G(z) - x||^2, Proposition 1) or "l1" (sum of absolute
            errors); each code's gradient comes from its own example only.
        stop: "steps", "loss" (mean loss below ``tol``) or "mmd" (Claim 4; see the module).
        tol: the loss threshold, or the MMD^2 threshold when no ``level`` is given.
        reference: generated data reversed alongside for stop="mmd" (default: ``N`` samples
            of generator(prior)).
        level: level of the MMD rule's permutation test.
        mmd_bandwidth: the MMD kernel width h; None: the median heuristic on the codes.
        permutations: permutations of the test.
        prior: the distribution driving the generator (default N(0, I)), for init="prior"
            and the default reference.
        init_codes: (N, k) codes to start from instead (a warm start).
        rng: random generator for initial codes and the default reference.
        reconstruct: evaluate the final codes once more for ``reconstructions`` and
            ``example_loss`` (False: skip that forward pass, as the code bank does; the
            normalized rule then returns its last, unchecked step).
        l2: weight lambda of lambda/2 ||z||^2 added to each code's loss.
        state: step lengths and directions of the normalized rule to continue from
            (default: ``lr`` and none); the updated state is returned in the result.
        candidates: codes (P, k) tried once at the start, or :class:`Candidates` with the
            generator's outputs for them: a code whose objective is above the best of
            them restarts from it (a global move that local descent cannot make; the code
            bank passes a pool of prior draws).

    Returns:
        A :class:`Reversal`.

    Raises:
        UsageError: bad arguments, or data of another shape.
    """
    check_options(steps, lr, stop, loss, level, optimizer, init, l2, mmd_bandwidth, tol)
    device = x.device
    k = init_codes.shape[1] if init_codes is not None else latent_dim(generator)
    with frozen(generator):
        z = init_codes.detach().clone() if init_codes is not None else \
            initial_codes(len(x), k, init, init_std, prior, device, rng)  # fmt: skip
        if z.shape != (len(x), k):
            raise UsageError(f"init_codes must have shape ({len(x)}, {k}), got {tuple(z.shape)}")
        check_data_shape(generator, x, z)
        targets = x
        if stop == "mmd":
            ref = reference if reference is not None else \
                _generate(generator, prior or Normal(k, device=device), len(x), rng)  # fmt: skip
            check_data_shape(generator, ref, z)
            z = torch.cat([z, initial_codes(len(ref), k, init, init_std, prior, device, rng)])
            targets = torch.cat([x, ref.to(x.dtype)])
        full = StepState.fresh(len(z), k, lr, device)
        if state is not None:  # continue the data's codes' step lengths (the bank's)
            if state.length.shape != (len(x),) or state.direction.shape != (len(x), k):
                raise UsageError(f"the step state must describe {len(x)} codes of dimension {k}")
            full.length[: len(x)], full.direction[: len(x)] = state.length, state.direction
        problem = _Problem(generator, targets, len(x), loss, l2)
        rule = _stop_rule(stop, tol, level, mmd_bandwidth, permutations)
        if isinstance(candidates, Tensor):
            if candidates.dim() != 2 or candidates.shape[1] != k:
                raise UsageError(
                    f"candidates must have shape (P, {k}), got {tuple(candidates.shape)}"
                )
            candidates = Candidates.of(generator, candidates)
        return _descend(problem, z, steps, optimizer, lr, full, rule, reconstruct, candidates)


def _generate(generator: nn.Module, prior: Prior, n: int, rng: torch.Generator | None) -> Tensor:
    with torch.no_grad():
        return generator(prior.sample(n, rng))


@dataclass
class _Problem:
    """Each code's objective loss(G(z_i), target_i) + l2/2 ||z_i||^2; the first ``n_real``
    rows are the data's, the rest the MMD rule's reference batch."""

    generator: nn.Module
    targets: Tensor
    n_real: int
    loss_name: str
    l2: float

    @property
    def loss_fn(self) -> Callable[[Tensor, Tensor], Tensor]:
        return LOSSES[self.loss_name]

    def evaluate(
        self, z: Tensor, grad: bool = True, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(objective (N,), reconstruction loss (N,), gradient (N, k), outputs) at codes
        ``z`` of all rows, or of the rows selected by the mask ``rows``."""
        targets = self.targets if rows is None else self.targets[rows]
        zz = z.detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out = self.generator(zz)
            rec = self.loss_fn(out, targets)
            obj = rec + 0.5 * self.l2 * zz.pow(2).sum(1) if self.l2 else rec
        g = torch.autograd.grad(obj.sum(), zz)[0] if grad else torch.zeros_like(z)
        return obj.detach(), rec.detach(), g, out.detach()

    def candidates(self, found: Candidates) -> tuple[Tensor, Tensor]:
        """(objective, reconstruction loss) of each candidate for every row: (N, P)."""
        codes = found.codes
        with torch.no_grad():
            rec = PAIRWISE[self.loss_name](found.outputs.to(self.targets), self.targets)
            prior = 0.5 * self.l2 * codes.pow(2).sum(1) if self.l2 else torch.zeros(len(codes))
        return rec + prior.to(rec)[None, :], rec

    def information(self, out: Tensor) -> float:
        """Mean loss of the data's codes against their own examples over the mean against
        the next example's (a derangement): 1 when the codes say nothing of their examples."""
        n = self.n_real
        if n < 2:
            return math.nan
        x, own_out = self.targets[:n], out[:n]
        own = self.loss_fn(own_out, x).mean()
        shuffled = self.loss_fn(own_out.roll(1, 0), x).mean()
        return float(own / shuffled) if float(shuffled) > 0 else math.nan


class _StopRule:
    """Termination of Algorithm 1: ``steps`` never stops early."""

    def before_step(self, loss: Tensor) -> bool:
        """Stop before stepping, given the data's current losses."""
        return False

    def after_step(self, z: Tensor, n: int, result: Reversal) -> bool:
        """Stop after a step, given all codes (the data's first ``n``)."""
        return False


@dataclass
class _LossRule(_StopRule):
    tol: float

    def before_step(self, loss: Tensor) -> bool:
        return float(loss.mean()) < self.tol


@dataclass
class _MMDRule(_StopRule):
    """Claim 4: stop once the data's codes and the reference's can be told apart."""

    tol: float
    level: float | None
    bandwidth: float | None
    permutations: int

    def after_step(self, z: Tensor, n: int, result: Reversal) -> bool:
        real, ref = z[:n].detach().double(), z[n:].detach().double()
        if self.level is None:
            from kdegen.stats.mmd import median_bandwidth

            h = self.bandwidth or median_bandwidth(real, ref)
            result.mmd.append(mmd2(real, ref, bandwidth=h))
            result.bandwidths.append(h)
            return result.mmd[-1] > self.tol
        test = mmd_test(real, ref, bandwidth=self.bandwidth, permutations=self.permutations,
                        seed=len(result.mmd))  # fmt: skip
        result.mmd.append(test.mmd2)
        result.p_values.append(test.p_value)
        result.bandwidths.append(test.bandwidth)
        return test.p_value < self.level


def _stop_rule(
    stop: str, tol: float, level: float | None, bandwidth: float | None, permutations: int
) -> _StopRule:
    if stop == "loss":
        return _LossRule(tol)
    if stop == "mmd":
        return _MMDRule(tol, level, bandwidth, permutations)
    return _StopRule()


def _unit(g: Tensor) -> Tensor:
    return g / g.norm(dim=1, keepdim=True).clamp_min(1e-30)


def _adapt(state: StepState, g: Tensor, accepted: Tensor, first: bool) -> None:
    """The normalized rule's step lengths. Within a call an accepted step (its loss did
    not rise) grows the code's step length and a rejected one halves it; at the start of
    a call, where there is nothing to compare with, the length grows if the new gradient
    agrees with the code's last direction (from an earlier call) and halves if it turns
    back, so that steps of one per call still adapt."""
    if first:
        agree = (g * state.direction).sum(1)
        factor = torch.where(agree > 0, GROW, torch.where(agree < 0, SHRINK, 1.0))
    else:
        factor = torch.where(accepted, GROW, SHRINK)
    state.length.mul_(factor).clamp_(MIN_STEP, MAX_STEP)
    state.direction[accepted] = _unit(g[accepted])


class _Descent:
    """The accepted codes of one call and the rule that moves them (see the module)."""

    def __init__(self, problem: _Problem, z: Tensor, optimizer: str, lr: float,
                 state: StepState) -> None:  # fmt: skip
        self.problem, self.optimizer, self.state = problem, optimizer, state
        self.start = z.clone()
        self.z = z.clone()  # the current point: the latest step, checked or not
        self.adam = torch.optim.Adam([self.z], lr=lr) if optimizer == "adam" else None
        self.lr = lr
        self.bad = torch.zeros(len(z), dtype=torch.bool, device=z.device)

    def evaluate(self, first: bool) -> tuple[Tensor, Tensor]:
        """Evaluate the current point and accept it where it is better; returns the
        accepted objective and reconstruction loss (N,) and the outputs."""
        obj, rec, g, out = self.problem.evaluate(self.z)
        if first:
            if not bool(torch.isfinite(obj).all()):
                raise UsageError("the reversal loss is not finite at the starting codes; "
                                 "check the data and the codes for NaN or huge values")  # fmt: skip
            self.acc_z, self.acc_obj, self.acc_rec, self.g = self.z.clone(), obj, rec, g
            self.start_obj, self.start_rec = obj.clone(), rec.clone()
            if self.optimizer == "normalized":
                _adapt(self.state, g, torch.ones_like(self.bad), first=True)
            return rec, out
        if self.optimizer == "normalized":
            better = obj <= self.acc_obj  # NaN compares False: a non-finite step is undone
            self.bad |= ~torch.isfinite(obj)
            self.acc_z[better], self.acc_obj[better] = self.z[better], obj[better]
            self.acc_rec[better], self.g[better] = rec[better], g[better]
            _adapt(self.state, g, better, first=False)
            return rec, out
        self.bad |= ~torch.isfinite(obj)  # sgd/adam: diverged codes go back to their start
        b = self.bad
        self.z.data[b], g[b] = self.start[b], 0
        obj[b], rec[b] = self.start_obj[b], self.start_rec[b]
        self.acc_z, self.acc_obj, self.acc_rec, self.g = self.z.detach().clone(), obj, rec, g
        return rec, out

    def restart(self, candidates: Candidates, lr: float) -> Tensor:
        """Move each code whose objective is above the best of ``candidates`` to that
        candidate, with a fresh step length; returns the mask of codes moved."""
        obj, rec = self.problem.candidates(candidates)
        best, pick = obj.min(1)
        moved = best < self.acc_obj
        if bool(moved.any()):
            z = candidates.codes[pick[moved]].to(self.z)
            self.z.data[moved], self.acc_z[moved], self.start[moved] = z, z, z
            self.acc_obj[moved] = best[moved]
            self.acc_rec[moved] = rec[moved, pick[moved]]
            self.g[moved] = 0  # no step from the new start in this evaluation's turn
            self.state.length[moved], self.state.direction[moved] = lr, 0.0
        return moved

    def step(self) -> None:
        """Move every code once (the next point is checked by the next evaluation)."""
        with torch.no_grad():
            if self.optimizer == "normalized":
                self.z = self.acc_z - self.state.length[:, None] * _unit(self.g)
                return
            if self.adam is not None:
                self.z.grad = self.g
                self.adam.step()
            else:
                self.z.sub_(self.lr * self.g)
            self.z[self.bad] = self.start[self.bad]


def _descend(
    problem: _Problem, z: Tensor, steps: int, optimizer: str, lr: float, state: StepState,
    rule: _StopRule, reconstruct: bool, candidates: Candidates | None = None,
) -> Reversal:  # fmt: skip
    """The descent loop shared by every stop rule and step rule."""
    n = problem.n_real
    run = _Descent(problem, z, optimizer, lr, state)
    result = Reversal(z[:n].clone(), None)
    for step in range(steps):
        rec, out = run.evaluate(first=step == 0)
        if step == 0:
            result.start_loss = rec[:n].clone()
            result.start_information = problem.information(out)
            if candidates is not None and len(candidates.codes):
                result.restarts = int(run.restart(candidates, lr)[:n].sum())
        if rule.before_step(run.acc_rec[:n]):
            result.stopped_by = "loss"
            break
        result.losses.append(float(run.acc_rec[:n].mean()))
        run.step()
        result.steps_taken = step + 1
        if rule.after_step(run.z, n, result):
            result.stopped_by = "mmd"
            break
    result.resets = int(run.bad[:n].sum())
    result.state = StepState(state.length[:n], state.direction[:n])
    if steps > 0 and len(problem.targets) > n:
        result.reference_codes = run.z[n:].detach().clone()
    return _finish(problem, run, result, steps, reconstruct)


def _finish(problem: _Problem, run: _Descent, result: Reversal, steps: int,
            reconstruct: bool) -> Reversal:  # fmt: skip
    """The codes to return, with their losses (and reconstructions when asked)."""
    n = problem.n_real
    if steps == 0:
        if reconstruct:
            _, rec, _, out = problem.evaluate(run.z, grad=False)
            result.reconstructions, result.example_loss = out[:n], rec[:n]
            result.start_loss = rec[:n].clone()
        return result
    if not reconstruct:  # the last step stays unchecked (the bank checks it at the next visit)
        result.codes = run.z[:n].detach().clone()
        result.example_loss = run.acc_rec[:n].clone()
        return result
    obj, rec, _, out = problem.evaluate(run.z, grad=False)
    if run.optimizer == "normalized":
        worse = ~(obj <= run.acc_obj)
        if bool(worse.any()):  # the last step raised these codes' losses: keep the accepted
            _, rec_w, _, out_w = problem.evaluate(run.acc_z[worse], False, worse)
            z, rec, out = run.z.detach().clone(), rec.clone(), out.clone()
            z[worse], rec[worse], out[worse] = run.acc_z[worse], rec_w, out_w
        else:
            z = run.z.detach().clone()
    else:
        z = run.z.detach().clone()
        bad = ~torch.isfinite(obj)
        if bool(bad.any()):
            run.bad |= bad
            z[bad] = run.start[bad]
            _, rec_b, _, out_b = problem.evaluate(z[bad], False, bad)
            rec, out = rec.clone(), out.clone()
            rec[bad], out[bad] = rec_b, out_b
            result.resets = int(run.bad[:n].sum())
    result.codes, result.reconstructions, result.example_loss = z[:n], out[:n], rec[:n]
    return result
