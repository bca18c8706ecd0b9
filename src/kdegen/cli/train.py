"""``kdegen datasets``, ``objectives``, ``train`` and ``sample``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from kdegen import runs
from kdegen.cli.base import Parser, command, output_path, print_table
from kdegen.config import RunConfig, TrainConfig, add_flags, given_values, read_json, replace
from kdegen.errors import UsageError
from kdegen.methods import METHODS
from kdegen.objectives import OBJECTIVES
from kdegen.priors import DEFAULT_KDE_BANDWIDTH
from kdegen.reversal import latent_dim

# ----- kdegen datasets / objectives -------------------------------------------------------


@command("datasets")
def cmd_datasets(argv: list[str]) -> int:
    """List the datasets kdegen knows, with sizes."""
    Parser(prog="kdegen datasets", description=cmd_datasets.__doc__).parse_args(argv)
    from kdegen.data import dataset_infos

    rows = [("name", "train", "test", "shape", "source", "description")]
    for info in dataset_infos():
        shape = "x".join(str(s) for s in info.shape)
        rows.append((info.name, str(info.train_size), str(info.test_size), shape,
                     info.source, info.description))  # fmt: skip
    print_table(rows)
    return 0


@command("objectives")
def cmd_objectives(argv: list[str]) -> int:
    """List the GAN objectives."""
    Parser(prog="kdegen objectives", description=cmd_objectives.__doc__).parse_args(argv)
    print_table([("name", "description")] + [(n, o.description) for n, o in OBJECTIVES.items()])
    return 0


# ----- kdegen train -----------------------------------------------------------------------


def _train_parser(method: str) -> Parser:
    cls = METHODS.get(method)
    p = Parser(prog="kdegen train", description="Train a model into a run directory.")
    p.add_argument("--method", default="gan", help=f"one of {', '.join(METHODS.names())}")
    p.add_argument("--out", help="run directory (default runs/<method>-<data>)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its latest checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and stop")
    p.add_argument("--config", metavar="JSON", help="start from this config.json")
    p.add_argument("--preset", help=f"option bundle: {', '.join(cls.presets) or 'none'}")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_flags(p, TrainConfig)
    add_flags(p, cls.Config)
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
    if args.resume:
        return _resume(args, method)
    config = _new_config(args, method)
    if args.dry_run:
        from kdegen.data import load

        config = runs.resolve(config, runs.spec_of(load(config.train.data)))
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    out = args.out or f"runs/{method}-{Path(config.train.data).name.split(':')[0]}"
    run = runs.start(config, out, force=args.force, progress=not args.no_progress)
    print(f"trained {config.train.steps} steps; run directory: {run.path}")
    return 0


def _new_config(args: argparse.Namespace, method: str) -> RunConfig:
    cls = METHODS.get(method)
    options: Any = cls.Config()
    train = TrainConfig()
    if args.config:
        base = RunConfig.from_mapping(read_json(Path(args.config)), cls.Config, args.config)
        options, train = base.options, base.train
    if args.preset:
        if args.preset not in cls.presets:
            raise UsageError(
                f"unknown preset {args.preset!r} for {method}; choose one of: "
                f"{', '.join(cls.presets) or '(none)'}"
            )
        preset = cls.presets[args.preset]
        train = replace(train, {k: v for k, v in preset.items() if hasattr(train, k)})
        options = replace(options, {k: v for k, v in preset.items() if hasattr(options, k)})
    train = replace(train, given_values(TrainConfig, args))
    options = replace(options, given_values(cls.Config, args))
    return RunConfig(method, options, train)


def _resume(args: argparse.Namespace, method: str) -> int:
    cls = METHODS.get(method)
    changed = given_values(cls.Config, args)
    if changed or args.config or args.preset or args.out or args.force:
        given = [*changed, *(k for k in ("config", "preset", "out", "force") if getattr(args, k))]
        raise UsageError(
            f"--{given[0].replace('_', '-')} cannot be combined with --resume; "
            "only trainer schedule options such as --steps can change"
        )
    overrides = given_values(TrainConfig, args)
    if args.dry_run:
        config = runs.read_run_config(runs.RunDir(args.resume))
        config = RunConfig(config.method, config.options, replace(config.train, overrides))
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    run = runs.resume(args.resume, progress=not args.no_progress, **overrides)
    print(f"resumed and trained to step {runs.read_run_config(run).train.steps}; run: {run.path}")
    return 0


# ----- kdegen sample ----------------------------------------------------------------------


@command("sample")
def cmd_sample(argv: list[str]) -> int:
    """Draw samples from a trained run into a PNG (grid or scatter plot) or an .npz."""
    p = Parser(prog="kdegen sample", description=cmd_sample.__doc__)
    p.add_argument("run", help="run directory")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="output file: .png or .npz")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default auto)")
    p.add_argument("--prior", choices=("run", "kde"), default="run",
                   help="the run's own prior, or a KDE over codes (default run)")  # fmt: skip
    p.add_argument("--codes", help="an .npz of codes (from `kdegen reverse`) for --prior kde; "
                   "default: the run's code bank")  # fmt: skip
    p.add_argument("--bandwidth", default=DEFAULT_KDE_BANDWIDTH,
                   help="KDE bandwidth: a number or [factor*]nn, std, scott, silverman or ml "
                   f"(default {DEFAULT_KDE_BANDWIDTH}, as kdegan's)")  # fmt: skip
    p.add_argument("--background", type=float, default=0.0,
                   help="weight of N(0, I) mixed into the KDE (default 0)")  # fmt: skip
    p.add_argument("--label", type=int, default=None,
                   help="class of every sample (conditional runs: cgan, acgan)")  # fmt: skip
    args = p.parse_args(argv)
    out = output_path(args.out, (".png", ".npz"))
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    loaded = runs.load_run(args.run, args.device)
    shape = loaded.method.spec.shape
    if out.suffix == ".png" and len(shape) == 1 and shape[0] != 2:
        raise UsageError(f"samples of dimension {shape[0]} cannot be drawn; use --out x.npz")
    rng = torch.Generator().manual_seed(args.seed)
    if args.label is not None:
        samples = _class_samples(loaded, args.n, args.label, args.prior, rng)
    elif args.prior == "kde":
        from kdegen import latent

        G = loaded.method.generator()
        codes = _codes_for_kde(loaded.method, args.codes)
        kde = latent.kde_of(codes, args.bandwidth, args.background, latent_dim(G))
        samples = latent.sample_prior(G, kde, args.n, rng)
        print(f"KDE over {len(codes)} codes, bandwidth {kde.bandwidth:.4g}")
    else:
        samples = loaded.method.sample(args.n, generator=rng)
    _write_samples(samples, out)
    print(f"wrote {args.n} samples of step {loaded.step} to {out}")
    return 0


def _class_samples(
    loaded: runs.LoadedRun, n: int, label: int, prior: str, rng: torch.Generator
) -> torch.Tensor:
    from kdegen.methods.labelled import SamplesClasses

    if prior != "run":
        raise UsageError("--label draws from the run's own prior; leave out --prior kde")
    if not isinstance(loaded.method, SamplesClasses):
        raise UsageError(f"--label needs a conditional run (cgan, acgan); {loaded.run.path} "
                         f"is a {loaded.config.method} run")  # fmt: skip
    return loaded.method.sample_class(n, label, rng)


def _codes_for_kde(method: Any, path: str | None) -> torch.Tensor:
    if path is not None:
        from kdegen.latent import read_codes

        return read_codes(path)
    codes = method.latent_codes()
    if codes is None:
        raise UsageError(
            "this run keeps no codes; reverse data first (`kdegen reverse RUN --out c.npz`) "
            "and pass --codes c.npz"
        )
    return codes


def _write_samples(samples: torch.Tensor, out: Path) -> None:
    from kdegen.data import save_npz
    from kdegen.images import save_samples

    if out.suffix == ".npz":
        save_npz(out, samples)
    else:
        save_samples(samples, out)
