"""Metrics against closed forms and independent references (NumPy, SciPy, scikit-learn).

Every number is checked against a formula written out here (a direct O(n^2) sum, a
closed form, scipy.linalg.sqrtm, sklearn's KernelDensity), never against earlier
output of kdegen; block-size invariance is checked to 1e-9 in float64.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.linalg import sqrtm
from scipy.spatial.distance import cdist, pdist, squareform
from scipy.special import logsumexp
from sklearn.neighbors import KernelDensity

import kdegen.stats.mmd
from kdegen import kernels
from kdegen.errors import UsageError
from kdegen.evaluation import metrics as M

rng = np.random.default_rng(0)
T = rng.normal(size=(41, 4))  # test
G = rng.normal(size=(57, 4)) * 1.2 + 0.3  # generated
R = rng.normal(size=(33, 4))  # train
BLOCKS = [1, 7, 64, 4096]


def close(a: float, b: float, tol: float = 1e-9) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


# --- Distribution Divergence Measure (thesis Eq. 3.4, 3.5) -------------------------------


def direct_nlme(q: np.ndarray, p: np.ndarray, scale: float, euclidean: bool) -> np.ndarray:
    """-log((1/|P|) sum_p exp(-D(q, p))) per query row, by the O(n^2) formula."""
    d = cdist(q, p, "euclidean" if euclidean else "sqeuclidean")
    return -(logsumexp(-scale * d, axis=1) - math.log(len(p)))


@pytest.mark.parametrize("distance", ["sqeuclidean", "euclidean"])
def test_ddm_matches_direct_formula(distance: str) -> None:
    terms = direct_nlme(T, G, 0.7, distance == "euclidean")
    r = M.ddm(T, G, distance=distance, scale=0.7)
    assert r.nats == pytest.approx(terms.mean(), rel=1e-12)
    assert r.bits == pytest.approx(terms.mean() / math.log(2), rel=1e-12)
    assert r.stderr_nats == pytest.approx(terms.std(ddof=1) / math.sqrt(len(T)), rel=1e-10)
    assert (r.n_test, r.n_generated) == (len(T), len(G))


@pytest.mark.parametrize("distance", ["sqeuclidean", "euclidean"])
def test_ddm_relative_matches_eq_3_5(distance: str) -> None:
    euclid = distance == "euclidean"
    d_t = cdist(R, T, distance)
    d_g = cdist(R, G, distance)
    # Eq. 3.5 as printed: mean_r log[(sum_t e^-D / |T|) / (sum_g e^-D / |G|)]
    eq35 = (logsumexp(-2.0 * d_t, axis=1) - math.log(len(T))) - (
        logsumexp(-2.0 * d_g, axis=1) - math.log(len(G))
    )
    r = M.ddm_relative(R, T, G, distance=distance, scale=2.0)
    assert r.nats == pytest.approx(eq35.mean(), rel=1e-12)
    assert r.stderr_nats == pytest.approx(eq35.std(ddof=1) / math.sqrt(len(R)), rel=1e-10)
    assert (r.n_train, r.n_test, r.n_generated) == (len(R), len(T), len(G))
    assert r.nats == pytest.approx(
        direct_nlme(R, G, 2.0, euclid).mean() - direct_nlme(R, T, 2.0, euclid).mean(), rel=1e-12
    )


def test_ddm_relative_sign_convention() -> None:
    train = rng.normal(size=(200, 3))
    test = rng.normal(size=(200, 3))
    copies = train + 1e-3 * rng.normal(size=train.shape)  # memorised training data
    far = rng.normal(size=(200, 3)) + 3.0
    assert M.ddm_relative(train, test, copies).nats < 0
    assert M.ddm_relative(train, test, far).nats > 0


def test_ddm_orders_a_worse_generator_higher() -> None:
    test = rng.normal(size=(300, 5))
    good = rng.normal(size=(300, 5))
    bad = rng.normal(size=(300, 5)) * 0.3 + 1.0
    assert M.ddm(test, good).nats < M.ddm(test, bad).nats


@pytest.mark.parametrize("distance", ["sqeuclidean", "euclidean"])
def test_ddm_block_invariance(distance: str) -> None:
    values = [M.ddm(T, G, distance=distance, block=b).nats for b in BLOCKS]
    assert all(close(v, values[0]) for v in values)
    rel = [M.ddm_relative(R, T, G, distance=distance, block=b).nats for b in BLOCKS]
    assert all(close(v, rel[0]) for v in rel)


def test_ddm_survives_distant_sets() -> None:
    """exp(-D) underflows for every pair; the log-sum-exp keeps the exact value."""
    far = G + 40.0
    terms = direct_nlme(T, far, 5.0, euclidean=False)
    assert M.ddm(T, far, scale=5.0, block=8).nats == pytest.approx(terms.mean(), rel=1e-10)


def test_ddm_accepts_tensors_and_float32() -> None:
    r64 = M.ddm(T, G)
    r32 = M.ddm(torch.tensor(T, dtype=torch.float32), torch.tensor(G, dtype=torch.float32))
    assert r32.nats == pytest.approx(r64.nats, rel=1e-5)


def test_euclidean_logsumexp_kernel_excludes_self() -> None:
    got = kernels.logsumexp_neg_dist(torch.tensor(T), torch.tensor(T), 1.3, exclude_self=True)
    d = cdist(T, T) * -1.3
    np.fill_diagonal(d, -np.inf)
    np.testing.assert_allclose(got.numpy(), logsumexp(d, axis=1), rtol=1e-12)


# --- MMD (re-exported) --------------------------------------------------------------------


def test_mmd_is_reexported_not_copied() -> None:
    assert M.mmd2 is kdegen.stats.mmd.mmd2
    assert M.mmd_test is kdegen.stats.mmd.mmd_test


def test_mmd2_direct_formula_and_block_invariance() -> None:
    h = 1.1
    k = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * h * h))  # noqa: E731
    kxx, kyy, kxy = k(T, T), k(G, G), k(T, G)
    n, m = len(T), len(G)
    direct = (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )
    values = [M.mmd2(torch.tensor(T), torch.tensor(G), bandwidth=h, block=b) for b in BLOCKS]
    assert values[0] == pytest.approx(direct, rel=1e-10)
    assert all(close(v, values[0]) for v in values)


# --- Inception Score and Mode Score -------------------------------------------------------


def test_inception_score_of_even_one_hot_is_k() -> None:
    k = 7
    probs = np.tile(np.eye(k), (20, 1))  # 140 one-hot rows, every class equally often
    assert M.inception_score(probs, splits=1).mean == pytest.approx(k, rel=1e-12)
    r = M.inception_score(probs, splits=4)  # 35 rows per split: still 5 of each class
    assert r.mean == pytest.approx(k, rel=1e-12) and r.std == pytest.approx(0, abs=1e-12)


def test_inception_score_of_constant_prediction_is_one() -> None:
    probs = np.tile([0.2, 0.5, 0.3], (50, 1))
    assert M.inception_score(probs, splits=5).mean == pytest.approx(1.0, abs=1e-12)


def test_inception_score_matches_direct_formula() -> None:
    logits = rng.normal(size=(60, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.array_split(p, 3):
        py = part.mean(0)
        scores.append(np.exp((part * (np.log(part) - np.log(py))).sum(1).mean()))
    r = M.inception_score(p, splits=3)
    assert r.mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert r.std == pytest.approx(np.std(scores), rel=1e-9)


def test_inception_score_parts_are_torch_fidelitys_when_n_is_not_divisible() -> None:
    """torch-fidelity cuts at i * N // splits (issue 14, 18): with N = 23 and 4 splits the
    parts hold 5, 6, 6, 6 rows (tensor_split gave 6, 6, 6, 5)."""
    logits = rng.normal(size=(23, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    bounds = [0, 5, 11, 17, 23]  # i * 23 // 4
    scores = []
    for lo, hi in itertools.pairwise(bounds):
        part = p[lo:hi]
        scores.append(np.exp((part * (np.log(part) - np.log(part.mean(0)))).sum(1).mean()))
    r = M.inception_score(p, splits=4)
    assert r.mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert r.std == pytest.approx(np.std(scores), rel=1e-9)


def test_mode_score_closed_form() -> None:
    p = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.5, 0.0]])
    train = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    star = train.mean(0)  # p*(y) = (1/4, 1/4, 1/2)
    py = p.mean(0)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log(a[nz] / b[nz])).sum())

    expected = np.mean([kl(row, star) for row in p])
    marginal = kl(py, star)
    r = M.mode_score(p, train)
    assert r.expected_kl == pytest.approx(expected, rel=1e-12)
    assert r.marginal_kl == pytest.approx(marginal, rel=1e-12)
    assert r.score == pytest.approx(math.exp(expected - marginal), rel=1e-12)
    # the p* terms cancel: as defined, the Mode Score equals the one-split Inception Score
    assert r.score == pytest.approx(M.inception_score(p, splits=1).mean, rel=1e-12)


def test_probabilities_are_validated() -> None:
    with pytest.raises(UsageError, match="softmax"):
        M.inception_score(rng.normal(size=(20, 4)), splits=2)
    with pytest.raises(UsageError, match="at least 20"):
        M.inception_score(np.full((5, 2), 0.5), splits=10)
    with pytest.raises(UsageError, match="classes"):
        M.mode_score(np.full((5, 2), 0.5), np.full((5, 3), 1 / 3))


# --- FID ----------------------------------------------------------------------------------


def scipy_frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    covmean = sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_exact_closed_forms() -> None:
    # commuting (diagonal) covariances: ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    exact = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(exact, rel=1e-12)
    # general SPD pair against scipy's matrix square root
    s1, s2 = random_spd(6, 1), random_spd(6, 2)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    expected = scipy_frechet(m1, s1, m2, s2)
    assert M.frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-10)
    assert M.frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-10)


def test_fid_on_large_gaussian_samples() -> None:
    d = 4
    s1, s2 = random_spd(d, 3), random_spd(d, 4)
    m1, m2 = np.zeros(d), np.full(d, 0.5)
    g = np.random.default_rng(5)
    x = g.multivariate_normal(m1, s1, size=20_000)
    y = g.multivariate_normal(m2, s2, size=20_000)
    got = M.fid(x, y)
    sample_form = scipy_frechet(x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T))
    assert got == pytest.approx(sample_form, rel=1e-9)  # same moments, same formula
    assert got == pytest.approx(scipy_frechet(m1, s1, m2, s2), rel=0.05)  # population value
    assert M.fid(torch.tensor(x, dtype=torch.float32), y) == pytest.approx(got, rel=1e-5)


def test_frechet_rejects_non_covariances() -> None:
    bad = np.diag([1.0, -2.0])
    with pytest.raises(UsageError, match="covariance"):
        M.frechet_distance(np.zeros(2), bad, np.zeros(2), np.eye(2))
    with pytest.raises(UsageError, match="symmetric"):
        M.frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))


# --- KID ----------------------------------------------------------------------------------


def direct_kid(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b.T / d + coef0) ** degree  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2 * kxy.sum() / m**2)


def test_kid_matches_direct_polynomial_formula() -> None:
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) + 0.2
    r = M.kid(x, y, subsets=1, subset_size=40)  # one subset = all samples, reordered
    assert r.mean == pytest.approx(direct_kid(x, y), rel=1e-10)
    assert r.std == 0.0
    blocks = [M.kid(x, y, subsets=3, subset_size=25, block=b).mean for b in (3, 4096)]
    assert close(blocks[0], blocks[1])


def test_kid_unbiased_and_detects_a_shift() -> None:
    g = np.random.default_rng(7)
    same = [
        M.kid(g.normal(size=(30, 3)), g.normal(size=(30, 3)), subsets=1, subset_size=30).mean
        for _ in range(150)
    ]
    assert abs(np.mean(same)) < 3 * np.std(same) / math.sqrt(len(same))
    shifted = M.kid(g.normal(size=(300, 3)), g.normal(size=(300, 3)) + 1.0, 20, 100)
    assert shifted.mean > 10 * shifted.std / math.sqrt(20) and shifted.mean > 0.1


# --- Parzen windows -----------------------------------------------------------------------


def sklearn_parzen(samples: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
    # one leaf: sklearn's exact sum (its tree pruning misjudges low densities, sklearn #27186)
    kde = KernelDensity(kernel="gaussian", bandwidth=sigma, leaf_size=len(samples))
    return kde.fit(samples).score_samples(points)


def test_parzen_matches_sklearn_kernel_density() -> None:
    sigma = 0.45
    expected = sklearn_parzen(G, T, sigma)
    r = M.parzen_log_likelihood(G, T, sigma=sigma)
    assert r.mean == pytest.approx(expected.mean(), rel=1e-10)
    assert r.stderr == pytest.approx(expected.std(ddof=1) / math.sqrt(len(T)), rel=1e-8)
    assert r.n_evaluated == len(T) and r.sigmas == ()
    values = [M.parzen_log_likelihood(G, T, sigma=sigma, block=b).mean for b in BLOCKS]
    assert all(close(v, values[0]) for v in values)


def test_parzen_chooses_sigma_on_validation_set() -> None:
    grid = [0.1, 0.2, 0.4, 0.8, 1.6]
    val = R
    scores = [sklearn_parzen(G, val, h).mean() for h in grid]
    best = grid[int(np.argmax(scores))]
    r = M.parzen_log_likelihood(G, T, validation=val, sigmas=grid)
    assert r.sigma == best
    np.testing.assert_allclose(r.validation, scores, rtol=1e-10)
    assert r.mean == pytest.approx(sklearn_parzen(G, T, best).mean(), rel=1e-10)


def test_parzen_splits_validation_off_test_deterministically() -> None:
    r1 = M.parzen_log_likelihood(G, T)
    r2 = M.parzen_log_likelihood(G, T)
    assert r1 == r2
    assert r1.n_evaluated == len(T) - round(0.2 * len(T))
    assert len(r1.sigmas) == 20 and r1.sigma in r1.sigmas


def test_parzen_warns_at_grid_edge() -> None:
    with pytest.warns(RuntimeWarning, match="edge"):
        M.parzen_log_likelihood(G, T, validation=R, sigmas=[1e-3, 2e-3])


# --- nearest neighbours -------------------------------------------------------------------


def test_nearest_neighbour_distance_matches_cdist() -> None:
    d = cdist(G, R)
    r = M.nearest_neighbour_distance(G, R)
    np.testing.assert_array_equal(r.indices.numpy(), d.argmin(1))
    np.testing.assert_allclose(r.distances.numpy(), d.min(1), rtol=1e-10)
    assert r.mean == pytest.approx(d.min(1).mean(), rel=1e-12)
    assert r.std == pytest.approx(d.min(1).std(ddof=1), rel=1e-10)
    means = [M.nearest_neighbour_distance(G, R, block=b).mean for b in BLOCKS]
    assert all(close(v, means[0]) for v in means)


def test_nearest_neighbour_on_images_and_saved_pairs(tmp_path: Path) -> None:
    gen = torch.rand(6, 1, 5, 4) * 2 - 1
    train = torch.rand(9, 1, 5, 4) * 2 - 1
    r = M.nearest_neighbour_distance(gen, train)
    d = cdist(gen.flatten(1).double().numpy(), train.flatten(1).double().numpy())
    assert r.mean == pytest.approx(d.min(1).mean(), rel=1e-5)
    M.save_nearest_pairs(gen, train, r, tmp_path / "nn.png", top=3)
    w, h = Image.open(tmp_path / "nn.png").size
    assert (w, h) == (2 + 2 * (4 + 2), 2 + 3 * (5 + 2))  # 2 columns, 3 pair rows


def direct_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = squareform(pdist(x))
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def test_precision_recall_density_coverage_match_numpy() -> None:
    real, fake = rng.normal(size=(80, 3)), rng.normal(size=(70, 3)) * 1.3 + 0.4
    k = 3
    rr, rf = direct_radii(real, k), direct_radii(fake, k)
    d = cdist(real, fake)  # (real, fake)
    precision = (d <= rr[:, None]).any(0).mean()
    recall = (d <= rf[None, :]).any(1).mean()
    pr = M.precision_recall(real, fake, k=k, block=16)
    assert (pr.precision, pr.recall) == pytest.approx((precision, recall), abs=1e-12)
    density = (d <= rr[:, None]).sum() / (k * len(fake))
    coverage = (d.min(1) <= rr).mean()
    dc = M.density_coverage(real, fake, k=k, block=16)
    assert (dc.density, dc.coverage) == pytest.approx((density, coverage), abs=1e-12)


def test_identical_sets_have_full_precision_and_recall() -> None:
    pr = M.precision_recall(T, T)
    assert pr.precision == 1.0 and pr.recall == 1.0
    assert M.density_coverage(T, T).coverage == 1.0


# --- birthday test ------------------------------------------------------------------------


def test_birthday_closest_pairs_match_pdist() -> None:
    x = rng.normal(size=(30, 5))
    r = M.birthday_duplicates(x, batch_size=30, top=6, threshold=1e-6, batches=1)
    d = squareform(pdist(x))
    iu = np.triu_indices(30, 1)
    order = np.argsort(d[iu])[:6]
    expected = {(int(i), int(j)) for i, j in zip(iu[0][order], iu[1][order], strict=True)}
    assert {tuple(p) for p in r.pairs.tolist()} == expected
    np.testing.assert_allclose(r.distances.numpy(), np.sort(d[iu])[:6], rtol=1e-10)
    assert r.collisions == 0 and r.support_kind == "lower bound"


def test_birthday_support_size_of_a_finite_distribution(tmp_path: Path) -> None:
    g = np.random.default_rng(11)
    atoms = g.normal(size=(50, 8))  # support of 50 points
    samples = atoms[g.integers(50, size=4000)]
    r = M.birthday_duplicates(samples, batch_size=10, threshold=1e-3, batches=300)
    p_true = 1 - np.prod(1 - np.arange(10) / 50)  # exact birthday probability, ~0.61
    assert r.collision_probability == pytest.approx(p_true, abs=0.1)
    assert 30 < r.support_size < 85 and r.support_kind == "estimate"
    # a threshold from a continuous reference set flags every exact repeat (and maybe more)
    ref = M.birthday_duplicates(samples, 10, batches=300, reference=g.normal(size=(500, 8)))
    assert ref.collisions >= r.collisions and ref.threshold > 0
    images = torch.rand(len(samples), 1, 3, 3) * 2 - 1
    M.save_duplicate_pairs(images, r, tmp_path / "dup.png")
    assert Image.open(tmp_path / "dup.png").size[0] == 2 + 2 * 5


def test_birthday_support_formula() -> None:
    size, kind = M.support_size(20, 1 - math.exp(-0.5), 10)
    assert size == pytest.approx(20 * 19) and kind == "estimate"
    assert M.support_size(20, 0.0, 10) == (
        pytest.approx(380 / (2 * math.log(1 / 0.95))),
        "lower bound",
    )


# --- mode counts --------------------------------------------------------------------------


def test_mode_count_on_constructed_samples() -> None:
    angles = 2 * np.pi * np.arange(8) / 8
    centres = 2 * np.stack([np.cos(angles), np.sin(angles)], 1)
    std = 0.02
    near = np.repeat(centres[[0, 2, 5]], 10, axis=0) + std * 0.5  # 30 points at 3 modes
    stray = np.zeros((10, 2))  # the centre of the ring: far from every mode
    r = M.mode_count(np.vstack([near, stray]), centres, std)
    assert r.modes_hit == 3 and r.modes == 8
    assert r.high_quality == pytest.approx(30 / 40)
    assert r.kl_to_uniform == pytest.approx(math.log(8 / 3), rel=1e-12)
    assert M.mode_count(np.vstack([near, stray]), centres, std, min_count=11).modes_hit == 0


def test_digit_mode_count_inputs() -> None:
    digits = torch.tensor([[1, 2, 3], [1, 2, 3], [9, 0, 0], [0, 0, 7]]).repeat(250, 1)
    r = M.digit_mode_count(digits)  # 1,000 samples: one per mode, the least it takes
    assert (r.distinct, r.recognised) == (3, 1000)
    q = np.array([0.5, 0.25, 0.25])
    assert r.kl_to_uniform == pytest.approx(float((q * np.log(q * 1000)).sum()), rel=1e-12)
    assert int(r.counts[123]) == 500 and int(r.counts[900]) == 250 and int(r.counts[7]) == 250
    assert M.digit_mode_count(torch.tensor([123, 123, 900, 7]).repeat(250)).distinct == 3
    probs = torch.nn.functional.one_hot(digits, 10).double() * 0.9 + 0.01
    probs[0, 1] = 0.1  # first sample: middle digit unsure
    r = M.digit_mode_count(probs, min_confidence=0.5)
    assert (r.distinct, r.recognised) == (3, 999)
    with pytest.raises(UsageError, match="0-9"):
        M.digit_mode_count(torch.tensor([[1, 2, 10]]))


# --- input validation and the registry ----------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: M.ddm(T, G[:, :3]), "dimensions differ"),
        (lambda: M.ddm(T[:1], G), "at least 2"),
        (lambda: M.ddm(T, G, distance="cosine"), "unknown distance"),
        (lambda: M.ddm(T, G, scale=0), "positive"),
        (lambda: M.fid(T[:1], G), "at least 2"),
        (lambda: M.parzen_log_likelihood(np.where(G > 2, np.nan, G), T), "NaN"),
        (lambda: M.kid(T, G, subset_size=1000), "subset_size"),
        (lambda: M.precision_recall(T[:3], G, k=3), "at least 4"),
        (lambda: M.birthday_duplicates(G, 10), "threshold"),
        (lambda: M.nearest_neighbour_distance(G, np.inf * R), "infinite"),
        (lambda: M.mode_count(G[:, :2], np.zeros((3, 2)), std=-1.0), "positive"),
        (lambda: M.ddm(T.ravel(), G), "2-D"),
    ],
)
def test_bad_inputs_raise_one_line_usage_errors(call: object, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        call()  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_registry_reports_missing_roles() -> None:
    with pytest.raises(UsageError, match="needs test"):
        M.METRICS.get("ddm")({"generated": G})
    with pytest.raises(UsageError, match="unknown metric"):
        M.METRICS.get("fidd")
