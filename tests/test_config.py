"""Typed configurations: checks on construction, the JSON round trip, and command-line flags
whose defaults are the Python API's."""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, fields
from typing import Any, Literal

import pytest

from kdegen.cli import main
from kdegen.cli.flags import _shown
from kdegen.config import Config, FieldError, TrainConfig, from_dict, option, to_dict
from kdegen.errors import UsageError
from kdegen.evaluation.evaluate import EvalConfig, evaluate
from kdegen.experiments import Settings
from kdegen.latent import reverse_images
from kdegen.methods import METHODS
from kdegen.methods.kdegan import KDEGANConfig
from kdegen.reversal import ReversalConfig, invert


@dataclass(frozen=True)
class Inner(Config):
    rate: float = option(0.5, "a rate", gt=0, lt=1)
    mode: Literal["a", "b"] = option("a", "a choice")


@dataclass(frozen=True)
class Outer(Config):
    count: int = option(3, "a count", ge=1)
    limit: float | None = option(None, "an optional limit", ge=0)
    sizes: tuple[int, ...] = option((1, 2), "sizes", ge=1)
    inner: Inner = option(Inner(), "nested", prefix="in")


def test_fields_are_checked_on_construction() -> None:
    assert Outer(count=2, limit=1).limit == 1.0 and isinstance(Outer(limit=1).limit, float)
    assert Outer(sizes=[3, 4]).sizes == (3, 4)  # type: ignore[arg-type]
    for kwargs, message in [
        ({"count": 0}, "--count must be at least 1, got 0"),
        ({"count": 1.5}, "--count expects an integer"),
        ({"count": True}, "--count expects an integer"),
        ({"limit": -1.0}, "--limit must be at least 0"),
        ({"limit": math.nan}, "--limit must be a finite number"),
        ({"sizes": (1, 0)}, "--sizes must be at least 1"),
        ({"inner": "x"}, "--inner expects a Inner"),
    ]:
        with pytest.raises(FieldError, match=re.escape(message)):
            Outer(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(FieldError, match=re.escape("--mode must be one of a, b, got 'c'")):
        Inner(mode="c")  # type: ignore[arg-type]
    with pytest.raises(FieldError, match=re.escape("--rate must be < 1")):
        Inner(rate=1.0)


def test_json_round_trip_merges_nested_configs_and_refuses_unknown_keys() -> None:
    cfg = from_dict(Outer, {"count": 5, "inner": {"mode": "b"}}, "c.json")
    assert cfg == Outer(count=5, inner=Inner(mode="b"))
    assert from_dict(Outer, to_dict(cfg), "c.json") == cfg
    on_top = from_dict(Outer, {"inner": {"rate": 0.25}}, "p", base=cfg)
    assert on_top.inner == Inner(rate=0.25, mode="b") and on_top.count == 5
    with pytest.raises(UsageError, match=r"c.json.inner: unknown key\(s\) speed"):
        from_dict(Outer, {"inner": {"speed": 1}}, "c.json")
    with pytest.raises(UsageError, match=r"c.json.inner.rate: must be > 0"):
        from_dict(Outer, {"inner": {"rate": 0}}, "c.json")
    with pytest.raises(UsageError, match=r"c.json.count: expects an integer"):
        from_dict(Outer, {"count": "3"}, "c.json")


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_config_round_trips(name: str) -> None:
    cls = METHODS.get(name).Config
    cfg = cls()
    assert from_dict(cls, to_dict(cfg), name) == cfg


# ---- every command's --help shows the Python API's defaults -----------------------------


def help_defaults(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """``{--flag: shown default}`` of ``kdegen ARGV --help``."""
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit):
        patch.setenv("COLUMNS", "400")  # no wrapping inside a default such as non-saturating
        main([*argv, "--help"])
    entries: dict[str, str] = {}
    flag = None
    for line in capsys.readouterr().out.splitlines():
        start = re.match(r"^  (--[a-z0-9-]+)", line)
        if start:
            flag = start.group(1)
            entries[flag] = line
        elif flag is not None and line.startswith("   "):
            entries[flag] += " " + line.strip()
        else:
            flag = None
    shown = {}
    for flag, text in entries.items():
        found = re.findall(r"\(default: ([^)]*)\)", " ".join(text.split()))
        if found:
            shown[flag] = found[-1]
    return shown


def expected(cfg: Any, prefix: str = "") -> dict[str, str]:
    """The flags of config instance ``cfg`` and their defaults as ``--help`` shows them."""
    out: dict[str, str] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.metadata.get("positional"):
            continue
        if isinstance(value, Config):
            sub = f.metadata.get("prefix")
            sub = f.name if sub is None else sub
            out.update(expected(value, f"{prefix}{sub}-" if sub else prefix))
            continue
        out[f"--{prefix}{f.name.replace('_', '-')}"] = _shown(value)
    return out


def signature_default(fn: Any, name: str) -> Any:
    return inspect.signature(fn).parameters[name].default


def check(shown: dict[str, str], want: dict[str, str]) -> None:
    missing = sorted(set(want) - set(shown))
    assert not missing, f"flags without a shown default: {missing}"
    wrong = {k: (shown[k], v) for k, v in want.items() if shown[k] != v}
    assert not wrong, wrong


def test_reversal_commands_show_the_defaults_of_invert(capsys: pytest.CaptureFixture[str]) -> None:
    api = signature_default(invert, "config")
    assert api == ReversalConfig()
    want = expected(api)
    want["--batch-size"] = str(signature_default(reverse_images, "batch_size"))
    want["--seed"] = str(signature_default(reverse_images, "seed"))
    for command in (["reverse"], ["traverse"], ["explore"], ["analyze", "latent"]):
        check(help_defaults(command, capsys), want)


def test_evaluate_shows_the_defaults_of_evaluate(capsys: pytest.CaptureFixture[str]) -> None:
    api = signature_default(evaluate, "config")
    assert api == EvalConfig()
    check(help_defaults(["evaluate"], capsys), expected(api))


@pytest.mark.parametrize("method", METHODS.names())
def test_train_shows_the_defaults_of_each_method(
    method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    want = {**expected(TrainConfig()), **expected(METHODS.get(method).Config())}
    check(help_defaults(["train", "--method", method], capsys), want)


def test_kdegan_reversal_flags_are_its_reversal_config(capsys: pytest.CaptureFixture[str]) -> None:
    shown = help_defaults(["train", "--method", "kdegan"], capsys)
    reversal = KDEGANConfig().reversal
    assert shown["--rev-steps"] == str(reversal.steps) == "1"
    assert shown["--rev-optimizer"] == reversal.optimizer
    assert {k: v for k, v in expected(reversal).items() if k != "--steps"} == {
        k.replace("--rev-", "--"): v
        for k, v in shown.items()
        if k.startswith("--rev-") and k not in ("--rev-batch", "--rev-restarts", "--rev-steps")
    }


def test_experiment_and_sample_show_their_configs(capsys: pytest.CaptureFixture[str]) -> None:
    want = {k: v for k, v in expected(Settings(out=__import__("pathlib").Path("x"))).items()}
    want["--out"] = "results/NAME"
    check(help_defaults(["experiment"], capsys), want)
    from kdegen.cli.sample import SampleOptions

    shown = help_defaults(["sample"], capsys)
    assert shown["--bandwidth"] == KDEGANConfig().kde_bandwidth  # the KDE kdegan trains with
    assert shown["--n"] == str(next(f.default for f in fields(SampleOptions) if f.name == "n"))


def class_defaults(cls: type, prefix: str = "") -> dict[str, str]:
    """The flags of config class ``cls`` that have defaults, as ``--help`` should show them
    (required and positional fields have none)."""
    import dataclasses

    out: dict[str, str] = {}
    for f in fields(cls):
        if f.metadata.get("positional"):
            continue
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        if isinstance(value, Config):
            sub = f.metadata.get("prefix")
            sub = f.name if sub is None else sub
            out.update(class_defaults(type(value), f"{prefix}{sub}-" if sub else prefix))
            continue
        out[f"--{prefix}{f.name.replace('_', '-')}"] = _shown(value)
    return out


def _command_options() -> dict[str, tuple[list[str], type | None]]:
    """Every command: the argv that asks for its help and the config class it parses."""
    from kdegen.cli import base, evaluate, latent
    from kdegen.cli import modnet as modnet_cli
    from kdegen.cli import sample as sample_cli

    return {
        "classify": (["classify"], base.DataOptions),
        "metrics": (["metrics"], None),
        "evaluate": (["evaluate"], evaluate.EvaluateOptions),
        "report": (["report"], evaluate.ReportOptions),
        "compare": (["compare"], evaluate.CompareOptions),
        "experiment": (["experiment"], None),  # its --out default is results/NAME: above
        "reverse": (["reverse"], latent.ReverseOptions),
        "encode": (["encode"], latent.EncodeOptions),
        "traverse": (["traverse"], latent.TraverseOptions),
        "explore": (["explore"], latent.ExploreOptions),
        "analyze": (["analyze", "latent"], latent.AnalyzeOptions),
        "novelty": (["novelty"], latent.NoveltyOptions),
        "modnet": (["modnet"], modnet_cli.ModNetOptions),
        "datasets": (["datasets"], None),
        "objectives": (["objectives"], None),
        "train": (["train"], None),  # per method: test_train_shows_the_defaults_of_each_method
        "sample": (["sample"], sample_cli.SampleOptions),
    }


def test_every_command_is_listed_with_its_options() -> None:
    from kdegen.cli import COMMANDS

    assert set(_command_options()) == set(COMMANDS), "list a new command in _command_options"


@pytest.mark.parametrize("name", sorted(_command_options()))
def test_every_command_shows_its_config_defaults(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, options = _command_options()[name]
    if options is None:
        with pytest.raises(SystemExit) as stop:
            main([*argv, "--help"])
        assert stop.value.code == 0
        return
    check(help_defaults(argv, capsys), class_defaults(options))
