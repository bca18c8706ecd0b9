"""``kdegen datasets``, ``objectives`` and ``train``."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdegen import runs
from kdegen.cli.base import Parser, command, print_table
from kdegen.cli.flags import add_flags, build, flags_given, given
from kdegen.config import Config, RunConfig, TrainConfig, from_dict, option, read_json, replace
from kdegen.errors import UsageError
from kdegen.methods import METHODS
from kdegen.objectives import OBJECTIVES

# ----- kdegen datasets / objectives -------------------------------------------------------


@command("datasets")
def cmd_datasets(argv: list[str]) -> int:
    """List the datasets kdegen knows, with sizes."""
    Parser(prog="kdegen datasets", description=cmd_datasets.__doc__).parse_args(argv)
    from kdegen.data import dataset_infos

    rows = [("name", "train", "test", "shape", "source", "description")]
    for info in dataset_infos():
        shape = "x".join(str(s) for s in info.shape)
        rows.append(
            (
                info.name,
                str(info.train_size),
                str(info.test_size),
                shape,
                info.source,
                info.description,
            )
        )
    print_table(rows)
    return 0


@command("objectives")
def cmd_objectives(argv: list[str]) -> int:
    """List the GAN objectives."""
    Parser(prog="kdegen objectives", description=cmd_objectives.__doc__).parse_args(argv)
    print_table([("name", "description")] + [(n, o.description) for n, o in OBJECTIVES.items()])
    return 0


# ----- kdegen train -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TrainSession(Config):
    """How ``kdegen train`` handles the run directory (not part of the run's config)."""

    method: str = option("gan", "method (see `kdegen train --method NAME --help`)")
    out: str | None = option(None, "run directory (none: runs/<method>-<data>)")
    resume: str | None = option(None, "continue this run from its latest checkpoint")
    force: bool = option(False, "overwrite a non-empty --out")
    dry_run: bool = option(False, "print the resolved config and stop")
    config: str | None = option(None, "start from this config.json")
    preset: str | None = option(None, "a named bundle of option values of the method")
    progress: bool = option(True, "show the progress bar")


def _train_parser(method: str) -> Parser:
    cls = METHODS.get(method)
    p = Parser(prog="kdegen train", description="Train a model into a run directory.")
    add_flags(p, TrainSession)
    add_flags(p, TrainConfig, title="training")
    presets = f" (presets: {', '.join(cls.presets)})" if cls.presets else ""
    add_flags(p, cls.Config, title=f"{method} options{presets}")
    return p


@command("train")
def cmd_train(argv: list[str]) -> int:
    """Train a model (`kdegen train --help` lists every option)."""
    pre = Parser(add_help=False)
    pre.add_argument("--method", default="gan")
    pre.add_argument("--resume")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    method = known.method
    if known.resume:
        existing = runs.RunDir(known.resume)
        existing.check_existing()
        method = runs.read_run_config(existing).method
    elif known.config:
        method = str(read_json(Path(known.config)).get("method", method))
    args = _train_parser(method).parse_args(argv)
    session = build(TrainSession, args)
    if session.resume:
        return _resume(args, session, method)
    config = _new_config(args, session, method)
    if session.dry_run:
        from kdegen.data import load

        config = runs.resolve(config, runs.spec_of(load(config.train.data)))
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    out = session.out or f"runs/{method}-{Path(config.train.data).name.split(':')[0]}"
    run = runs.start(config, out, force=session.force, progress=session.progress)
    print(f"trained {config.train.steps} steps; run directory: {run.path}")
    return 0


def _new_config(args: argparse.Namespace, session: TrainSession, method: str) -> RunConfig:
    cls = METHODS.get(method)
    options: Any = cls.Config()
    train = TrainConfig()
    if session.config:
        base = RunConfig.from_mapping(read_json(Path(session.config)), cls.Config, session.config)
        options, train = base.options, base.train
    if session.preset:
        if session.preset not in cls.presets:
            raise UsageError(
                f"unknown preset {session.preset!r} for {method}; choose one of: "
                f"{', '.join(cls.presets) or '(none)'}"
            )
        preset = cls.presets[session.preset]
        where = f"preset {session.preset}"
        train_keys = {k: v for k, v in preset.items() if hasattr(train, k)}
        option_keys = {k: v for k, v in preset.items() if k not in train_keys}
        train = from_dict(TrainConfig, train_keys, where, base=train)
        options = from_dict(cls.Config, option_keys, where, base=options)
    train = build(TrainConfig, args, base=train)
    options = build(cls.Config, args, base=options)
    return RunConfig(method, options, train)


def _resume(args: argparse.Namespace, session: TrainSession, method: str) -> int:
    cls = METHODS.get(method)
    changed = flags_given(cls.Config, args)
    changed += [f"--{k}" for k in ("config", "preset", "out", "force") if getattr(session, k)]
    if "method" in given(TrainSession, args) and session.method != method:
        changed.append(f"--method {session.method} (the run's method is {method})")
    if changed:
        raise UsageError(
            f"{changed[0]} cannot be combined with --resume; "
            "only trainer schedule options such as --steps can change"
        )
    overrides = given(TrainConfig, args)
    assert session.resume is not None
    if session.dry_run:
        config = runs.read_run_config(runs.RunDir(session.resume))
        config = config.with_train(replace(config.train, overrides))
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    run = runs.resume(session.resume, progress=session.progress, **overrides)
    print(f"resumed and trained to step {runs.read_run_config(run).train.steps}; run: {run.path}")
    return 0
