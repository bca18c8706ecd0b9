"""Reproductions of the seeds' figures, registered by name in :data:`EXPERIMENTS`.

Each is a function of :class:`Settings` (``quick`` picks a size small enough for the
default tests) writing ``table.md``, ``results.json`` and ``plot.png`` into
``Settings.out``; ``kdegen experiment NAME [--quick] [--out DIR]`` runs one.

- ``missing-modes``: thesis Fig. 3.7, DDM vs Inception Score on n distinct images.
- ``corruptions``: thesis Sec. 3.4.6, DDM of noisy and blurred real images.
- ``metric-ranking``: thesis Sec. 3.4.2, DDM, IS, FID, KID, Parzen over GAN training.
- ``gen-bandwidths``, ``gen-entropy``, ``gen-correlation``, ``gen-mog``: GENs Table 1,
  Table 2, Fig. 1 and Fig. 3.
- ``modnet-augment``: thesis Sec. 2.5.4, a classifier on n real examples with and without
  ModNet's relabelled modifications of them.
- ``mode-collapse``: modes covered on ring8 and grid25 by gan, wgan-gp, unrolled, pacgan,
  minibatch discrimination, bigan and kdegan (tutorial "Mode Collapse: Solutions").
- ``mode-recovery``: Generator Reversal Table 2, recovering dropped modes on mnist1000.
- ``learning-speed``: Generator Reversal Fig. 5, Inception Score over training of gan,
  kdegan and the paper's scheme.
- ``memorisation``: Generator Reversal Table 1, nearest-neighbour distances of gan and
  kdegan samples to the training set.
"""

from kdegen.experiments.base import (
    EXPERIMENTS,
    Experiment,
    Outcome,
    Part,
    Settings,
    run_experiment,
    run_parts,
)
from kdegen.registry import import_submodules

# every module registers its experiment in EXPERIMENTS: a new one is one new module
import_submodules(__name__)

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "Outcome",
    "Part",
    "Settings",
    "run_experiment",
    "run_parts",
]
