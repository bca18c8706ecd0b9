"""The command line end to end, and every kind of bad input: one line, exit code 2,
no traceback, nothing on disk changed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdegen.cli import main
from kdegen.data import load

SMALL = ["--latent", "4", "--hidden", "16", "--layers", "2", "--batch-size", "16",
         "--log-every", "2", "--checkpoint-every", "4", "--sample-every", "4",
         "--no-progress"]  # fmt: skip


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def fails_cleanly(argv: list[str], capsys: pytest.CaptureFixture[str], root: Path) -> str:
    """Run the CLI and check the bad-input contract; returns the error line."""
    before = snapshot(root)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdegen: error: "), err
    assert snapshot(root) == before
    return lines[0]


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    assert main(["train", "--data", "ring8:n=500", "--steps", "6", "--out", str(run), *SMALL]) == 0
    return run


def test_train_sample_resume_end_to_end(trained: Path, tmp_path: Path) -> None:
    assert main(["sample", str(trained), "--n", "50", "--out", str(tmp_path / "s.npz")]) == 0
    samples = load(str(tmp_path / "s.npz"))
    assert samples.images.shape == (50, 2)
    assert main(["sample", str(trained), "--n", "50", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 100
    assert main(["train", "--resume", str(trained), "--steps", "10", "--no-progress"]) == 0
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10]
    assert json.loads((trained / "config.json").read_text())["train"]["steps"] == 10


def test_image_run_and_png_grid(tmp_path: Path) -> None:
    run = tmp_path / "img"
    argv = ["train", "--data", "digits", "--steps", "3", "--width", "8", "--out", str(run)]
    assert main([*argv, *SMALL]) == 0
    assert main(["sample", str(run), "--n", "9", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").size == (3 * 10 + 2, 3 * 10 + 2)  # 3x3 grid of 8x8


def test_dry_run_prints_the_resolved_config_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--objective", "wgan-gp", "--data", "ring8", "--out", str(tmp_path / "x")]
    assert main([*argv, "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["options"]["objective"] == "wgan-gp" and config["options"]["n_critic"] == 5
    assert config["options"]["arch"] == "mlp" and config["train"]["data"] == "ring8"
    assert not (tmp_path / "x").exists()


def test_preset_sets_the_appendix_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "reversal-appendix", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["options"]["latent"] == 200 and config["options"]["optimizer"] == "rmsprop"
    assert config["train"]["batch_size"] == 100 and config["options"]["lr_d"] == 3e-4


def test_listing_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist5k", "digits", "ring8", "grid25", "mnist1000", "cifar10", "celeba"):
        assert name in out
    assert "4000" in out and "1000" in out
    assert main(["objectives"]) == 0
    assert "fgan-hellinger" in capsys.readouterr().out


def _bad_folder(root: Path, kind: str) -> Path:
    folder = root / kind
    folder.mkdir()
    if kind == "mixed":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "b.png")
    elif kind == "text":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
        (folder / "notes.txt").write_text("hello")
    return folder


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda r: str(r / "missing.npz"), "no such file"),
        (lambda r: str(_bad_folder(r, "empty")), "empty"),
        (lambda r: str(_bad_folder(r, "mixed")), "size"),
        (lambda r: str(_bad_folder(r, "text")), "not an image"),
        (lambda r: _npz(r, "noimages.npz", pictures=np.zeros((4, 8, 8), np.uint8)), "images"),
        (lambda r: _npz(r, "nan.npz", images=np.full((4, 1, 8, 8), np.nan, np.float32)), "NaN"),
        (lambda r: _npz(r, "inf.npz", images=np.full((4, 2), np.inf, np.float32)), "infinite"),
        (lambda r: "mnist6k", "unknown dataset"),
        (lambda r: "mnist1000:colour=1", "unknown option"),
    ],
)
def test_bad_data(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, expect: str) -> None:  # type: ignore[no-untyped-def]
    data = make(tmp_path)
    line = fails_cleanly(["train", "--data", data, "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert expect.lower() in line.lower()
    assert not (tmp_path / "o").exists()


def _npz(root: Path, name: str, **arrays: np.ndarray) -> str:
    np.savez(root / name, **arrays)
    return str(root / name)


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["train", "--objective", "wgan-xx"], "unknown objective"),
        (["train", "--frobnicate", "3"], "unrecognized arguments"),
        (["train", "--steps", "abc"], "invalid int"),
        (["train", "--steps", "0"], "at least 1"),
        (["train", "--method", "vae2"], "unknown method"),
        (["train", "--arch", "resnet"], "unknown architecture"),
        (["train", "--preset", "nope"], "unknown preset"),
        (["train", "--device", "cuda:7"], "not available"),
        (["frobnicate"], "unknown command"),
        (["sample", "nowhere", "--out", "x.png"], "no such run directory"),
    ],
)
def test_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expect: str
) -> None:
    line = fails_cleanly([*argv, "--out", str(tmp_path / "o")] if argv[0] == "train" else argv,
                         capsys, tmp_path)  # fmt: skip
    assert expect in line


def test_non_empty_out_needs_resume_or_force(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", "ring8:n=500", "--steps", "2", "--out", str(trained), *SMALL]
    line = fails_cleanly(argv, capsys, tmp_path)
    assert "--resume" in line and "--force" in line
    assert main([*argv, "--force"]) == 0  # --force replaces the run
    assert json.loads((trained / "config.json").read_text())["train"]["steps"] == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    latest = trained / "checkpoints/latest.pt"
    data = latest.read_bytes()
    latest.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"x" * 999, "empty": b""}[damage]
    )
    line = fails_cleanly(["train", "--resume", str(trained), "--steps", "9"], capsys, tmp_path)
    assert "corrupt or truncated" in line
    line = fails_cleanly(
        ["sample", str(trained), "--out", str(tmp_path / "s.png")], capsys, tmp_path
    )
    assert "corrupt or truncated" in line


def test_checkpoint_with_code_is_refused(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """weights_only loading: a pickle that would run code is rejected, not executed."""
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    (trained / "checkpoints/latest.pt").write_bytes(pickle.dumps(Evil(), protocol=2))
    line = fails_cleanly(
        ["sample", str(trained), "--out", str(tmp_path / "s.png")], capsys, tmp_path
    )
    # it says what the file is (it was reported as "corrupt or truncated")
    assert "holds pickled Python objects" in line and "pwned" not in capsys.readouterr().out


def test_resume_rejects_other_options(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails_cleanly(
        ["train", "--resume", str(trained), "--objective", "hinge"], capsys, tmp_path
    )
    assert "cannot be combined with --resume" in line


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kdegen", "train", "--data", str(tmp_path / "nope")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("command", "target", "says"),
    [
        (["evaluate", "--reference", "ring8", "--metrics", "mmd"], "config.json", "own"),
        (["sample", "--n", "8"], "checkpoints/latest.npz", "inside"),
        (["sample", "--n", "8"], "samples/mine.png", "inside"),
    ],
)
def test_outputs_never_replace_a_runs_own_files(
    trained: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    target: str,
    says: str,
) -> None:
    """`evaluate --out R/config.json` once left a run unloadable: a run's config and the
    files in its checkpoints/ and samples/ are refused as --out (one line, exit 2, nothing
    changed); its eval.json stays the default output of `evaluate`."""
    argv = [command[0], str(trained), *command[1:], "--out", str(trained / target)]
    assert says in fails_cleanly(argv, capsys, trained)


def test_a_refused_forced_start_leaves_the_old_run(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --force` with a batch larger than the data used to wipe the old run and then
    refuse: every check now runs before the run directory changes."""
    argv = ["train", *SMALL, "--data", "ring8:n=500", "--steps", "6", "--force"]
    argv += ["--batch-size", "100000000", "--out", str(trained)]  # the last flag counts
    line = fails_cleanly(argv, capsys, trained)
    assert "lower --batch-size" in line


def test_flags_are_never_abbreviations(capsys: pytest.CaptureFixture[str]) -> None:
    """`--m` after `--method gen` is GEN's --m (it was read as --method); --meth is refused."""
    argv = ["train", "--method", "gen", "--m", "500", "--data", "ring8", "--dry-run"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "gen" and printed["options"]["m"] == 500
    assert main(["train", "--meth", "gan", "--data", "ring8", "--dry-run"]) == 2
    assert "unrecognized arguments: --meth" in capsys.readouterr().err


def test_resume_refuses_fewer_steps_and_another_method(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run at step 6 resumed with --steps 3 used to say "trained to step 3" and rewrite
    config.json; --method on resume was ignored."""
    line = fails_cleanly(["train", "--resume", str(trained), "--steps", "3"], capsys, trained)
    assert "at step 6" in line and "at least 6" in line
    line = fails_cleanly(["train", "--resume", str(trained), "--method", "gen"], capsys, trained)
    assert "--method gen" in line and "cannot be combined with --resume" in line


def test_config_json_must_hold_every_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config.json without `train` silently trained on mnist5k."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"method": "gan", "options": {}}))
    line = fails_cleanly(["train", "--config", str(config), "--dry-run"], capsys, tmp_path)
    assert "missing train" in line


def test_resume_of_a_file_says_it_is_a_file(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--resume` of a file said "no such run directory"."""
    latest = trained / "checkpoints/latest.pt"
    line = fails_cleanly(["train", "--resume", str(latest)], capsys, trained)
    assert "is a file, not a run directory" in line


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--beta1", "2"], "--beta1 must be < 1"),
        (["--lr-d", "nan"], "--lr-d must be a finite number"),
        (["--lr-g", "inf"], "--lr-g must be a finite number"),
    ],
)
def test_float_options_are_finite_and_in_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str
) -> None:
    """Issue 14, 7: these gave tracebacks, or trained NaN with exit 0, before every float
    option was checked by its config field (finite by default, with its bounds)."""
    argv = ["train", "--data", "ring8", "--out", str(tmp_path / "r"), *flags]
    assert says in fails_cleanly(argv, capsys, tmp_path)
    config = tmp_path / "c.json"
    config.write_text('{"method": "gan", "options": {"lr_g": NaN}, "train": {}}')
    line = fails_cleanly(["train", "--config", str(config), "--dry-run"], capsys, tmp_path)
    assert "options.lr_g: must be a finite number" in line


def test_sample_refuses_a_diverged_run(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14, 8: `sample` of a run whose weights are NaN wrote NaN samples with exit 0."""
    import torch

    latest = trained / "checkpoints/latest.pt"
    state = torch.load(latest, weights_only=True)

    def poison(x: object) -> object:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            return torch.full_like(x, float("nan"))
        if isinstance(x, dict):
            return {k: poison(v) for k, v in x.items()}
        return x

    from kdegen.runs.checkpoint import checkpoint_bytes

    rest = {k: v for k, v in state.items() if k not in ("format", "step", "checksum")}
    latest.write_bytes(checkpoint_bytes({**rest, "method": poison(rest["method"])}, state["step"]))
    out = tmp_path / "s.npz"
    line = fails_cleanly(["sample", str(trained), "--out", str(out)], capsys, tmp_path)
    assert "NaN or infinite samples" in line and not out.exists()


def test_missing_source_and_point_data_for_random_reversal_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing evaluate source was reported as "not a run directory; give --out";
    random-reversal on points named a flag the experiment does not have."""
    line = fails_cleanly(
        ["evaluate", str(tmp_path / "nope"), "--reference", "mnist5k"], capsys, tmp_path
    )
    assert "no such run directory or file" in line
    argv = ["experiment", "random-reversal", "--data", "ring8", "--out", str(tmp_path / "rr")]
    assert "holds points" in fails_cleanly(argv, capsys, tmp_path)
