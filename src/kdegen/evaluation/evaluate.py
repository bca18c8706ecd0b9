"""Evaluating a generative model by whole distributions: the library behind ``kdegen evaluate``.

Following the thesis (Basart, Ch. 3), a generated set is judged against held-out real
data in an embedding space: the Distribution Divergence Measure (Eq. 3.4) next to the
measures it is compared with (Inception and Mode Score, FID, KID, MMD, Parzen windows,
nearest-neighbour and birthday tests, precision/recall, density/coverage, mode counts).

:func:`evaluate` reads the generated set and the reference (:mod:`.sources`), works out
which metrics can apply and which input roles they need (:mod:`.roles`), embeds only
what those need, runs the metrics of :data:`kdegen.evaluation.metrics.METRICS` and
returns an :class:`Evaluation`: each metric's numbers, its headline value and standard
error where one exists, the embedding and the sample sizes. Metrics that cannot apply to
these data, or that would mean nothing on so few samples (each metric declares its
least size per set), are skipped with a reason under ``all`` and are an error when named.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from kdegen import distributed
from kdegen.config import Config, option
from kdegen.errors import UsageError
from kdegen.evaluation.embed import EMBEDDINGS, ClassifierConfig, EmbedSettings, Reference
from kdegen.evaluation.generated import GeneratedSet, Sampler, load_generated, load_reference
from kdegen.evaluation.metrics import METRICS, Metric
from kdegen.evaluation.roles import ROLE_SOURCES, prepare
from kdegen.evaluation.sources import Sources
from kdegen.files import write_text_atomic

EVAL_FORMAT = "kdegen-eval-1"
# how `all` lists them: the thesis's measure first, then the ones it is compared with
ORDER = (
    "ddm",
    "ddm_relative",
    "inception_score",
    "mode_score",
    "fid",
    "kid",
    "mmd",
    "parzen",
    "precision_recall",
    "density_coverage",
    "nearest_neighbour",
    "birthday",
    "mode_count",
    "digit_modes",
)


Features = Literal["logits", "prelogits", "hypercolumns"]
# what to do about a set with too few samples for a metric ({flag}: the option that sets n)
MORE = {
    "generated": "draw more with {flag} or pass more",
    "test": "use a larger reference",
    "train": "use more training data (--train-data, --max-train)",
}


@dataclass(frozen=True, kw_only=True)
class EvalConfig(Config):
    """What to measure and how: the options of :func:`evaluate` and ``kdegen evaluate``."""

    metrics: str = option("all", "all, or metric names separated by commas (`kdegen metrics`)")
    embedding: str | None = option(
        None,
        "feature embedding: classifier, pixels, pca, inception (needs kdegen[fidelity]); "
        "none: classifier for images, pixels for points",
    )
    features: Features = option("logits", "the classifier's layer")
    n: int | None = option(
        None,
        "samples drawn from a run (none: 5000, or the reference's size if smaller); "
        "for files, a random subset",
        ge=2,
    )
    train_data: str | None = option(None, "training data instead of the reference's train split")
    seed: int = option(0, "seed of the samples drawn and of their order")
    batch_size: int = option(250, "images per forward pass of the embedding", ge=1)
    device: str = option("auto", "cpu, cuda, cuda:N, mps or auto")
    progress: bool = option(True, "show progress bars and the classifier's accuracy")
    max_train: int = option(
        10_000,
        "train-side metrics use a seeded subset of at most this many training samples "
        "(embeddings are fitted on all of them)",
        ge=2,
    )
    classifier: ClassifierConfig = option(
        ClassifierConfig(), "classifier embedding (part of its cache key)", prefix="classifier"
    )


@dataclass(frozen=True)
class MetricValue:
    """One metric's result: its headline value, standard error (or None), all its numbers."""

    value: float
    stderr: float | None
    numbers: dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """Everything ``kdegen evaluate`` reports (and writes as JSON)."""

    metrics: dict[str, MetricValue]
    skipped: dict[str, str]
    notes: dict[str, str]
    embedding: dict[str, Any]
    sizes: dict[str, int]
    generated: dict[str, Any]
    reference: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become null)."""
        raw = {"format": EVAL_FORMAT, **asdict(self)}
        out: dict[str, Any] = _finite(raw)
        return out


def _finite(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def select_metrics(text: str) -> tuple[list[str], bool]:
    """Metric names from "all" or a comma list (validated); and whether they were named."""
    if text.strip() == "all":
        ranked = sorted(METRICS.names(), key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
        return ranked, False
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--metrics is empty; give 'all' or names such as ddm,fid")
    for name in names:
        METRICS.get(name)  # unknown names raise with suggestions
    return list(dict.fromkeys(names)), True


def default_embedding(reference: Reference) -> str:
    """classifier for images, pixels (the coordinates) for point sets."""
    return "classifier" if reference.test.kind == "image" else "pixels"


def too_few(metric: Metric, sources: Sources, flag: str = "--n") -> str | None:
    """Why ``metric`` would mean nothing on these sets' sizes (None when they suffice)."""
    least = metric.minimum.samples
    for which in dict.fromkeys(ROLE_SOURCES.get(r).of for r in metric.needs):
        if which is not None and sources.size(which) < least:
            return (
                f"it needs at least {least} {which} samples ({metric.minimum.why}), got "
                f"{sources.size(which)}; {MORE[which].format(flag=flag)}"
            )
    return None


def plan_metrics(
    names: list[str], explicit: bool, sources: Sources, flag: str = "--n"
) -> tuple[list[str], dict[str, str]]:
    """Split ``names`` into metrics that can run and skipped ones with the reason.

    ``flag`` is the option that sets the number of generated samples (for the advice).

    Raises:
        UsageError: a metric named explicitly cannot apply to these data.
    """
    runnable, skipped = [], {}
    for name in names:
        metric = METRICS.get(name)
        reasons = [ROLE_SOURCES.get(r).missing(sources) for r in metric.needs]
        reason = next((r for r in reasons if r), None) or too_few(metric, sources, flag)
        if reason is None:
            runnable.append(name)
        elif explicit:
            raise UsageError(f"metric {name} cannot be computed here: {reason}")
        else:
            skipped[name] = reason
    if not runnable:
        first = next(iter(skipped.items()))
        raise UsageError(
            f"none of the metrics asked for applies to these data ({first[0]}: {first[1]}); "
            "see --metrics"
        )
    return runnable, skipped


def headline(numbers: dict[str, float]) -> MetricValue:
    """The first number is the value; a number named ``stderr...`` its standard error."""
    value = next(iter(numbers.values()))
    stderr = next((v for k, v in numbers.items() if k.startswith("stderr")), None)
    return MetricValue(float(value), None if stderr is None else float(stderr), numbers)


def run_metrics(
    names: list[str], sources: Sources, skipped: dict[str, str] | None = None
) -> tuple[dict[str, MetricValue], dict[str, str]]:
    """Fill the roles the metrics need (each once) and run the metrics in order.

    Args:
        names: the metrics.
        sources: the data and embeddings.
        skipped: when given (metrics asked for as ``all``), a metric that rejects these
            data (too few samples for it, a degenerate set) is recorded here instead of
            stopping the evaluation. Errors in the data themselves always stop it.

    Returns:
        The results, and the warnings a metric raised (e.g. a Parzen width at the edge
        of its grid) as one-line notes by metric name.
    """
    inputs: dict[str, Any] = {}
    results: dict[str, MetricValue] = {}
    notes: dict[str, str] = {}
    prepare(sources, {role for name in names for role in METRICS.get(name).needs})
    for name in names:
        metric = METRICS.get(name)
        for role in metric.needs:
            if role not in inputs:
                inputs[role] = ROLE_SOURCES.get(role).get(sources)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                numbers = metric(inputs)
            except UsageError as e:
                if skipped is None:
                    raise UsageError(f"metric {name}: {e}") from None
                skipped[name] = str(e)
                continue
        results[name] = headline({k: float(v) for k, v in numbers.items()})
        if caught:
            notes[name] = "; ".join(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    return results, notes


def evaluate(
    source: str | Sampler,
    reference: str,
    config: EvalConfig = EvalConfig(),
) -> Evaluation:
    """Evaluate a run directory, image folder or .npz against a reference.

    Args:
        source: a model to draw ``config.n`` samples from (a run directory's is
            :func:`kdegen.runs.sampler`), or an image folder or file.
        reference: a dataset name (test split, train split where needed) or files.
        config: metrics, embedding and sizes.

    Returns:
        The evaluation; bad inputs raise :class:`kdegen.UsageError` before any output.
    """
    start = time.perf_counter()
    names, explicit = select_metrics(config.metrics)
    device = distributed.pick_device(config.device)
    ref = load_reference(reference, config.train_data)
    embedding = config.embedding or default_embedding(ref)
    EMBEDDINGS.get(embedding)  # unknown names raise with suggestions
    if config.features != "logits" and embedding != "classifier":
        raise UsageError(f"--features applies to --embedding classifier, not {embedding}")
    settings = EmbedSettings(
        config.features, config.batch_size, device, config.progress, config.classifier
    )
    generated = load_generated(source, config.n, ref, config.seed)
    sources = Sources(generated.samples, ref, embedding, settings, config.max_train)
    runnable, skipped = plan_metrics(names, explicit, sources)
    results, notes = run_metrics(runnable, sources, None if explicit else skipped)
    if not results:
        raise UsageError(f"no metric could be computed: {next(iter(skipped.values()))}")
    return Evaluation(
        results,
        skipped,
        notes,
        sources.describe(),
        _sizes(sources),
        _about(generated),
        reference,
        time.perf_counter() - start,
    )


def _sizes(sources: Sources) -> dict[str, int]:
    """Samples in each set the metrics saw (train: after the ``max_train`` subset)."""
    sizes = {"generated": len(sources.generated), "test": len(sources.reference.test)}
    if sources.train is not None:
        sizes["train"] = len(sources.train)
    return sizes


def _about(generated: GeneratedSet) -> dict[str, Any]:
    about: dict[str, Any] = {"source": generated.source, "kind": generated.kind}
    if generated.step is not None:
        about["step"] = generated.step
    return about


def write_json(evaluation: Evaluation, path: Path) -> None:
    """Write the evaluation to ``path`` atomically (a temporary file renamed into place)."""
    write_text_atomic(path, json.dumps(evaluation.to_dict(), indent=2) + "\n")


def table_rows(data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows (metric, value, ± stderr, other numbers) of an evaluation's JSON dict."""
    rows = [("metric", "value", "stderr", "details")]
    for name, m in data["metrics"].items():
        details = ", ".join(
            f"{k}={_fmt(v)}"
            for k, v in list(m["numbers"].items())[1:]
            if not k.startswith("stderr")
        )
        stderr = "" if m["stderr"] is None else _fmt(m["stderr"])
        rows.append((name, _fmt(m["value"]), stderr, details))
    return rows


def _fmt(v: float | None) -> str:
    return "nan" if v is None else f"{v:.5g}"
