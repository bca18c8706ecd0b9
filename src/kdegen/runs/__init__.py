"""Runs: the run directory on disk, the training loop that writes into it, and starting,
resuming, loading, sampling, reporting and comparing runs (the layer above the methods
and the evaluation; see the README's development section for the layer order)."""

from kdegen.evaluation.generated import Sampler
from kdegen.runs.directory import CHECKPOINT_FORMAT, OWNED, RunDir, is_run_dir, load_checkpoint
from kdegen.runs.lifecycle import (
    LoadedRun,
    build_method,
    load_run,
    read_run_config,
    resolve,
    resume,
    sampler,
    spec_of,
    start,
)
from kdegen.runs.training import BatchStream, Trainer, TrainingInterrupted, train_in_memory

__all__ = [
    "CHECKPOINT_FORMAT",
    "OWNED",
    "BatchStream",
    "LoadedRun",
    "RunDir",
    "Sampler",
    "Trainer",
    "TrainingInterrupted",
    "build_method",
    "is_run_dir",
    "load_checkpoint",
    "load_run",
    "read_run_config",
    "resolve",
    "resume",
    "sampler",
    "spec_of",
    "start",
    "train_in_memory",
]
