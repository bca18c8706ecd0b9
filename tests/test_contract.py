"""Contract tests over the registries: every registered method, experiment and metric.

Each registry has a table here with one entry per registered name, and a test that fails
when a name has none, so a new method, experiment or metric cannot go untested:

- ``TINY``: tiny settings of each method. Every method trains a few steps through the
  :class:`~kdegen.runs.training.Trainer` with finite losses and moves every network; seeded
  runs repeat exactly and a run resumed from its checkpoint logs the losses of one that
  never stopped; its state survives a checkpoint's round trip; ``sample`` is finite, of
  the data's shape and a function of its generator; and it has exactly the capability
  Protocols of :mod:`kdegen.methods.capabilities` its entry lists, each behaving as its
  Protocol says.
- ``EXPERIMENT_TESTS``: the default-suite test that runs each experiment at a tiny size.
- ``METRIC_KEYS``: the numbers each metric returns, checked on tiny fixed inputs.

Tests of one method's own behaviour (closed forms, option variants, command-line tools)
stay in that method's test file.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from kdegen import runs
from kdegen.config import RunConfig, TrainConfig
from kdegen.data import ImageData, load
from kdegen.distributed import Context
from kdegen.errors import UsageError
from kdegen.evaluation.metrics import METRICS, ROLES
from kdegen.experiments import EXPERIMENTS
from kdegen.methods import METHODS, Batch, Method
from kdegen.methods.capabilities import (
    Autoencodes,
    Classifies,
    HasEncoder,
    HasGenerator,
    KeepsCodes,
    ReconstructsLevels,
    SamplesClasses,
    TransformsImages,
)
from kdegen.nets.modes import evaluating
from kdegen.runs.directory import RunDir, load_checkpoint
from kdegen.runs.training import Trainer

CPU = torch.device("cpu")
CTX = Context(0, 1, CPU)
CAPABILITIES = (HasGenerator, HasEncoder, Autoencodes, KeepsCodes, Classifies, SamplesClasses,
                TransformsImages, ReconstructsLevels)  # fmt: skip
STEPS = 2  # the resumed run stops after STEPS and continues for STEPS more
BATCH = 16
POINTS, IMAGES = "ring8:n=256", "digits"  # both labelled (8 modes, 10 digits)

# ----- methods ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tiny:
    """A method's tiny settings.

    Attributes:
        data: dataset name (points or images, labelled either way).
        options: config overrides that make the networks tiny and every step cheap.
        capabilities: the capability Protocols the method has (isinstance), no more.
    """

    data: str
    options: dict[str, Any]
    capabilities: frozenset[type] = field(default_factory=frozenset)


MLP = {"latent": 2, "hidden": 16, "layers": 2}
DCGAN = {"latent": 4, "width": 4}
AE_POINTS = {"arch": "fc", "latent": 2, "hidden": 16, "layers": 1}
AUTOENCODES = frozenset({HasGenerator, HasEncoder, Autoencodes})

TINY: dict[str, Tiny] = {
    "gan": Tiny(POINTS, MLP, frozenset({HasGenerator})),
    "pacgan": Tiny(POINTS, {**MLP, "pack": 2}, frozenset({HasGenerator})),
    "unrolled": Tiny(IMAGES, {**DCGAN, "unroll_steps": 1}, frozenset({HasGenerator})),
    "bigan": Tiny(IMAGES, DCGAN, AUTOENCODES),
    "veegan": Tiny(POINTS, MLP, AUTOENCODES),
    "hali": Tiny(IMAGES, {**DCGAN, "latent1": 6}, AUTOENCODES | {ReconstructsLevels}),
    # refits at steps 1 and 4: the resumed run's step 3 draws from the KDE of before the stop
    "kdegan": Tiny(
        POINTS,
        {**MLP, "bank_size": 32, "rev_batch": 8, "rev_restarts": 4, "refit_every": 3},
        frozenset({HasGenerator, KeepsCodes}),
    ),
    "cgan": Tiny(POINTS, MLP, frozenset({SamplesClasses})),
    "acgan": Tiny(IMAGES, DCGAN, frozenset({SamplesClasses, Classifies})),
    # ssgan defines sample_class only to refuse it (its generator is unconditional)
    "ssgan": Tiny(
        IMAGES, {**DCGAN, "labeled": 20}, frozenset({HasGenerator, Classifies, SamplesClasses})
    ),
    "modnet": Tiny(
        IMAGES, {"width": 4, "variant": "separate"}, frozenset({Classifies, TransformsImages})
    ),
    "ae": Tiny(IMAGES, {"arch": "conv", "latent": 4, "width": 4}, AUTOENCODES),
    "vae": Tiny(POINTS, AE_POINTS, AUTOENCODES),
    "aae": Tiny(POINTS, {**AE_POINTS, "d_hidden": 16}, AUTOENCODES),
    # an explicit bandwidth: the JSD-optimal one takes seconds to find
    "gen": Tiny(POINTS, {**AE_POINTS, "m": 64, "bandwidth": 0.5}, AUTOENCODES | {KeepsCodes}),
}


def tiny(name: str) -> Tiny:
    if name not in TINY:
        pytest.fail(f"method {name!r} has no tiny settings: add it to TINY in {__file__}")
    return TINY[name]


@functools.cache
def dataset(name: str) -> ImageData:
    return load(name)


def train_config(name: str, steps: int, seed: int = 3) -> TrainConfig:
    return TrainConfig(data=tiny(name).data, steps=steps, batch_size=BATCH, seed=seed,
                       log_every=1, sample_every=2 * STEPS, checkpoint_every=1000,
                       keep_checkpoints=0, grid_size=4, device="cpu")  # fmt: skip


def build(name: str, train: TrainConfig) -> Method:
    """The method as ``kdegen train`` builds it: options resolved for the data, seeded."""
    cls = METHODS.get(name)
    spec = runs.spec_of(dataset(tiny(name).data))
    config = runs.resolve(RunConfig(name, cls.Config(**tiny(name).options), train), spec)
    return runs.build_method(config, spec, CPU)


def train(name: str, out: Path, steps: int, seed: int = 3, resume: bool = False) -> Method:
    """Train ``name`` into run directory ``out`` for ``steps`` steps (in all), through the
    Trainer; ``resume`` continues from the run's checkpoint as ``kdegen train --resume``."""
    config = train_config(name, steps, seed)
    method = build(name, config)
    run = RunDir(out)
    state = None
    if resume:
        state = run.load_checkpoint()
        method.load_state_dict(state["method"])
    else:
        run.create(force=False)
    data = dataset(tiny(name).data)
    trainer = Trainer(method, data.images, data.labels, config, run, CTX, progress=False)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
    trainer.fit()
    return method


def logged(out: Path) -> list[dict[str, float]]:
    """Each metrics.jsonl record without its clock readings."""
    clocks = ("it_per_s", "samples_per_s", "time")
    return [{k: v for k, v in r.items() if k not in clocks} for r in RunDir(out).read_metrics()]


def tensors(method: Method) -> dict[str, Tensor]:
    """Every parameter and buffer of every network, by name."""
    return {f"{net}.{k}": v for net, module in method.networks().items()
            for k, v in module.state_dict().items()}  # fmt: skip


def assert_same_tensors(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


def stepped(name: str, seed: int = 0) -> Method:
    """The method built with ``seed``, bound to its data and trained one step."""
    method = build(name, train_config(name, 1, seed))
    data = dataset(tiny(name).data)
    method.bind_data(data.images, data.labels)
    torch.manual_seed(seed)
    method.train_step(batch_of(name, method, 0))
    return method


def batch_of(name: str, method: Method, start: int) -> Batch:
    """A step's examples from the data of ``name``, from example ``start`` on."""
    data = dataset(tiny(name).data)
    index = torch.arange(start, start + BATCH * method.batches_per_step)
    y = data.labels[index] if data.labels is not None else None
    return Batch(data.images[index], y, index)


def finite(x: Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def test_every_method_has_tiny_settings() -> None:
    missing = sorted(set(METHODS.names()) - set(TINY))
    assert not missing, f"registered methods without tiny settings in TINY: {missing}"
    stale = sorted(set(TINY) - set(METHODS.names()))
    assert not stale, f"TINY entries of methods that are not registered: {stale}"


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_through_the_trainer(name: str, tmp_path: Path) -> None:
    initial = tensors(build(name, train_config(name, 2 * STEPS)))
    method = train(name, tmp_path / "run", 2 * STEPS)
    records = logged(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 2 * STEPS + 1))
    assert all(any(k.endswith("_loss") for k in r) for r in records), records
    bad = [(r["step"], k, v) for r in records for k, v in r.items() if not math.isfinite(v)]
    assert not bad, bad
    after = tensors(method)
    for net in method.networks():
        keys = [k for k in initial if k.startswith(f"{net}.")]
        assert any(not torch.equal(initial[k], after[k]) for k in keys), f"{net} did not learn"
    assert load_checkpoint(RunDir(tmp_path / "run").latest)["step"] == 2 * STEPS
    assert len(list(RunDir(tmp_path / "run").samples.glob("*.png"))) == 1


@pytest.mark.parametrize("name", METHODS.names())
def test_method_repeats_and_resumes_exactly(name: str, tmp_path: Path) -> None:
    full = train(name, tmp_path / "full", 2 * STEPS)
    again = train(name, tmp_path / "again", 2 * STEPS)
    train(name, tmp_path / "part", STEPS)
    resumed = train(name, tmp_path / "part", 2 * STEPS, resume=True)
    assert logged(tmp_path / "full") == logged(tmp_path / "again")
    assert logged(tmp_path / "full") == logged(tmp_path / "part")
    assert_same_tensors(tensors(full), tensors(again))
    assert_same_tensors(tensors(full), tensors(resumed))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(full.sample(6, g1), resumed.sample(6, g2))
    other = train(name, tmp_path / "other", 2 * STEPS, seed=4)
    assert logged(tmp_path / "other") != logged(tmp_path / "full")
    mine, theirs = tensors(full), tensors(other)
    assert any(not torch.equal(mine[k], theirs[k]) for k in mine)  # the seed matters


@pytest.mark.parametrize("name", METHODS.names())
def test_method_state_round_trip_continues_identically(name: str) -> None:
    a = stepped(name)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)  # as in a checkpoint: no tensor shared with ``a``
    buffer.seek(0)
    b = build(name, train_config(name, 1, seed=5))  # other initial weights
    b.load_state_dict(torch.load(buffer, weights_only=True))
    data = dataset(tiny(name).data)
    b.bind_data(data.images, data.labels)  # as a resumed run does, after loading
    assert_same_tensors(tensors(a), tensors(b))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(a.sample(6, g1), b.sample(6, g2))
    out = []
    for m in (a, b):
        torch.manual_seed(9)
        out.append({k: float(v) for k, v in m.train_step(batch_of(name, m, BATCH)).items()})
    assert out[0] == out[1]
    assert_same_tensors(tensors(a), tensors(b))


@pytest.mark.parametrize("name", METHODS.names())
def test_method_samples(name: str) -> None:
    method = stepped(name)
    shape = runs.spec_of(dataset(tiny(name).data)).shape
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    x = method.sample(7, g1)
    assert x.shape == (7, *shape) and finite(x)
    assert torch.equal(x, method.sample(7, g2))  # a function of the generator
    assert not torch.equal(x, method.sample(7, torch.Generator().manual_seed(3)))
    if len(shape) == 3:
        assert float(x.abs().max()) <= 1.0  # images in [-1, 1]
    assert method.sample(0).shape == (0, *shape)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_capabilities(name: str) -> None:
    method = stepped(name)
    has = {c for c in CAPABILITIES if isinstance(method, c)}
    names = sorted(c.__name__ for c in has)
    assert has == tiny(name).capabilities, f"{name} has {names}; update TINY or the method"
    data = dataset(tiny(name).data)
    x = data.images[:10]
    codes = None
    if isinstance(method, HasGenerator):
        prior = method.prior_for_sampling()
        G = method.generator()
        assert isinstance(G, nn.Module)
        g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        with evaluating(G):
            z = prior.sample(5, g1)
            out = G(z)
        assert z.dim() == 2 and finite(z)
        # sample() is the generator driven by the prior
        torch.testing.assert_close(out, method.sample(5, g2))
        codes = z.shape[1]
    if isinstance(method, HasEncoder):
        z = method.encode(x)
        assert z.shape[0] == 10 and z.dim() == 2 and finite(z)
        assert codes is None or z.shape[1] == codes
        # an example's code does not depend on its batch (eval mode)
        torch.testing.assert_close(method.encode(x[3:4]), z[3:4], rtol=1e-5, atol=1e-6)
    if isinstance(method, Autoencodes):
        G = method.generator()
        with evaluating(G):
            assert G(method.encode(x)).shape == x.shape
    if isinstance(method, KeepsCodes):
        kept = method.latent_codes()
        assert kept.dim() == 2 and len(kept) > 0 and finite(kept)
        assert codes is None or kept.shape[1] == codes
    if isinstance(method, ReconstructsLevels):
        levels = method.level_reconstructions(x)
        assert levels and all(r.shape == x.shape and finite(r) for r in levels.values())
        G = method.generator()  # type: ignore[attr-defined]
        with evaluating(G):  # the deepest level is the reconstruction through the codes
            deepest = G(method.encode(x))  # type: ignore[attr-defined]
        torch.testing.assert_close(list(levels.values())[-1], deepest)
    if isinstance(method, Classifies):
        logits = method.classify(x)
        assert logits.shape == (10, data.num_classes) and finite(logits)
    if isinstance(method, SamplesClasses):
        try:
            one = method.sample_class(3, 1, torch.Generator().manual_seed(0))
        except UsageError as e:  # a method that cannot, saying so in one line
            assert "\n" not in str(e)
        else:
            assert one.shape == (3, *x.shape[1:]) and finite(one)
    if isinstance(method, TransformsImages):
        assert method.classes == data.num_classes
        target = (data.labels[:10] + 1) % method.classes
        moved = method.transform(x, target)
        assert moved.shape == x.shape and float(moved.abs().max()) <= 1.0


# ----- experiments --------------------------------------------------------------------------

# The default-suite test (tests/FILE.py::NAME) that runs each experiment at a tiny size.
EXPERIMENT_TESTS: dict[str, str] = {
    "corruptions": "test_experiments.py::test_corruptions_on_digits_through_the_cli",
    "gen-bandwidths": "test_gen_experiments.py::test_gen_bandwidths_tiny",
    "gen-correlation": "test_gen_experiments.py::test_gen_correlation_tiny",
    "gen-entropy": "test_gen_experiments.py::test_gen_entropy_tiny",
    "gen-mog": "test_gen_experiments.py::test_gen_mog_tiny_through_the_cli",
    "hali-levels": "test_hali.py::test_quick_hali_levels_experiment",
    "heuristics": "test_heuristics.py::test_quick_heuristics_experiment_writes_table_json_and_plot",
    "learning-speed":
        "test_kdegan_experiments.py::test_tiny_learning_speed_writes_curves_table_and_plot",
    "memorisation": "test_kdegan_experiments.py::test_tiny_memorisation",
    "metric-ranking": "test_experiments.py::test_metric_ranking_runs_on_tiny_gans",
    "missing-modes": "test_experiments.py::test_missing_modes_on_digits",
    "mode-collapse": "test_mode_collapse.py::test_tiny_run_writes_table_json_and_plot",
    "mode-recovery": "test_mode_recovery.py::test_tiny_mode_recovery_on_mnist1000",
    "modnet-augment": "test_modnet.py::test_augmentation_experiment",
    "random-reversal":
        "test_kdegan_experiments.py::test_tiny_random_reversal_separates_k_below_and_above_the_pixels",
}  # fmt: skip


def test_every_experiment_has_a_tiny_run() -> None:
    missing = sorted(set(EXPERIMENTS.names()) - set(EXPERIMENT_TESTS))
    assert not missing, f"registered experiments without a tiny run in EXPERIMENT_TESTS: {missing}"
    stale = sorted(set(EXPERIMENT_TESTS) - set(EXPERIMENTS.names()))
    assert not stale, f"EXPERIMENT_TESTS entries of experiments that are not registered: {stale}"


@pytest.mark.parametrize("name", EXPERIMENTS.names())
def test_experiment_tiny_run_is_in_the_default_suite(name: str) -> None:
    """The listed test exists, is not marked slow and runs this experiment."""
    if name not in EXPERIMENT_TESTS:
        pytest.fail(f"experiment {name!r} has no tiny run: add one to EXPERIMENT_TESTS")
    entry = EXPERIMENTS.get(name)
    assert entry.description and callable(entry.run)
    filename, test = EXPERIMENT_TESTS[name].split("::")
    module = importlib.import_module(filename.removesuffix(".py"))
    fn = getattr(module, test, None)
    assert fn is not None, f"{EXPERIMENT_TESTS[name]} does not exist"
    marks = {m.name for m in getattr(fn, "pytestmark", [])}
    assert "slow" not in marks, f"{EXPERIMENT_TESTS[name]} is not in the default suite"
    assert f'"{name}"' in inspect.getsource(fn), f"{EXPERIMENT_TESTS[name]} does not run {name}"


# ----- metrics ------------------------------------------------------------------------------

# The numbers each registered metric returns.
METRIC_KEYS: dict[str, set[str]] = {
    "nearest_neighbour": {"mean", "std"},
    "precision_recall": {"precision", "recall"},
    "density_coverage": {"density", "coverage"},
    "birthday": {"collision_probability", "support_size", "threshold"},
    "ddm": {"nats", "bits", "stderr_nats"},
    "ddm_relative": {"nats", "bits", "stderr_nats"},
    "fid": {"value"},
    "kid": {"mean", "std"},
    "mmd": {"mmd2", "p_value", "bandwidth"},
    "mode_count": {"modes_hit", "high_quality", "kl"},
    "digit_modes": {"distinct", "kl"},
    "parzen": {"mean", "stderr", "sigma"},
    "inception_score": {"mean", "std"},
    "mode_score": {"score", "marginal_kl"},
}


def metric_inputs() -> dict[str, Any]:
    """Tiny fixed arrays for every role of :data:`ROLES`."""
    g = np.random.default_rng(3)
    t = torch.Generator().manual_seed(1)
    return {
        "generated": g.normal(size=(40, 2)),
        "test": g.normal(size=(40, 2)),
        "train": g.normal(size=(50, 2)),
        "generated_probs": g.dirichlet(np.ones(10), size=40),
        "train_probs": g.dirichlet(np.ones(10), size=30),
        "generated_pixels": torch.rand(30, 1, 4, 4, generator=t) * 2 - 1,
        "train_pixels": torch.rand(35, 1, 4, 4, generator=t) * 2 - 1,
        "mode_centres": np.array([[0.0, 0.0], [3.0, 0.0]]),
        "mode_std": 0.5,
        "generated_digits": torch.randint(0, 10, (1000, 3), generator=t),  # one per mode
    }


def test_every_metric_has_declared_keys() -> None:
    missing = sorted(set(METRICS.names()) - set(METRIC_KEYS))
    assert not missing, f"registered metrics without their keys in METRIC_KEYS: {missing}"
    stale = sorted(set(METRIC_KEYS) - set(METRICS.names()))
    assert not stale, f"METRIC_KEYS entries of metrics that are not registered: {stale}"
    assert set(metric_inputs()) == set(ROLES)


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_returns_its_finite_numbers(name: str) -> None:
    if name not in METRIC_KEYS:
        pytest.fail(f"metric {name!r} has no entry in METRIC_KEYS")
    metric = METRICS.get(name)
    assert metric.needs and set(metric.needs) <= set(ROLES) and metric.description
    inputs = metric_inputs()
    values = metric({role: inputs[role] for role in metric.needs})
    assert set(values) == METRIC_KEYS[name]
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in values.values()), values
    for role in metric.needs:  # each role it needs is asked for by name
        with pytest.raises(UsageError, match=f"needs .*{role}"):
            metric({r: inputs[r] for r in metric.needs if r != role})
