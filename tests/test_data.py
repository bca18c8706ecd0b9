"""Tests for kdegen.data: embedded sets, mixtures, mnist1000, user files, errors, downloads."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from kdegen.data import DATASETS, ImageData, dataset_infos, load, save_npz
from kdegen.data.stacked import digit_weights, sample_digits
from kdegen.errors import UsageError

EMBEDDED = ["mnist5k", "digits", "ring8", "grid25", "mnist1000", "digits1000"]


def _keys(images: torch.Tensor) -> list[bytes]:
    return [row.tobytes() for row in images.numpy()]


@pytest.fixture(scope="module")
def mnist5k() -> dict[str, ImageData]:
    return {split: load("mnist5k", split=split) for split in ("train", "test")}


# ------------------------------------------------------------------ embedded image sets


def test_mnist5k_split(mnist5k: dict[str, ImageData]) -> None:
    for split, size in (("train", 4000), ("test", 1000)):
        d = mnist5k[split]
        assert d.images.shape == (size, 1, 28, 28) and d.images.dtype == torch.float32
        assert d.shape == (1, 28, 28) and len(d) == size and d.kind == "image"
        assert d.images.min() == -1 and d.images.max() == 1
        assert d.labels is not None and d.labels.dtype == torch.long
        assert torch.bincount(d.labels).tolist() == [size // 10] * 10
        assert d.num_classes == 10 and d.name == "mnist5k" and d.centres is None
    train, test = (set(_keys(mnist5k[s].images)) for s in ("train", "test"))
    assert not train & test
    assert len(train | test) == 5000


def test_mnist5k_deterministic(mnist5k: dict[str, ImageData]) -> None:
    again = load("mnist5k", split="test")
    assert torch.equal(again.images, mnist5k["test"].images)
    assert again.labels is not None and mnist5k["test"].labels is not None
    assert torch.equal(again.labels, mnist5k["test"].labels)
    again.images.zero_()  # a caller mutating its copy must not change the cache
    assert torch.equal(load("mnist5k", split="test").images, mnist5k["test"].images)


def test_digits() -> None:
    train, test = load("digits"), load("digits", split="test")
    assert train.images.shape == (1438, 1, 8, 8) and test.images.shape == (359, 1, 8, 8)
    for d in (train, test):
        assert d.images.min() == -1 and d.images.max() == 1
    assert train.labels is not None and test.labels is not None
    fraction = torch.bincount(test.labels) / (
        torch.bincount(test.labels) + torch.bincount(train.labels)
    )
    assert torch.all((fraction - 0.2).abs() < 0.01)
    assert torch.equal(load("digits", split="test").images, test.images)


# ------------------------------------------------------------------ 2-D mixtures


@pytest.mark.parametrize("name,modes,std", [("ring8", 8, 0.02), ("grid25", 25, 0.05)])
def test_mixture(name: str, modes: int, std: float) -> None:
    d = load(name)
    assert d.kind == "points" and d.images.shape == (50_000, 2) and d.shape == (2,)
    assert d.centres is not None and d.centres.shape == (modes, 2) and d.std == std
    assert d.num_classes == modes and d.labels is not None
    residual = d.images - d.centres[d.labels]
    assert torch.allclose(residual.std(dim=0), torch.tensor([std, std]), rtol=0.03)
    nearest = torch.cdist(d.images, d.centres).argmin(dim=1)
    assert torch.equal(nearest, d.labels)
    counts = torch.bincount(nearest, minlength=modes).float()
    assert counts.min() > 0.8 * counts.mean()
    test = load(name, split="test")
    assert len(test) == 10_000 and not torch.equal(test.images[:100], d.images[:100])
    assert torch.equal(load(name, split="test").images, test.images)
    assert len(load(f"{name}:n=123")) == 123 == len(load(name, n=123))


def test_mixture_centres() -> None:
    ring, grid = load("ring8", n=10).centres, load("grid25", n=10).centres
    assert ring is not None and grid is not None
    assert torch.allclose(ring.norm(dim=1), torch.full((8,), 2.0))
    assert {tuple(c) for c in grid.tolist()} == {
        (x, y) for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)
    }


# ------------------------------------------------------------------ mnist1000


def _label_digits(labels: torch.Tensor) -> torch.Tensor:
    return torch.stack([labels // 100, labels // 10 % 10, labels % 10], dim=1)


STACKED = [("mnist1000", "mnist5k", 28), ("digits1000", "digits", 8)]


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize(("name", "source_name", "side"), STACKED)
def test_stacked_parts_match_labels(split: str, name: str, source_name: str, side: int) -> None:
    source = load(source_name, split=split)
    assert source.labels is not None
    # digits has a few duplicate images: a part must be one of its class's images
    lookup: dict[bytes, set[int]] = {}
    for key, label in zip(_keys(source.images), source.labels.tolist(), strict=True):
        lookup.setdefault(key, set()).add(label)
    d = load(name, split=split, n=300)
    assert d.images.shape == (300, 1, side, 3 * side) and d.num_classes == 1000
    assert d.labels is not None and int(d.labels.max()) < 1000
    for k in range(3):
        parts = _keys(d.images[..., side * k : side * (k + 1)].contiguous())
        digits = _label_digits(d.labels)[:, k].tolist()
        for part, digit in zip(parts, digits, strict=True):
            assert digit in lookup[part]  # KeyError: not an image of this split


def test_mnist1000_default_sizes_and_determinism() -> None:
    d = load("mnist1000", split="test")
    assert len(d) == 2000 and d.shape == (1, 28, 84)
    again = load("mnist1000", split="test")
    assert again.labels is not None and d.labels is not None
    assert torch.equal(again.labels, d.labels) and torch.equal(again.images, d.images)
    other = load("mnist1000", split="test", seed=1)
    assert other.labels is not None and not torch.equal(other.labels, d.labels)


def test_mnist1000_digits_restriction() -> None:
    d = load("mnist1000:digits=6789", n=500)
    assert d.labels is not None
    assert set(_label_digits(d.labels).unique().tolist()) == {6, 7, 8, 9}


def test_mnist1000_bias_frequencies() -> None:
    d = load("mnist1000:bias=1", n=10_000)
    assert d.labels is not None
    counts = torch.bincount(_label_digits(d.labels).flatten(), minlength=10).numpy()
    expected = digit_weights(tuple(range(10)), bias=True) * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    assert 16 < counts[9] / counts[1] < 25
    many = sample_digits(np.random.default_rng(5), 200_000, tuple(range(10)), bias=True)
    big = np.bincount(many.ravel(), minlength=10)
    assert abs(big[9] / big[1] - 20) < 1.0
    assert abs(big[0] / big[1] - 1) < 0.08


def test_mnist1000_unbiased_is_uniform() -> None:
    d = load("mnist1000", n=5000)
    assert d.labels is not None
    counts = torch.bincount(_label_digits(d.labels).flatten(), minlength=10).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3


def test_spec_string_equals_keywords() -> None:
    a = load("mnist1000:bias=1,digits=6789,n=50,seed=3")
    b = load("mnist1000", bias=True, digits=(6, 7, 8, 9), n=50, seed=3)
    c = load("mnist1000:bias=yes,digits=6+7+8+9", n=50, seed="3")
    for other in (b, c):
        assert torch.equal(a.images, other.images)
        assert a.labels is not None and other.labels is not None
        assert torch.equal(a.labels, other.labels)
    assert a.name == "mnist1000:bias=1,digits=6789,n=50,seed=3"


# ------------------------------------------------------------------ dataset_infos


def test_dataset_infos_match_loaded_data() -> None:
    infos = {info.name: info for info in dataset_infos()}
    assert set(infos) == set(DATASETS.names())
    for name in EMBEDDED:
        info = infos[name]
        assert info.source == "embedded" and info.available and info.description
        for split, size in (("train", info.train_size), ("test", info.test_size)):
            d = load(name, split=split)
            assert (len(d), d.shape, d.num_classes, d.kind) == (
                size,
                info.shape,
                info.num_classes,
                info.kind,
            )
    for name in ("mnist", "fashion-mnist", "cifar10", "svhn", "celeba"):
        assert infos[name].source.startswith("download") and infos[name].train_size > 0


# ------------------------------------------------------------------ user files


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def test_folder_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(3, 5, 7), dtype=np.uint8)
    for i, image in enumerate(pixels):
        _png(tmp_path / f"img{i}.png", image)
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    d = load(str(tmp_path), split="test")
    assert d.images.shape == (3, 1, 5, 7) and d.labels is None and d.kind == "image"
    assert torch.equal(d.images, torch.from_numpy(pixels[:, None] / np.float32(127.5) - 1))


def test_folder_classes_and_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(4, 6, 6, 3), dtype=np.uint8)
    _png(tmp_path / "cats" / "a.png", rgb[0])
    _png(tmp_path / "cats" / "b.png", np.dstack([rgb[1], np.full((6, 6), 7, np.uint8)]))
    _png(tmp_path / "dogs" / "c.png", rgb[2])
    _png(tmp_path / "dogs" / "d.bmp", rgb[3])
    d = load(str(tmp_path))
    assert d.images.shape == (4, 3, 6, 6) and d.num_classes == 2
    assert d.labels is not None and d.labels.tolist() == [0, 0, 1, 1]
    expected = torch.from_numpy(rgb.transpose(0, 3, 1, 2) / np.float32(127.5) - 1)
    assert torch.equal(d.images, expected)


def test_single_images_by_mode(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(tmp_path / "w.png")
    d = load(str(tmp_path / "w.png"))
    assert d.images.shape == (1, 1, 4, 4) and torch.all(d.images == 1)
    Image.new("RGB", (5, 3), (255, 0, 0)).convert("P").save(tmp_path / "p.gif")
    Image.new("1", (5, 3), 1).save(tmp_path / "b.bmp")
    Image.new("LA", (5, 3), (0, 9)).save(tmp_path / "la.png")
    shapes = {name: load(str(tmp_path / name)).shape for name in ("p.gif", "b.bmp", "la.png")}
    assert shapes == {"p.gif": (3, 3, 5), "b.bmp": (1, 3, 5), "la.png": (1, 3, 5)}
    assert torch.equal(
        load(str(tmp_path / "p.gif")).images[0, :, 0, 0], torch.tensor([1, -1, -1.0])
    )


def test_npz_npy_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    nhw = rng.integers(0, 256, size=(5, 4, 6), dtype=np.uint8)
    np.save(tmp_path / "a.npy", nhw)
    d = load(str(tmp_path / "a.npy"), split="test")
    assert torch.equal(d.images, torch.from_numpy(nhw[:, None] / np.float32(127.5) - 1))
    nhwc = rng.integers(0, 256, size=(5, 4, 6, 4), dtype=np.uint8)
    labels = np.array([0, 2, 1, 2, 0])
    np.savez(tmp_path / "b.npz", images=nhwc, labels=labels)
    d = load(str(tmp_path / "b.npz"))
    assert d.images.shape == (5, 3, 4, 6) and d.num_classes == 3
    assert torch.equal(d.images[:, 1], torch.from_numpy(nhwc[..., 1] / np.float32(127.5) - 1))
    assert d.labels is not None and d.labels.tolist() == labels.tolist()
    images = torch.rand(6, 3, 5, 5) * 2 - 1
    save_npz(tmp_path / "c.npz", images, torch.arange(6))
    d = load(str(tmp_path / "c.npz"))
    assert torch.equal(d.images, images) and d.labels is not None
    assert d.labels.tolist() == list(range(6))
    points = torch.randn(10, 2) * 5
    save_npz(tmp_path / "p.npz", points)
    d = load(str(tmp_path / "p.npz"))
    assert d.kind == "points" and d.shape == (2,) and torch.equal(d.images, points)


def test_nonnegative_float_images_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "pos.npy", np.full((2, 1, 3, 3), 0.5, dtype=np.float32))
    d = load(str(tmp_path / "pos.npy"))
    assert torch.all(d.images == 0.5)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[0, 1]" in err
    np.save(tmp_path / "neg.npy", np.full((2, 3, 3), -0.5, dtype=np.float32))
    load(str(tmp_path / "neg.npy"))
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ errors


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _gray(path: Path, size: tuple[int, int] = (4, 4)) -> str:
    _png(path, np.zeros(size, dtype=np.uint8))
    return str(path)


def _npy(path: Path, array: np.ndarray) -> str:
    np.save(path, array)
    return str(path)


def _truncated(path: Path) -> str:
    np.save(path, np.zeros((10, 8, 8), np.uint8))
    return _write(path, path.read_bytes()[:200])


def _sizes_differ(t: Path) -> str:
    _gray(t / "a.png")
    _gray(t / "b.png", (5, 4))
    return str(t)


def _gray_and_colour(t: Path) -> str:
    _gray(t / "a.png")
    _png(t / "b.png", np.zeros((4, 4, 3), np.uint8))
    return str(t)


def _not_an_image(t: Path) -> str:
    _gray(t / "a.png")
    _write(t / "notes.txt", b"hi")
    return str(t)


def _files_and_subfolders(t: Path) -> str:
    _gray(t / "a.png")
    _gray(t / "sub" / "b.png")
    return str(t)


def _empty_class(t: Path) -> str:
    _gray(t / "a" / "x.png")
    (t / "b").mkdir()
    return str(t)


def _npz(t: Path, **arrays: np.ndarray) -> str:
    np.savez(t / "x.npz", **arrays)  # type: ignore[arg-type]
    return str(t / "x.npz")


# Each maker writes a broken input under tmp_path and returns what to pass to load().
FILE_ERRORS: dict[str, tuple[Callable[[Path], str], str]] = {
    "missing path": (lambda t: str(t / "nope"), "no such file or folder"),
    "empty folder": (str, "holds no images"),
    "sizes differ": (_sizes_differ, "a.png is 4x4, b.png is 4x5"),
    "gray and colour": (_gray_and_colour, "convert them all to one mode"),
    "not an image": (_not_an_image, "notes.txt is not an image"),
    "corrupt image": (lambda t: _write(t / "x.png", b"\x89PNG garbage"), "x.png"),
    "files and subfolders": (_files_and_subfolders, "subfolder sub"),
    "empty class folder": (_empty_class, "class folder"),
    "npz without images": (lambda t: _npz(t, x=np.zeros(3), y=np.ones(2)), "it has: x, y"),
    "float out of range": (
        lambda t: _npy(t / "r.npy", np.full((2, 3, 3), 2.0)),
        "float images must lie in [-1, 1]",
    ),
    "nan": (lambda t: _npy(t / "n.npy", np.full((2, 3, 3), np.nan)), "clean the data"),
    "inf points": (lambda t: _npy(t / "i.npy", np.array([[0.0, np.inf]])), "clean the data"),
    "corrupt npy": (lambda t: _write(t / "c.npy", b"not numpy"), "c.npy is not a valid .npy"),
    "truncated npy": (lambda t: _truncated(t / "t.npy"), "cannot read"),
    "corrupt npz": (lambda t: _write(t / "c.npz", b"PK not a zip"), "c.npz is not a valid"),
    "broken zip": (lambda t: _write(t / "z.npz", b"PK\x03\x04junk"), "cannot read"),
    "pickled npy": (lambda t: _npy(t / "o.npy", np.array([{}, 1], dtype=object)), "pickled"),
    "bad layout": (lambda t: _npy(t / "l.npy", np.zeros((2, 5, 5, 5))), "shape (2, 5, 5, 5)"),
    "labels length": (
        lambda t: _npz(t, images=np.zeros((3, 4, 4), np.uint8), labels=np.arange(2)),
        "2 labels for 3 samples",
    ),
    "float labels": (
        lambda t: _npz(t, images=np.zeros((3, 4, 4), np.uint8), labels=np.zeros(3)),
        "labels must be a 1-D integer array",
    ),
    "int64 images": (lambda t: _npy(t / "z.npy", np.zeros((2, 3, 3), np.int64)), "uint8"),
    "unsupported file": (lambda t: _write(t / "data.csv", b"1,2"), "unsupported file type"),
}

SPEC_ERRORS: dict[str, tuple[str, dict[str, object], str]] = {
    "unknown dataset": ("mnsit5k", {}, "did you mean"),
    "bad split": ("mnist5k", {"split": "valid"}, "train, test"),
    "unknown option": ("mnist1000:colour=1", {}, "mnist1000 accepts: bias"),
    "bad bool": ("mnist1000:bias=maybe", {}, "mnist1000 accepts"),
    "bad digits": ("mnist1000:digits=6a", {}, "digits 0-9"),
    "bad digits keyword": ("mnist1000", {"digits": (6, 12)}, "digits 0-9"),
    "bad int": ("ring8", {"n": "many"}, "ring8 accepts: n"),
    "n below one": ("grid25:n=-4", {}, "at least 1"),
    "options on optionless": ("cifar10:bias=1", {}, "takes no options"),
    "keyword on optionless": ("svhn", {"n": 5}, "takes no options"),
    "unknown mnist5k option": ("mnist5k:bias=1", {}, "mnist5k accepts: digits"),
    "malformed option": ("mnist1000:bias", {}, "key=value"),
    "option twice": ("ring8:n=3", {"n": 4}, "give it once"),
}


def _assert_one_line_usage_error(call: Callable[[], object], fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and fragment in message, message


@pytest.mark.parametrize("case", list(FILE_ERRORS))
def test_file_errors(case: str, tmp_path: Path) -> None:
    make, fragment = FILE_ERRORS[case]
    spec = make(tmp_path)
    _assert_one_line_usage_error(lambda: load(spec), fragment)


@pytest.mark.parametrize("case", list(SPEC_ERRORS))
def test_spec_errors(case: str) -> None:
    spec, kwargs, fragment = SPEC_ERRORS[case]
    _assert_one_line_usage_error(lambda: load(spec, **kwargs), fragment)  # type: ignore[arg-type]


def test_other_errors(tmp_path: Path) -> None:
    image = _gray(tmp_path / "a.png")
    _assert_one_line_usage_error(lambda: load(image, n=3), "take no options")
    nan = torch.full((2, 1, 2, 2), float("nan"))
    _assert_one_line_usage_error(lambda: ImageData(nan, None, "mine"), "mine contains NaN")
    labels = torch.zeros(3, dtype=torch.long)
    _assert_one_line_usage_error(
        lambda: ImageData(torch.zeros(2, 2), labels, "pts", kind="points"), "3 labels for 2"
    )
    _assert_one_line_usage_error(
        lambda: save_npz(tmp_path / "o.npz", torch.full((1, 1, 2, 2), 3.0)), "[-1, 1]"
    )


# ------------------------------------------------------------------ torchvision datasets


def test_vision_without_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(UsageError) as info:
        load("cifar10")
    assert str(info.value) == "dataset cifar10 needs torchvision: pip install 'kdegen[vision]'"
    infos = {i.name: i for i in dataset_infos()}
    assert infos["svhn"].source == "download (needs kdegen[vision])"
    assert not infos["svhn"].available


class _FakeMNIST:
    def __init__(self, root: str, train: bool, download: bool) -> None:
        assert download
        n = 6 if train else 2
        self.data = (torch.arange(n * 784) % 256).to(torch.uint8).reshape(n, 28, 28)
        self.targets = torch.arange(n) % 10


class _FakeCIFAR10:
    def __init__(self, root: str, train: bool, download: bool) -> None:
        self.data = np.full((3, 32, 32, 3), 255, dtype=np.uint8)
        self.targets = [1, 2, 3]


class _FakeSVHN:
    def __init__(self, root: str, split: str, download: bool) -> None:
        assert split in ("train", "test")
        self.data = np.zeros((4, 3, 32, 32), dtype=np.uint8)
        self.labels = np.array([0, 1, 9, 3])


class _FakeCelebA:
    def __init__(self, root: str, split: str, target_type: str, download: bool) -> None:
        self.split = split

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[Image.Image, None]:
        return Image.new("RGB", (178, 218), (255, 0, 0)), None


def test_vision_conversion_with_fake_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("torchvision.datasets")
    for cls in (_FakeMNIST, _FakeCIFAR10, _FakeSVHN, _FakeCelebA):
        setattr(fake, cls.__name__.removeprefix("_Fake"), cls)
    fake.FashionMNIST = _FakeMNIST  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    monkeypatch.setenv("KDEGEN_DATA", str(tmp_path))
    expected = {"mnist": (6, 1, 28, 28), "fashion-mnist": (6, 1, 28, 28)}
    expected |= {"cifar10": (3, 3, 32, 32), "svhn": (4, 3, 32, 32), "celeba": (2, 3, 64, 64)}
    for name, shape in expected.items():
        d = load(name)
        assert d.images.shape == shape and d.images.dtype == torch.float32
        assert d.images.min() >= -1 and d.images.max() <= 1
    assert torch.all(load("cifar10").images == 1)
    celeba = load("celeba", split="test")
    assert celeba.labels is None and torch.all(celeba.images[:, 0] == 1)
    assert (tmp_path / "celeba" / "kdegen-test-64x64.npy").exists()
    assert torch.equal(load("celeba", split="test").images, celeba.images)


def test_class_restriction_of_the_labelled_sets() -> None:
    ones = load("mnist5k:digits=1")
    assert len(ones) == 400 and set(ones.labels.tolist()) == {1}
    assert torch.equal(ones.images, load("mnist5k").images[load("mnist5k").labels == 1])
    some = load("digits", split="test", digits=(3, 4))
    assert set(some.labels.tolist()) == {3, 4} and some.num_classes == 10
