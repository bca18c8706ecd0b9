"""Evaluation: embeddings (batch-size invariance, the cached classifier), ``kdegen evaluate``
and ``kdegen report`` end to end, and every bad input: one line, exit code 2, no traceback,
nothing on disk changed."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdegen.cli import main
from kdegen.data import load, save_npz
from kdegen.errors import UsageError
from kdegen.evaluation.embed import (
    ClassifierConfig,
    ClassifierPlan,
    EmbedSettings,
    Reference,
    classifier,
    forget_loaded,
    make_embedding,
    plan_classifier,
)
from kdegen.evaluation.embed.classifier import ClassifierEmbedding, cache_path, get_classifier
from kdegen.evaluation.evaluate import EvalConfig, evaluate
from kdegen.evaluation.roles import unfilled_roles
from kdegen.nets import classifier as cnn

CPU = torch.device("cpu")
QUIET = EmbedSettings(progress=False)


@pytest.fixture(scope="module")
def digits() -> Reference:
    return Reference("digits", load("digits", "test"), load("digits", "train"))


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def fails_cleanly(argv: list[str], capsys: pytest.CaptureFixture[str], root: Path) -> str:
    """Run the CLI and check the bad-input contract; returns the error line."""
    before = snapshot(root)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdegen: error: "), err
    assert "Traceback" not in err
    assert snapshot(root) == before
    return lines[0]


# ----- embeddings ------------------------------------------------------------------------


def test_classifier_learns_digits_and_is_cached(
    digits: Reference, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_classifier(digits)
    first = get_classifier(plan, ClassifierConfig(), CPU, progress=False)
    assert first.accuracy >= 0.9 and first.accuracy_split == "test"
    assert first.path.parent == cache / "classifiers" and first.path.is_file()
    forget_loaded()

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached classifier was trained again")

    monkeypatch.setattr(cnn, "train", no_training)
    again = get_classifier(plan, ClassifierConfig(), CPU, progress=False)
    assert again.seconds == 0 and again.accuracy == first.accuracy
    x = digits.test.images[:50]
    assert torch.equal(again.net(x), first.net(x))


def test_corrupt_cache_file_is_trained_again(
    digits: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ClassifierConfig(width=4, hidden=8, epochs=1, min_steps=20)
    plan = plan_classifier(digits)
    path = cache_path(plan, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a checkpoint")
    trained = get_classifier(plan, config, CPU, progress=False)
    err = capsys.readouterr().err
    assert "unreadable" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert trained.seconds > 0
    forget_loaded()
    assert get_classifier(plan, config, CPU, progress=False).seconds == 0  # rewritten, loads


def test_cache_key_follows_data_and_settings(digits: Reference) -> None:
    plan = plan_classifier(digits)
    base = cache_path(plan, ClassifierConfig())
    assert cache_path(plan, ClassifierConfig(seed=1)) != base
    other = ClassifierPlan("digits", load("digits", "test"), None)
    assert cache_path(other, ClassifierConfig()) != base


@pytest.mark.parametrize(
    ("name", "features"),
    [("classifier", "logits"), ("classifier", "prelogits"), ("classifier", "hypercolumns"),
     ("pixels", "logits"), ("pca", "logits")],
)  # fmt: skip
def test_embedding_does_not_depend_on_batch_size(
    digits: Reference, name: str, features: str
) -> None:
    embedding = make_embedding(name, digits, EmbedSettings(features, progress=False))
    x = digits.test.images
    big, small = embedding.embed(x, 500), embedding.embed(x, 7)
    assert big.features.shape[0] == len(x)
    torch.testing.assert_close(small.features, big.features, atol=1e-5, rtol=1e-5)
    one = embedding.embed(x[3:4], 1).features  # alone, it embeds the same
    torch.testing.assert_close(one, big.features[3:4], atol=1e-5, rtol=1e-5)


def test_classifier_features_and_probabilities(digits: Reference) -> None:
    dims = {}
    for features in ("logits", "prelogits", "hypercolumns"):
        out = make_embedding("classifier", digits, EmbedSettings(features, progress=False)).embed(
            digits.test.images
        )
        dims[features] = out.features.shape[1]
        assert out.probs is not None and out.digits is None
        torch.testing.assert_close(out.probs.sum(1), torch.ones(len(out.probs), dtype=torch.double))
    assert dims == {"logits": 10, "prelogits": 128, "hypercolumns": 4 * 11 * 16}


def test_pca_keeps_95_percent_of_the_variance(digits: Reference) -> None:
    from sklearn.decomposition import PCA

    embedding = make_embedding("pca", digits, QUIET)
    x = digits.train.images.flatten(1).double().numpy()
    reference = PCA(n_components=0.95, svd_solver="full").fit(x)
    out = embedding.embed(digits.test.images).features
    assert out.shape[1] == reference.n_components_
    expected = reference.transform(digits.test.images.flatten(1).double().numpy())
    # components are defined up to sign
    np.testing.assert_allclose(np.abs(out.numpy()), np.abs(expected), atol=1e-3)


def test_tiled_classifier_reads_three_digits(digits: Reference) -> None:
    """The mnist1000 scheme on 8x24 images of three digits: products of per-digit softmax."""
    trained = get_classifier(plan_classifier(digits), ClassifierConfig(), CPU, progress=False)
    plan = ClassifierPlan("digits", digits.train, digits.test, tiles=3)
    embedding = ClassifierEmbedding(trained, plan, "logits", CPU)
    x, y = digits.test.images[:90], digits.test.labels[:90]
    triples = torch.cat([x[:30], x[30:60], x[60:]], dim=3)  # (30, 1, 8, 24)
    numbers = y[:30] * 100 + y[30:60] * 10 + y[60:]
    out = embedding.embed(triples, 8)
    assert out.features.shape == (30, 30) and out.probs is not None and out.digits is not None
    assert out.probs.shape == (30, 1000) and out.digits.shape == (30, 3, 10)
    best = out.digits.argmax(2)
    assert torch.equal(out.probs.argmax(1), best[:, 0] * 100 + best[:, 1] * 10 + best[:, 2])
    assert (out.probs.argmax(1) == numbers).float().mean() >= 0.7


def test_every_metric_role_has_a_source() -> None:
    assert unfilled_roles() == []


# ----- kdegen evaluate / report ----------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    argv = ["train", "--data", "digits", "--steps", "4", "--width", "8", "--out", str(out),
            "--log-every", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_evaluate_and_report_a_run(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run), "--reference", "digits", "--n", "200",
                 "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert re.search(r"^ddm\s+\d", out, flags=re.M) and "wrote" in out
    data = json.loads((run / "eval.json").read_text())
    assert data["format"] == "kdegen-eval-1" and data["reference"] == "digits"
    assert data["sizes"] == {"generated": 200, "test": 359, "train": 1438}
    assert data["generated"]["kind"] == "run" and data["generated"]["step"] == 4
    assert data["embedding"]["name"] == "classifier" and data["embedding"]["dim"] == 10
    assert data["embedding"]["accuracy"] >= 0.9
    ddm = data["metrics"]["ddm"]
    assert ddm["value"] == ddm["numbers"]["nats"] and ddm["stderr"] > 0
    assert data["metrics"]["fid"]["stderr"] is None
    for name in ("ddm_relative", "inception_score", "mode_score", "kid", "parzen", "birthday"):
        assert name in data["metrics"]
    assert set(data["skipped"]) == {"mode_count", "digit_modes"}
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text()
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert len(pictures) == 2 and all((run / p).is_file() for p in pictures)
    assert "report/losses.png" in pictures and "| ddm |" in report


def _png_folder(root: Path, images: torch.Tensor) -> Path:
    root.mkdir()
    for i, img in enumerate(((images[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()):
        Image.fromarray(img).save(root / f"{i:03d}.png")
    return root


def test_evaluate_files(tmp_path: Path, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real training images score far better than a 4-step GAN; .npz and folders both work."""
    real = save_npz(tmp_path / "real.npz", load("digits", "train").images[:300])
    folder = _png_folder(tmp_path / "pngs", load("digits", "train").images[:300])
    scores = {}
    for source in (str(real), str(folder), str(run)):
        out = tmp_path / "e.json"
        assert main(["evaluate", source, "--reference", "digits", "--metrics", "ddm,fid",
                     "--out", str(out), "--n", "300", "--no-progress"]) == 0  # fmt: skip
        data = json.loads(out.read_text())
        assert list(data["metrics"]) == ["ddm", "fid"] and data["sizes"]["generated"] == 300
        scores[source] = data["metrics"]["ddm"]["value"]
    # PNGs round 8-bit pixels: the same images, embedded the same up to that rounding
    assert scores[str(real)] == pytest.approx(scores[str(folder)], rel=0.05)
    assert scores[str(real)] < scores[str(run)] / 2


def test_file_reference_and_embeddings(tmp_path: Path) -> None:
    test = load("digits", "test")
    ref = save_npz(tmp_path / "ref.npz", test.images, test.labels)
    gen = save_npz(tmp_path / "gen.npz", load("digits", "train").images[:100])
    small = ClassifierConfig(width=8, epochs=1, min_steps=100)  # trained on the file: keep it short
    for embedding in ("pixels", "pca", "classifier"):
        cfg = EvalConfig(
            metrics="ddm,inception_score", embedding=embedding, progress=False, classifier=small
        )
        result = evaluate(str(gen), str(ref), cfg)  # classifier: trained on the labelled file
        assert result.metrics["ddm"].value > 0 and "train" not in result.sizes
    cfg = EvalConfig(metrics="all", progress=False, classifier=small)
    result = evaluate(str(gen), str(ref), cfg)
    assert "ddm_relative" in result.skipped and "--train-data" in result.skipped["ddm_relative"]
    cfg = EvalConfig(metrics="ddm_relative", train_data="digits", progress=False)
    assert evaluate(str(gen), str(ref), cfg).sizes["train"] == 1438


def test_point_sets_count_modes(tmp_path: Path) -> None:
    ring = load("ring8:n=400", "test").images
    gen = save_npz(tmp_path / "ring.npz", ring)
    result = evaluate(str(gen), "ring8:n=400", EvalConfig(metrics="all", progress=False))
    assert result.embedding["name"] == "pixels"
    assert result.metrics["mode_count"].numbers["modes_hit"] == 8
    assert "inception_score" in result.skipped and "points" in result.skipped["inception_score"]


# ----- bad inputs ------------------------------------------------------------------------


def _npz(root: Path, name: str, images: np.ndarray) -> str:
    np.savez(root / name, images=images)
    return str(root / name)


def _big_folder(root: Path) -> str:
    return str(_png_folder(root / "big", torch.zeros(5, 1, 16, 16)))


BAD = [
    (lambda r, g: [g, "--reference", "digits", "--metrics", "ddmm"], "did you mean ddm"),
    (lambda r, g: [g, "--reference", "digits", "--metrics", ","], "empty"),
    (lambda r, g: [g, "--reference", "digits", "--embedding", "clasifier"], "unknown embedding"),
    (lambda r, g: [g, "--reference", "digits", "--features", "pool"], "features"),
    (lambda r, g: [g, "--reference", "digits", "--embedding", "pca", "--features", "prelogits"],
     "--embedding classifier"),
    (lambda r, g: [_big_folder(r), "--reference", "digits"], "shape 1x16x16"),
    (lambda r, g: [_npz(r, "p3.npz", np.zeros((50, 3), np.float32)), "--reference",
                   _npz(r, "p2.npz", np.ones((50, 2), np.float32))], "dimension"),
    (lambda r, g: [_npz(r, "nan.npz", np.full((9, 1, 8, 8), np.nan, np.float32)),
                   "--reference", "digits"], "NaN"),
    (lambda r, g: [_npz(r, "one.npz", np.zeros((1, 1, 8, 8), np.uint8)), "--reference",
                   "digits", "--metrics", "mmd", "--embedding", "pixels"], "needs at least 4"),
    (lambda r, g: [g, "--reference", "digits", "--metrics", "mode_count"], "mixture"),
    (lambda r, g: [g, "--reference", "digits", "--n", "0"], "--n"),
    (lambda r, g: [g, "--reference", "mnist6k"], "unknown dataset"),
    (lambda r, g: [str(r / "nowhere"), "--reference", "digits"], "no such"),
    (lambda r, g: [g, "--reference", "digits", "--train-data", "ring8"], "shape"),
    (lambda r, g: [g, "--reference", _npz(r, "nolabels.npz", np.zeros((9, 1, 8, 8), np.uint8)),
                   "--metrics", "inception_score"], "labels"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "expect"), BAD)
def test_bad_evaluate_inputs(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, expect: str
) -> None:
    gen = _npz(tmp_path, "gen.npz", np.zeros((20, 1, 8, 8), np.uint8))
    argv = ["evaluate", *make(tmp_path, gen), "--out", str(tmp_path / "e.json"), "--no-progress"]
    line = fails_cleanly(argv, capsys, tmp_path)
    assert expect.lower() in line.lower(), line


def test_missing_fidelity_extra_names_the_classifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails as if absent
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    gen = _npz(tmp_path, "gen.npz", np.zeros((20, 1, 8, 8), np.uint8))
    argv = ["evaluate", gen, "--reference", "digits", "--embedding", "inception",
            "--out", str(tmp_path / "e.json")]  # fmt: skip
    line = fails_cleanly(argv, capsys, tmp_path)
    assert "torch-fidelity" in line and "--embedding classifier" in line


def test_nan_features_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kdegen.evaluation.embed import simple

    def nan_features(self: object, x: torch.Tensor) -> classifier.Embedded:
        return classifier.Embedded(torch.full((len(x), 4), float("nan")))

    monkeypatch.setattr(simple.PixelEmbedding, "embed_batch", nan_features)
    gen = _npz(tmp_path, "gen.npz", np.zeros((20, 1, 8, 8), np.uint8))
    argv = ["evaluate", gen, "--reference", "digits", "--embedding", "pixels",
            "--out", str(tmp_path / "e.json")]  # fmt: skip
    assert "NaN" in fails_cleanly(argv, capsys, tmp_path)
    with pytest.raises(UsageError, match="NaN"):
        evaluate(gen, "digits", EvalConfig(metrics="ddm", embedding="pixels", progress=False))


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (lambda r: ["evaluate", _npz(r, "g.npz", np.zeros((5, 1, 8, 8), np.uint8)),
                    "--reference", "digits"], "--out"),
        (lambda r: ["evaluate", str(r), "--reference", "digits", "--out", str(r / "e.txt")],
         ".json"),
        (lambda r: ["report", str(r)], "config.json"),
        (lambda r: ["experiment", "missing-mode"], "did you mean missing-modes"),
    ],
)  # fmt: skip
def test_bad_command_lines(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv, expect: str
) -> None:
    assert expect in fails_cleanly(argv(tmp_path), capsys, tmp_path)


def test_report_refuses_a_damaged_eval_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = (run / "eval.json").read_bytes() if (run / "eval.json").exists() else None
    (run / "eval.json").write_text("{ not json")
    try:
        assert "eval.json" in fails_cleanly(["report", str(run)], capsys, run)
    finally:
        if saved is None:
            (run / "eval.json").unlink()
        else:
            (run / "eval.json").write_bytes(saved)


@pytest.mark.slow
def test_classifier_reaches_95_percent_on_mnist5k() -> None:
    ref = Reference("mnist5k", load("mnist5k", "test"), load("mnist5k", "train"))
    trained = get_classifier(plan_classifier(ref), ClassifierConfig(), CPU, progress=False)
    assert trained.accuracy >= 0.95


@pytest.mark.slow
def test_mnist1000_counts_numbers(tmp_path: Path) -> None:
    real = save_npz(tmp_path / "m.npz", load("mnist1000:n=3000", "train").images)
    result = evaluate(str(real), "mnist1000", EvalConfig(metrics="digit_modes,inception_score",
                                                         progress=False))  # fmt: skip
    assert result.embedding["tiles"] == 3
    assert result.metrics["digit_modes"].numbers["distinct"] > 900
    assert result.metrics["inception_score"].value > 100  # capped by the split size (300)
