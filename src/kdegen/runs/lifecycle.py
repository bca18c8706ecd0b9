"""Start, resume and load runs: the library calls behind ``kdegen train`` and ``kdegen sample``.

Everything that can be wrong with the request (config, data, networks for that data,
the run directory, the checkpoint) is checked before anything is written, so a bad
request leaves the disk as it was.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kdegen import distributed
from kdegen.config import RunConfig, TrainConfig, read_json, replace
from kdegen.data import ImageData, canonical_spec, file_fingerprint, load
from kdegen.errors import UsageError
from kdegen.evaluation.generated import Sampler
from kdegen.methods import METHODS, DataSpec, Method
from kdegen.runs.directory import RunDir
from kdegen.runs.training import Trainer

# trainer fields a resumed run may change; anything else would make it another run
RESUMABLE = (
    "steps",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "keep_checkpoints",
    "grid_size",
    "device",
    "eval_every",
    "eval_metrics",
    "eval_n",
)


def spec_of(data: ImageData) -> DataSpec:
    """The data facts a method builds its networks from."""
    return DataSpec(tuple(data.shape), data.num_classes, len(data))


def resolve(config: RunConfig, spec: DataSpec) -> RunConfig:
    """The config with the method's automatic choices made explicit for ``spec``, and a
    user data file named by its absolute path, with its size and modification time."""
    train = replace(config.train, {"data": canonical_spec(config.train.data)})
    return RunConfig(
        config.method, config.options.resolved(spec), train, file_fingerprint(train.data)
    )


def build_method(config: RunConfig, spec: DataSpec, device: torch.device) -> Method:
    """Instantiate the configured method (seeded, so initial weights repeat)."""
    torch.manual_seed(config.train.seed)
    cls = METHODS.get(config.method)
    return cls(config.options, spec, device)


def read_run_config(run: RunDir) -> RunConfig:
    """Parse ``config.json`` of a run directory."""
    raw = read_json(run.config)
    if "method" not in raw:
        raise UsageError(f"{run.config} has no 'method'; it is not a kdegen run config")
    cls = METHODS.get(str(raw["method"]))
    return RunConfig.from_mapping(raw, cls.Config, str(run.config))


def start(config: RunConfig, out: str | Path, force: bool = False, progress: bool = True) -> RunDir:
    """Train a new run into ``out``.

    Args:
        config: the run's configuration (method, its options, trainer options).
        out: run directory; it must be absent or empty unless ``force``.
        force: overwrite kdegen's files in a non-empty ``out``.
        progress: show a progress bar.

    Returns:
        The run directory.

    Raises:
        UsageError: bad data, options or run directory (nothing is written then).
        kdegen.runs.training.TrainingInterrupted: stopped by a signal after checkpointing.
    """
    ctx = distributed.setup(config.train.device)
    data = load(config.train.data)
    spec = spec_of(data)
    config = resolve(config, spec)
    method = build_method(config, spec, ctx.device)
    run = RunDir(out)
    if ctx.is_main:
        run.check_new(force)
    evaluator = _evaluator(config.train, ctx, progress)
    # the trainer checks batch sizes and binds the data (labels, shapes) before the disk
    # changes: a refused start leaves a forced --out as it was
    trainer = _trainer(method, data, config.train, run, ctx, None, progress, evaluator)
    with _writing(run, ctx):
        if ctx.is_main:
            run.check_new(force)  # again: now no other process can write into it
            run.create(force)
            run.remove_temporaries()
            config.save(run.config)
        _barrier()
        trainer.fit()
    return run


@contextmanager
def _writing(run: RunDir, ctx: distributed.Context) -> Iterator[None]:
    """Hold the run directory's lock (on the main process, the one that writes); on the
    way out drop a forced start's new run if it never checkpointed, and unlock."""
    if not ctx.is_main:
        yield
        return
    run.lock()
    try:
        yield
    finally:
        run.discard_staged()
        run.unlock()


def resume(out: str | Path, progress: bool = True, **overrides: Any) -> RunDir:
    """Continue the run in ``out`` from its latest checkpoint.

    Args:
        out: the run directory.
        progress: show a progress bar.
        **overrides: new values for trainer fields in :data:`RESUMABLE` (e.g. ``steps``).
    """
    run = RunDir(out)
    if run.root.is_dir() and run.needs_recovery():  # a forced start a crash stopped
        run.lock()
        try:
            run.recover()
        finally:
            run.unlock()
    run.check_existing()
    config = read_run_config(run)
    given = overrides.get("data")
    if given is not None and canonical_spec(str(given)) == canonical_spec(config.train.data):
        overrides = {k: v for k, v in overrides.items() if k != "data"}  # the same data
    bad = sorted(set(overrides) - set(RESUMABLE))
    if bad:
        flags = ", ".join("--" + b.replace("_", "-") for b in bad)
        raise UsageError(
            f"{flags} cannot change when resuming (only {', '.join(RESUMABLE)} can); "
            "start a new run with --out to change it"
        )
    train_cfg: TrainConfig = replace(config.train, overrides)
    config = config.with_train(train_cfg)
    _warn_if_data_changed(config)
    source = run.resume_checkpoint()
    assert source is not None  # check_existing made sure
    stamp = source.stat()
    state = run.load_checkpoint(source)
    if train_cfg.steps < int(state["step"]):
        raise UsageError(
            f"{run.path} is at step {state['step']}; --steps {train_cfg.steps} would train "
            f"backwards: give --steps of at least {state['step']}"
        )
    ctx = distributed.setup(train_cfg.device)
    data = load(train_cfg.data)
    spec = spec_of(data)
    method = build_method(config, spec, ctx.device)
    method.load_state_dict(state["method"])
    evaluator = _evaluator(train_cfg, ctx, progress)
    trainer = _trainer(method, data, train_cfg, run, ctx, state["trainer"], progress, evaluator)
    with _writing(run, ctx):
        if ctx.is_main:
            now = source.stat() if source.is_file() else None
            if now is None or (now.st_mtime_ns, now.st_size) != (stamp.st_mtime_ns, stamp.st_size):
                raise UsageError(
                    f"{source} changed while this resume was starting (another process was "
                    "training the run); resume again"
                )
            run.remove_temporaries()
            config.save(run.config)
            run.truncate_metrics(int(state["step"]))
        _barrier()
        trainer.fit()
    return run


def _warn_if_data_changed(config: RunConfig) -> None:
    """Warn when the user data file a run trains on is not the one it started with."""
    before = config.data_file
    if before is None:
        return
    now = file_fingerprint(str(before["path"]))
    if now is None:
        return  # loading it will say it is missing
    if (now["bytes"], now["modified"]) != (before["bytes"], before["modified"]):
        warnings.warn(
            f"{before['path']} changed since the run started ({before['bytes']} bytes, "
            f"modified {before['modified']}; now {now['bytes']} bytes, modified "
            f"{now['modified']}): the resumed run trains on the new contents",
            stacklevel=2,
        )


def _evaluator(config: TrainConfig, ctx: distributed.Context, progress: bool) -> Any:
    """The evaluation of ``--eval-every`` (on the main process), made before anything is
    written so that its errors (metrics that do not apply, no labels for a classifier)
    leave the disk as it was."""
    if not config.eval_every or not ctx.is_main:
        return None
    from kdegen.evaluation.tracking import TrainingEvaluator

    return TrainingEvaluator(
        config.data, config.eval_metrics, config.eval_n, ctx.device, config.seed, progress
    )


def _trainer(
    method: Method,
    data: ImageData,
    config: TrainConfig,
    run: RunDir,
    ctx: distributed.Context,
    trainer_state: dict[str, Any] | None,
    progress: bool,
    evaluator: Any = None,
) -> Trainer:
    """The trainer of a run, ready to fit (it writes nothing until then)."""
    trainer = Trainer(method, data.images, data.labels, config, run, ctx, progress, evaluator)
    if trainer_state is not None:
        trainer.load_state_dict(trainer_state)
    return trainer


def _barrier() -> None:
    if distributed.world_size() > 1:
        torch.distributed.barrier()


@dataclass
class LoadedRun:
    """A trained run ready to sample from."""

    run: RunDir
    config: RunConfig
    method: Method
    step: int


def load_run(path: str | Path, device: str = "auto") -> LoadedRun:
    """Rebuild a run's method from its config and latest checkpoint (no data needed).

    Raises:
        UsageError: not a run directory, or a missing / corrupt checkpoint.
    """
    run = RunDir(path)
    run.check_existing()
    config = read_run_config(run)
    state = run.load_checkpoint()
    spec_raw = state.get("spec")
    if not isinstance(spec_raw, dict):
        raise UsageError(f"{run.latest} lacks the data description; train the run again")
    spec = DataSpec.from_dict(spec_raw)
    method = build_method(config, spec, distributed.pick_device(device))
    method.load_state_dict(state["method"])
    return LoadedRun(run, config, method, int(state["step"]))


def sampler(path: str | Path, device: str = "auto") -> Sampler:
    """The run's latest checkpoint as a :class:`kdegen.evaluation.generated.Sampler`: what
    ``kdegen evaluate`` draws samples from."""
    loaded = load_run(path, device)
    return Sampler(lambda n, g: loaded.method.sample(n, generator=g), str(path), loaded.step)
