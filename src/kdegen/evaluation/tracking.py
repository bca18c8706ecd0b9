"""Evaluation during training: a generator's samples scored every N steps.

Generator Reversal's Fig. 5 plots a model's Inception Score over the course of training;
the trainer's ``--eval-every N`` does the same for any method. :class:`TrainingEvaluator`
is made once per run: it loads the run's dataset as the reference (test split, and the
train split where a metric needs it), makes the embedding (for images the dataset's
evaluation classifier, trained once and cached) and embeds the reference once; each call
then draws samples from a fixed seed, embeds them and runs the metrics, without touching
the training's random state.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.evaluation.embed import EmbedSettings
from kdegen.evaluation.evaluate import default_embedding, plan_metrics, run_metrics, select_metrics
from kdegen.evaluation.generated import load_reference
from kdegen.evaluation.metrics import METRICS
from kdegen.evaluation.roles import prepare
from kdegen.evaluation.sources import Sources

AUTO_IMAGES = "inception_score,fid"


def auto_metrics(data: str) -> str:
    """The default metrics for a dataset: Inception Score and FID under the dataset's
    classifier for images, mode counts for the 2-D mixtures, MMD for other points."""
    test = load(data, "test")
    if test.kind == "image":
        return AUTO_IMAGES
    return "mode_count" if test.centres is not None else "mmd"


class TrainingEvaluator:
    """Scores samples of a method against its training dataset's reference.

    Args:
        data: the run's dataset name (its test split is the reference).
        metrics: "auto" or a comma-separated list of metric names.
        n: samples drawn for each evaluation.
        device: where the embedding runs.
        seed: seed of the samples (the same noise at every evaluation).

    Raises:
        UsageError: unknown metrics, or metrics that cannot apply to these data.
    """

    def __init__(
        self,
        data: str,
        metrics: str,
        n: int,
        device: torch.device,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        if n < 2:
            raise UsageError(f"--eval-n must be at least 2, got {n}")
        reference = load_reference(data)
        names, _ = select_metrics(auto_metrics(data) if metrics == "auto" else metrics)
        settings = EmbedSettings("logits", 500, device, progress=progress)
        probe = torch.zeros(n, *reference.test.shape)  # shapes only: nothing is embedded yet
        self.sources = Sources(probe, reference, default_embedding(reference), settings, 10_000)
        self.names, _ = plan_metrics(names, True, self.sources, "--eval-n")
        self.n, self.seed, self.device = n, seed, device
        with self._own_randomness():  # train or load the classifier now: errors come first
            prepare(self.sources, {role for name in self.names for role in METRICS.get(name).needs})

    def _own_randomness(self) -> Any:
        """Leave the training's random state as it was (CPU, and this run's GPU)."""
        devices = [self.device] if self.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def __call__(self, method: Any) -> dict[str, float]:
        """Draw ``n`` samples of ``method`` and return each metric's numbers by name:
        the headline value as ``<metric>``, the others as ``<metric>_<number>``, and the
        seconds it took as ``eval_seconds``."""
        start = time.perf_counter()
        with self._own_randomness(), torch.no_grad():
            samples: Tensor = method.sample(self.n, torch.Generator().manual_seed(self.seed))
            sources = self.sources.with_generated(samples.detach().float().cpu())
            results, _ = run_metrics(self.names, sources)
        self.sources = sources.without_generated()  # keep the embedded reference sets
        out: dict[str, float] = {}
        for name, value in results.items():
            out[name] = value.value
            for key, number in list(value.numbers.items())[1:]:
                out[f"{name}_{key}"] = float(number)
        out["eval_seconds"] = time.perf_counter() - start
        return out
