"""Metrics on feature arrays: pure functions, each registered by name in :data:`METRICS`.

Import from here; the modules are grouped by theme:

- divergence: Distribution Divergence Measure, ``ddm`` (Eq. 3.4), ``ddm_relative`` (Eq. 3.5)
- parzen: Gaussian Parzen-window log-likelihood with the validation choice of sigma
- scores: ``inception_score``, ``mode_score``
- frechet: ``fid``, ``frechet_distance`` (on moments), ``feature_moments``
- mmd: ``kid``; ``mmd2`` and ``mmd_test`` re-exported from :mod:`kdegen.stats.mmd`
- neighbours: ``nearest_neighbour_distance``, ``precision_recall``, ``density_coverage``
- birthday: ``birthday_duplicates`` (support size), ``save_duplicate_pairs``
- modes: ``mode_count`` (Gaussian mixtures), ``digit_mode_count`` (MNIST1000)
"""

from kdegen.evaluation.metrics.birthday import (
    BirthdayResult,
    birthday_duplicates,
    save_duplicate_pairs,
    support_size,
)
from kdegen.evaluation.metrics.divergence import DDMRelativeResult, DDMResult, ddm, ddm_relative
from kdegen.evaluation.metrics.frechet import feature_moments, fid, frechet_distance
from kdegen.evaluation.metrics.mmd import KIDResult, MMDTest, kid, mmd2, mmd_test
from kdegen.evaluation.metrics.modes import (
    DigitModes,
    ModeCount,
    digit_mode_count,
    kl_to_uniform,
    mode_count,
)
from kdegen.evaluation.metrics.neighbours import (
    DensityCoverage,
    NearestNeighbourResult,
    PrecisionRecall,
    density_coverage,
    nearest_neighbour_distance,
    precision_recall,
    save_nearest_pairs,
)
from kdegen.evaluation.metrics.parzen import (
    ParzenResult,
    parzen_log_density,
    parzen_log_likelihood,
)
from kdegen.evaluation.metrics.registry import METRICS, ROLES, Metric, register_metric
from kdegen.evaluation.metrics.scores import (
    InceptionScore,
    ModeScore,
    inception_score,
    mode_score,
)

__all__ = [
    "METRICS",
    "ROLES",
    "BirthdayResult",
    "DDMRelativeResult",
    "DDMResult",
    "DensityCoverage",
    "DigitModes",
    "InceptionScore",
    "KIDResult",
    "MMDTest",
    "Metric",
    "ModeCount",
    "ModeScore",
    "NearestNeighbourResult",
    "ParzenResult",
    "PrecisionRecall",
    "birthday_duplicates",
    "ddm",
    "ddm_relative",
    "density_coverage",
    "digit_mode_count",
    "feature_moments",
    "fid",
    "frechet_distance",
    "inception_score",
    "kid",
    "kl_to_uniform",
    "mmd2",
    "mmd_test",
    "mode_count",
    "mode_score",
    "nearest_neighbour_distance",
    "parzen_log_density",
    "parzen_log_likelihood",
    "precision_recall",
    "register_metric",
    "save_duplicate_pairs",
    "save_nearest_pairs",
    "support_size",
]
