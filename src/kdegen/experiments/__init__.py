"""Reproductions of the seeds' figures, registered by name in :data:`EXPERIMENTS`.

Each is a function of :class:`Settings` (``quick`` picks a size that runs in a couple of
minutes on 2 CPU cores) writing ``table.md``, ``results.json`` and ``plot.png`` into
``Settings.out``; ``kdegen experiment NAME [--quick] [--out DIR]`` runs one.

- ``missing-modes``: thesis Fig. 3.7, DDM vs Inception Score on n distinct images.
- ``corruptions``: thesis Sec. 3.4.6, DDM of noisy and blurred real images.
- ``metric-ranking``: thesis Sec. 3.4.2, DDM, IS, FID, KID, Parzen over GAN training.
"""

# Imported for their side effect: each module registers its experiment in EXPERIMENTS.
from kdegen.experiments import corruptions, metric_ranking, missing_modes  # noqa: F401
from kdegen.experiments.base import EXPERIMENTS, Experiment, Outcome, Settings, run_experiment

__all__ = ["EXPERIMENTS", "Experiment", "Outcome", "Settings", "run_experiment"]
