"""``kdegen sample`` streams: chunks drawn with one generator are written as they come into
an ``.npz`` or a folder of PNGs, and a request the disk cannot hold is refused before any
sample is drawn (issue 14, 9: ``--n 1000000000000`` filled 22 GB of memory)."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from kdegen import runs
from kdegen.cli import main
from kdegen.data import load, save_npz
from test_cli import SMALL, fails_cleanly


@pytest.fixture(scope="module")
def points_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("points") / "run"
    assert main(["train", "--data", "ring8:n=500", "--steps", "2", "--out", str(run), *SMALL]) == 0
    return run


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("images") / "run"
    argv = ["train", "--data", "digits", "--steps", "2", "--width", "8", "--out", str(run)]
    assert main([*argv, *SMALL]) == 0
    return run


def method_class(run: Path) -> type:
    return type(runs.load_run(run, "cpu").method)


def chunked(run: Path, sizes: list[int], seed: int = 0) -> torch.Tensor:
    """The samples of ``run`` drawn with one seeded generator, ``sizes`` at a time."""
    method = runs.load_run(run, "cpu").method
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return torch.cat([method.sample(size, generator=rng) for size in sizes])


@pytest.mark.parametrize(
    ("which", "out", "n", "says"),
    [
        ("points", "s.npz", 10**12, "need 8 TB, "),
        ("images", "pngs/", 10**12, "need 4.1 PB, "),
        ("images", "grid.png", 20_000, "at most 10,000"),
        ("points", "scatter.png", 20_000, "at most 10,000"),
    ],
)
def test_a_request_that_cannot_fit_is_refused_before_sampling(
    points_run: Path,
    image_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    out: str,
    n: int,
    says: str,
) -> None:
    """Nothing is drawn (the method's sampler is never called), nothing is written, and the
    refusal comes at once with the sizes."""
    run = points_run if which == "points" else image_run

    def refuse(*_: object, **__: object) -> torch.Tensor:
        raise AssertionError("sampled before refusing")

    monkeypatch.setattr(method_class(run), "sample", refuse)
    start = time.perf_counter()
    argv = ["sample", str(run), "--n", str(n), "--out", f"{tmp_path}/{out}"]
    line = fails_cleanly(argv, capsys, tmp_path)
    assert time.perf_counter() - start < 1.0
    assert says in line and (" free" in line or "png" in out), line


def test_a_grid_of_too_many_pixels_is_refused(
    image_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """100 digits make a 102x102 grid: over a limit of 0.01 megapixels."""
    monkeypatch.setattr("kdegen.cli.sample.PICTURE_MAX_PIXELS", 10_000)
    argv = ["sample", str(image_run), "--n", "100", "--out", str(tmp_path / "g.png")]
    line = fails_cleanly(argv, capsys, tmp_path)
    assert "102x102 pixels, over 0.01 megapixels" in line and "--out DIR/" in line


def test_npz_is_streamed_in_chunks_and_reads_back_everywhere(
    points_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 samples in chunks of 7: the file holds the chunks of one seeded generator, byte for
    byte what save_npz writes for them, and evaluate reads them."""
    monkeypatch.setattr("kdegen.cli.sample.CHUNK_SAMPLES", 7)
    out = tmp_path / "s.npz"
    argv = ["sample", str(points_run), "--n", "30", "--seed", "3", "--out", str(out)]
    assert main(argv) == 0
    expected = chunked(points_run, [7, 7, 7, 7, 2], seed=3)
    with np.load(out) as f:
        assert f.files == ["images"] and f["images"].dtype == np.float32
        np.testing.assert_array_equal(f["images"], expected.numpy())
    save_npz(tmp_path / "ref.npz", expected)
    with zipfile.ZipFile(out) as streamed, zipfile.ZipFile(tmp_path / "ref.npz") as saved:
        assert streamed.namelist() == saved.namelist() == ["images.npy"]
        assert streamed.read("images.npy") == saved.read("images.npy")
    torch.testing.assert_close(load(str(out)).images, expected, rtol=0, atol=0)
    evaluated = ["evaluate", str(out), "--reference", str(tmp_path / "ref.npz")]
    assert main([*evaluated, "--metrics", "mmd", "--out", str(tmp_path / "e.json")]) == 0


def test_a_kde_prior_and_a_label_stream_too(
    points_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--prior kde and --label draw their chunks from the same generator in sequence."""
    from kdegen import latent
    from kdegen.reversal import latent_dim

    monkeypatch.setattr("kdegen.cli.sample.CHUNK_SAMPLES", 7)
    codes = torch.randn(50, 4, generator=torch.Generator().manual_seed(5))
    np.savez(tmp_path / "codes.npz", codes=codes.numpy())
    out = tmp_path / "kde.npz"
    argv = ["sample", str(points_run), "--prior", "kde", "--codes", str(tmp_path / "codes.npz")]
    assert main([*argv, "--bandwidth", "0.2", "--n", "20", "--out", str(out)]) == 0
    gan: Any = runs.load_run(points_run, "cpu").method
    G = gan.generator()
    kde = latent.kde_of(codes, 0.2, 0.0, latent_dim(G))
    rng = torch.Generator().manual_seed(0)
    expected = torch.cat([latent.sample_prior(G, kde, size, rng) for size in (7, 7, 6)])
    np.testing.assert_array_equal(np.load(out)["images"], expected.numpy())

    cgan = tmp_path / "cgan"
    train = ["train", "--method", "cgan", "--data", "ring8:n=500", "--steps", "2", *SMALL]
    assert main([*train, "--out", str(cgan)]) == 0
    assert main(["sample", str(cgan), "--label", "3", "--n", "20", "--out", str(out)]) == 0
    conditional: Any = runs.load_run(cgan, "cpu").method
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        expected = torch.cat([conditional.sample_class(s, 3, rng) for s in (7, 7, 6)])
    np.testing.assert_array_equal(np.load(out)["images"], expected.numpy())


def test_a_folder_gets_one_png_per_sample(
    image_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out DIR/ writes 000000.png ... in chunks; they read back as the samples (to 8 bits)."""
    monkeypatch.setattr("kdegen.cli.sample.CHUNK_SAMPLES", 4)
    out = tmp_path / "pngs"
    assert main(["sample", str(image_run), "--n", "10", "--out", f"{out}/"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.png" for i in range(10)]
    with Image.open(out / names[0]) as first:
        assert first.size == (8, 8) and first.mode == "L"
    expected = chunked(image_run, [4, 4, 2])
    pixels = ((expected.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1  # PNGs hold 8 bits
    torch.testing.assert_close(load(str(out)).images, pixels, rtol=0, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["pngs"]  # no temporary folder left
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["sample", str(image_run), "--n", "3", "--out", str(empty)]) == 0
    assert len(list(empty.iterdir())) == 3  # an existing empty folder is a folder output


@pytest.mark.parametrize(
    ("which", "out", "says"),
    [
        ("points", "pngs/", "points"),
        ("images", "full/", "not empty"),
        ("images", "no-suffix", "folder ending in /"),
    ],
)
def test_folder_output_refusals(
    points_run: Path,
    image_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    which: str,
    out: str,
    says: str,
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    run = points_run if which == "points" else image_run
    argv = ["sample", str(run), "--n", "5", "--out", f"{tmp_path}/{out}"]
    assert says in fails_cleanly(argv, capsys, tmp_path)


def _disk_fills_on_third_write(monkeypatch: pytest.MonkeyPatch, run: Path) -> None:
    real = zipfile._ZipWriteFile.write  # type: ignore[attr-defined]
    calls = []

    def write(self: object, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 3:  # the .npy header and one chunk went through
            raise OSError(28, "No space left on device")
        return int(real(self, data))

    monkeypatch.setattr(zipfile._ZipWriteFile, "write", write)  # type: ignore[attr-defined]


def _second_chunk_diverges(monkeypatch: pytest.MonkeyPatch, run: Path) -> None:
    cls = method_class(run)
    real = cls.sample
    calls = []

    def sample(self: object, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        calls.append(n)
        x = real(self, n, generator=generator)
        return x if len(calls) == 1 else torch.full_like(x, float("nan"))

    monkeypatch.setattr(cls, "sample", sample)


@pytest.mark.parametrize(
    ("fail", "says"),
    [(_disk_fills_on_third_write, "No space left"), (_second_chunk_diverges, "NaN or infinite")],
)
def test_a_failure_mid_stream_leaves_the_old_file(
    points_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fail: Callable[[pytest.MonkeyPatch, Path], None],
    says: str,
) -> None:
    """A write that fails, or a chunk that is not finite, after the first chunk was written:
    one line, exit 2, the existing s.npz byte-identical and no temporary file left."""
    out = tmp_path / "s.npz"
    assert main(["sample", str(points_run), "--n", "5", "--out", str(out)]) == 0
    monkeypatch.setattr("kdegen.cli.sample.CHUNK_SAMPLES", 7)
    fail(monkeypatch, points_run)
    argv = ["sample", str(points_run), "--n", "30", "--seed", "1", "--out", str(out)]
    assert says in fails_cleanly(argv, capsys, tmp_path)
