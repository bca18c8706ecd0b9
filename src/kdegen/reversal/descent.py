"""The descent loop of Algorithm 1: its step rules and stop rules (see :mod:`kdegen.reversal`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.reversal.config import LOSSES, PAIRWISE, ReversalConfig
from kdegen.reversal.result import Candidates, Reversal, StepState
from kdegen.stats.mmd import mmd2, mmd_test

GROW, SHRINK = 1.2, 0.5  # step-length factors of the normalized rule
MIN_STEP, MAX_STEP = 1e-6, 10.0  # bounds of a normalized step length


@dataclass
class Problem:
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


class StopRule:
    """Termination of Algorithm 1: ``steps`` never stops early."""

    def before_step(self, loss: Tensor) -> bool:
        """Stop before stepping, given the data's current losses."""
        return False

    def after_step(self, z: Tensor, n: int, result: Reversal) -> bool:
        """Stop after a step, given all codes (the data's first ``n``)."""
        return False


@dataclass
class _LossRule(StopRule):
    tol: float

    def before_step(self, loss: Tensor) -> bool:
        return float(loss.mean()) < self.tol


@dataclass
class _MMDRule(StopRule):
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
        test = mmd_test(
            real,
            ref,
            bandwidth=self.bandwidth,
            permutations=self.permutations,
            seed=len(result.mmd),
        )
        result.mmd.append(test.mmd2)
        result.p_values.append(test.p_value)
        result.bandwidths.append(test.bandwidth)
        return test.p_value < self.level


def stop_rule(config: ReversalConfig) -> StopRule:
    """The termination rule ``config.stop`` names."""
    if config.stop == "loss":
        return _LossRule(config.tol)
    if config.stop == "mmd":
        return _MMDRule(config.tol, config.level, config.mmd_bandwidth, config.permutations)
    return StopRule()


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

    def __init__(
        self, problem: Problem, z: Tensor, optimizer: str, lr: float, state: StepState
    ) -> None:
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
                raise UsageError(
                    "the reversal loss is not finite at the starting codes; "
                    "check the data and the codes for NaN or huge values"
                )
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


def descend(
    problem: Problem,
    z: Tensor,
    config: ReversalConfig,
    state: StepState,
    rule: StopRule,
    reconstruct: bool,
    candidates: Candidates | None = None,
) -> Reversal:
    """The descent loop shared by every stop rule and step rule."""
    n, steps, lr = problem.n_real, config.steps, config.lr
    run = _Descent(problem, z, config.optimizer, lr, state)
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


def _finish(
    problem: Problem, run: _Descent, result: Reversal, steps: int, reconstruct: bool
) -> Reversal:
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
