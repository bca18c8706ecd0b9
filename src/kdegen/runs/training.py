"""The generic training loop: batches, logging, sample grids, checkpoints, resume.

The Trainer drives any :class:`kdegen.methods.base.Method` and knows nothing about
GANs or autoencoders. Everything random in a step comes from torch's global RNG
(seeded per process) and from a batch order that is a pure function of (seed, epoch),
and both are saved in each checkpoint with the optimizer states, so a run that is
interrupted and resumed logs exactly the losses of a run that never stopped.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler
from tqdm import tqdm  # type: ignore[import-untyped]

from kdegen import distributed
from kdegen.config import TrainConfig
from kdegen.distributed import Context
from kdegen.errors import UsageError
from kdegen.files import describe_write_error
from kdegen.images import save_samples
from kdegen.methods.base import Batch, Method
from kdegen.runs.directory import RunDir


class TrainingInterrupted(Exception):
    """Raised after a SIGINT/SIGTERM once the current step finished and a checkpoint is written."""

    def __init__(self, step: int, run: str | None = None) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step, self.run = step, run


class TrainingDiverged(Exception):
    """A loss became NaN or infinite: training stopped without checkpointing the bad state."""

    def __init__(self, step: int, loss: str, run: str | None, saved: int | None) -> None:
        kept = (
            f"the last good checkpoint (step {saved}) is kept in {run}/checkpoints"
            if run is not None and saved is not None
            else "no checkpoint was written"
        )
        super().__init__(
            f"training diverged by step {step}: {loss} is NaN or infinite; {kept}; "
            "lower the learning rates or change the objective"
        )
        self.step, self.loss, self.run, self.saved = step, loss, run, saved


class OutputFailed(Exception):
    """Writing into the run directory failed mid-run (a full disk): training stopped and
    the last checkpoint written completely is kept."""

    def __init__(self, step: int, error: OSError, run: str, saved: int | None) -> None:
        what = describe_write_error(error) or f"{error.strerror}: {error.filename}"
        kept = (
            f"the last good checkpoint (step {saved}) is kept in {run}/checkpoints; "
            f"`kdegen train --resume {run}` continues from it"
            if saved is not None
            else "no checkpoint was written"
        )
        super().__init__(f"training stopped at step {step}: {what}; {kept}")
        self.step, self.run, self.saved = step, run, saved


class BatchStream:
    """Deterministic minibatch indices: batch k is a pure function of (seed, k).

    Each epoch is a DistributedSampler permutation seeded by ``seed + epoch``; process
    ``rank`` takes its shard and cuts it into per-process batches of
    ``batch_size / world`` examples (the last incomplete batch of an epoch is dropped).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise UsageError(f"--batch-size {batch_size} must be divisible by {world} processes")
        self.per_process = batch_size // world
        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(n),  # type: ignore[arg-type]  # any sized sequence works
            num_replicas=world,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=True,
        )
        self.per_epoch = len(self.sampler) // self.per_process
        if self.per_epoch == 0:
            raise UsageError(
                f"the dataset has {n} examples, fewer than one batch of {batch_size}; "
                "lower --batch-size"
            )
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def indices(self, k: int) -> Tensor:
        """Example indices of this process's part of global batch ``k``."""
        epoch, j = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, torch.tensor(list(self.sampler))
        return self._order[j * self.per_process : (j + 1) * self.per_process]


class Trainer:
    """Runs a method for ``config.steps`` steps, writing into ``run`` (on rank 0).

    Args:
        method: what to train.
        images: the training set (N, *shape), moved to the method's device once.
        labels: (N,) labels or None.
        config: schedule and intervals.
        run: the run directory (None: write nothing, e.g. in benchmarks).
        ctx: this process's rank, world size and device.
        progress: show a tqdm progress bar (rank 0 only).
        evaluator: called with the method every ``config.eval_every`` steps (rank 0), it
            returns numbers that go into metrics.jsonl with the step and the training
            time; the time it takes is not counted as training time.
        desc: label of the progress bar.
    """

    def __init__(
        self,
        method: Method,
        images: Tensor,
        labels: Tensor | None,
        config: TrainConfig,
        run: RunDir | None,
        ctx: Context,
        progress: bool = True,
        evaluator: Callable[[Method], dict[str, float]] | None = None,
        desc: str | None = None,
    ) -> None:
        self.method, self.config, self.run, self.ctx = method, config, run, ctx
        self.evaluator, self.desc = evaluator, desc
        self.images = images.to(ctx.device)
        self.labels = labels.to(ctx.device) if labels is not None else None
        self.stream = BatchStream(len(images), config.batch_size, config.seed, ctx.rank, ctx.world)
        self.progress = progress and ctx.is_main
        self.step = 0
        self.elapsed = 0.0  # training seconds before this process started (resume)
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self._stop = False
        self.saved: int | None = None  # step of the last checkpoint written (or resumed from)
        torch.manual_seed(config.seed * 1000 + ctx.rank)
        for net in method.networks().values():
            distributed.broadcast_module(net)
        method.bind_data(self.images, self.labels)

    # ----- state ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Trainer state for a checkpoint: step, clock, RNG states of every process,
        and the loss sums since the last log line."""
        rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if self.ctx.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        return {
            "step": self.step,
            "elapsed": self.elapsed + self._clock(),
            "rng": distributed.gather_objects(rng),
            "sums": {k: float(v) for k, v in self._sums.items()},
            "counts": dict(self._counts),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.saved = self.step
        rngs = state["rng"]
        if len(rngs) == self.ctx.world:
            mine = rngs[self.ctx.rank]
            torch.set_rng_state(mine["cpu"])
            if "cuda" in mine and self.ctx.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda"], self.ctx.device)
        else:  # other process count: continue, but not bit-identically
            torch.manual_seed(self.config.seed * 1000 + self.ctx.rank + self.step)
        self._sums = {
            k: torch.tensor(v, dtype=torch.float64, device=self.ctx.device)
            for k, v in state["sums"].items()
        }
        self._counts = {k: int(v) for k, v in state["counts"].items()}

    def checkpoint_state(self) -> dict[str, Any]:
        for net in self.method.networks().values():
            distributed.average_buffers(net)
        return {
            "method": self.method.state_dict(),
            "trainer": self.state_dict(),
            "spec": self.method.spec.to_dict(),
        }

    # ----- loop ----------------------------------------------------------------------

    def batch(self, step: int) -> Batch:
        """The minibatch(es) of ``step`` (``method.batches_per_step`` consecutive batches)."""
        per = self.method.batches_per_step
        idx = torch.cat([self.stream.indices(step * per + i) for i in range(per)])
        idx = idx.to(self.ctx.device)
        y = self.labels[idx] if self.labels is not None else None
        return Batch(self.images[idx], y, idx)

    def fit(self) -> None:
        """Train from ``self.step`` to ``config.steps``.

        Raises:
            TrainingInterrupted: on SIGINT/SIGTERM, after writing a checkpoint.
        """
        cfg = self.config
        self._t0 = time.perf_counter()
        self._mark = (self._t0, self.step)
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5,
            desc=self.desc,
            leave=self.run is not None,
        )
        with self._output_failures():
            with bar, self._signals():
                while self.step < cfg.steps:
                    self.method.set_progress(self.step, cfg.steps)
                    losses = self.method.train_step(self.batch(self.step))
                    self._accumulate(losses)
                    self.step += 1
                    bar.update(1)
                    self._periodic(bar)
                    if distributed.any_process(self._stop, self.ctx.device):
                        self.save_checkpoint()
                        where = str(self.run.root) if self.run else None
                        raise TrainingInterrupted(self.step, where)
            if self.step % cfg.checkpoint_every:
                self.save_checkpoint()
            if self.step % cfg.sample_every:
                self.save_sample_grid()
            if cfg.eval_every and self.step % cfg.eval_every:
                self.evaluate()

    @contextmanager
    def _output_failures(self) -> Iterator[None]:
        """A write into the run directory that fails (full disk, lost permission) stops
        training with one message naming the last good checkpoint."""
        try:
            yield
        except OSError as e:
            if self.run is None:
                raise
            raise OutputFailed(self.step, e, str(self.run.root), self.saved) from None

    def _check_finite(self) -> None:
        """Stop every process when a loss summed since the last record is NaN or infinite
        (checked where it is read anyway: at each record and before each checkpoint)."""
        bad = [k for k, total in self._sums.items() if not math.isfinite(float(total))]
        if distributed.any_process(bool(bad), self.ctx.device):
            loss = bad[0] if bad else "a loss of another process"
            run = str(self.run.root) if self.run is not None else None
            raise TrainingDiverged(self.step, loss, run, self.saved)

    def _periodic(self, bar: tqdm) -> None:
        cfg, s = self.config, self.step
        if s % cfg.log_every == 0:
            self._check_finite()
            record = self._log_record()
            if self.run is not None and self.ctx.is_main:
                self.run.append_metrics(record)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k.endswith("_loss")})
        if s % cfg.sample_every == 0:
            self.save_sample_grid()
        if cfg.eval_every and s % cfg.eval_every == 0:
            self.evaluate()
        if s % cfg.checkpoint_every == 0:
            self.save_checkpoint()

    def _accumulate(self, losses: Any) -> None:
        for k, v in losses.items():
            v = (
                v.detach().to(torch.float64)
                if isinstance(v, Tensor)
                else torch.tensor(float(v), dtype=torch.float64)
            )
            self._sums[k] = self._sums[k] + v if k in self._sums else v
            self._counts[k] = self._counts.get(k, 0) + 1

    def _log_record(self) -> dict[str, Any]:
        """Mean of each loss since the last record, and the step rate over that interval."""
        now = time.perf_counter()
        t_prev, s_prev = self._mark
        rate = (self.step - s_prev) / max(now - t_prev, 1e-9)
        self._mark = (now, self.step)
        record: dict[str, Any] = {"step": self.step}
        for k, total in self._sums.items():
            record[k] = float(total) / self._counts[k]
        record["it_per_s"] = rate
        record["samples_per_s"] = rate * self.config.batch_size * self.method.batches_per_step
        record["time"] = self.elapsed + self._clock()
        self._sums, self._counts = {}, {}
        return record

    def _clock(self) -> float:
        t0 = getattr(self, "_t0", None)
        return 0.0 if t0 is None else time.perf_counter() - t0

    # ----- outputs -------------------------------------------------------------------

    def evaluate(self) -> None:
        """Score the current samples (``--eval-every``) into metrics.jsonl; the clock that
        measures training time stands still meanwhile."""
        if self.evaluator is None or self.run is None or not self.ctx.is_main:
            return
        paused = time.perf_counter()
        numbers = self.evaluator(self.method)
        pause = time.perf_counter() - paused
        self._t0 += pause
        self._mark = (self._mark[0] + pause, self._mark[1])
        self.run.append_metrics(
            {"step": self.step, **numbers, "time": self.elapsed + self._clock()}
        )

    def save_checkpoint(self) -> None:
        if self.run is None and self.ctx.world == 1:
            return
        self._check_finite()  # never checkpoint a diverged state over a good one
        state = self.checkpoint_state()  # collective: every process takes part
        if self.run is not None and self.ctx.is_main:
            self.run.save_checkpoint(state, self.step, self.config.keep_checkpoints)
        self.saved = self.step

    def save_sample_grid(self) -> None:
        if self.run is None or not self.ctx.is_main:
            return
        shape = self.method.spec.shape
        if len(shape) == 1 and shape[0] != 2:
            return  # no picture for points of other dimensions
        fixed = torch.Generator().manual_seed(self.config.seed)
        n = self.config.grid_size if len(shape) == 3 else max(self.config.grid_size, 1000)
        samples = self.method.sample(n, generator=fixed)
        reference = self.images[:2000] if len(shape) == 1 else None
        save_samples(samples, self.run.samples / f"step-{self.step:07d}.png", reference)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """On SIGINT/SIGTERM finish the step, checkpoint and stop; a second SIGINT kills.

        Without a run directory there is nothing to resume: signals act as usual.
        """
        if self.run is None or threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum: int, frame: Any) -> None:
            self._stop = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def train_in_memory(
    method: Method,
    images: Tensor,
    labels: Tensor | None,
    steps: int,
    batch_size: int,
    seed: int,
    progress: bool = False,
    desc: str | None = None,
) -> Method:
    """Train ``method`` on in-memory data for ``steps`` steps through :class:`Trainer`,
    writing nothing: the loop of experiments that train many small models.

    The same batches as ``kdegen train`` (epochs without replacement, ``batches_per_step``
    batches per step), the same learning-rate schedule and seeding. Returns ``method``.
    """
    config = TrainConfig(data="in-memory", steps=steps, batch_size=batch_size, seed=seed)
    ctx = Context(0, 1, method.device)
    Trainer(method, images, labels, config, None, ctx, progress, desc=desc).fit()
    return method
