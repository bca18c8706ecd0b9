"""run_parts: an experiment's independent models saved as they finish, reused, run in processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kdegen.cli import main
from kdegen.experiments import Part, Settings, gen_entropy, run_experiment, run_parts


def _parts(calls: list[str], scale: float = 1.0) -> list[Part]:
    def square(key: str, x: float) -> dict[str, Any]:
        calls.append(key)
        return {"y": scale * x * x}

    return [Part(k, square, (k, x), {"x": x, "scale": scale}) for k, x in (("a", 2.0), ("b", 3.0))]


def test_parts_are_saved_reused_and_redone_when_their_spec_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(tmp_path, progress=False)
    calls: list[str] = []
    assert run_parts(settings, _parts(calls), "t") == {"a": {"y": 4.0}, "b": {"y": 9.0}}
    assert calls == ["a", "b"]
    saved = json.loads((tmp_path / "parts" / "b.json").read_text())
    assert saved == {"spec": {"x": 3.0, "scale": 1.0}, "result": {"y": 9.0}}
    assert not list((tmp_path / "parts").glob(".*"))  # no temporary files left

    calls.clear()
    assert run_parts(settings, _parts(calls), "t") == {"a": {"y": 4.0}, "b": {"y": 9.0}}
    assert calls == [] and "reusing 2 of 2" in capsys.readouterr().err

    (tmp_path / "parts" / "a.json").write_text("{not json")  # a damaged file is redone
    assert run_parts(settings, _parts(calls), "t")["a"] == {"y": 4.0}
    assert calls == ["a"]

    calls.clear()  # another spec (here: scale) redoes every part
    assert run_parts(settings, _parts(calls, 10.0), "t") == {"a": {"y": 40.0}, "b": {"y": 90.0}}
    assert calls == ["a", "b"]


def test_parts_reject_duplicate_keys_and_bad_jobs(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(ValueError, match="duplicate"):
        run_parts(Settings(tmp_path, progress=False), _parts(calls) * 2, "t")
    from kdegen.errors import UsageError

    with pytest.raises(UsageError, match="--jobs"):
        run_parts(Settings(tmp_path, progress=False, jobs=0), _parts(calls), "t")
    assert calls == []


@pytest.fixture
def tiny_gen_entropy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen_entropy, "QUICK", gen_entropy.Size(1, 5, (500,)))
    small = gen_entropy.GENConfig(arch="fc", latent=8, m=500, hidden=64)
    monkeypatch.setitem(gen_entropy.CONFIGS, "gen", small)


@pytest.mark.usefixtures("tiny_gen_entropy")
def test_gen_entropy_in_two_processes_matches_one_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = run_experiment("gen-entropy", Settings(tmp_path / "one", quick=True, progress=False))
    two = run_experiment(
        "gen-entropy", Settings(tmp_path / "two", quick=True, progress=False, jobs=2)
    )
    for a, b in zip(one.rows, two.rows, strict=True):
        assert a["method"] == b["method"] and set(a) == set(b)
        for key in set(a) - {"method"}:
            assert a[key] == pytest.approx(b[key], rel=1e-9, nan_ok=True), key
    names = sorted(p.name for p in (tmp_path / "two" / "parts").iterdir())
    assert names == [f"{m}-{k}.json" for m in ("aae", "gen", "vae") for k in (0,)]

    # a model lost in an interrupted run is the only one trained again
    (tmp_path / "one" / "parts" / "vae-0.json").unlink()
    trained: list[str] = []
    real = gen_entropy.fit_autoencoder

    def counting(method: str, *args: Any, **kwargs: Any) -> Any:
        trained.append(method)
        return real(method, *args, **kwargs)

    monkeypatch.setattr(gen_entropy, "fit_autoencoder", counting)
    again = run_experiment("gen-entropy", Settings(tmp_path / "one", quick=True, progress=False))
    assert trained == ["vae"]
    assert [r["H_500"] for r in again.rows] == [r["H_500"] for r in one.rows]


def test_jobs_below_one_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ge"
    assert main(["experiment", "gen-entropy", "--quick", "--jobs", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--jobs" in err[0]
    assert not out.exists()
