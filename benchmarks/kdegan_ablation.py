"""What each of KDE-GAN's default choices buys: the default with one choice undone at a time.

Quality, not cost (``reversal_overhead.py`` measures cost): on ring8 (3,000 steps, batches
of 128, the mode-collapse experiment's MLPs with the learning rate decaying linearly) the
modes covered and the high-quality share of 2,500 samples, and on digits1000 (1,600 steps,
batches of 64, DCGAN) the Inception Score of 2,000 samples under the digits classifier at
a quarter of training and at the end; each the mean over ``--seeds`` seeds, beside the
plain GAN trained with the same settings.

    python benchmarks/kdegan_ablation.py [--seeds 3] [--data ring8,digits1000] [--only NAMES]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from kdegen.config import from_dict
from kdegen.data import load
from kdegen.evaluation.embed import EmbedSettings, Reference, classifier_embedding
from kdegen.evaluation.metrics import inception_score, mode_count
from kdegen.methods import METHODS, Batch, DataSpec, Method
from kdegen.methods.kdegan import KDEGAN
from kdegen.runs.training import BatchStream

# name -> (method, options): the default, then the default with one choice undone
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gan": ("gan", {}),
    "kdegan (default)": ("kdegan", {}),
    "bandwidth 0.3*std": ("kdegan", {"kde_bandwidth": "0.3*std"}),
    "bandwidth scott": ("kdegan", {"kde_bandwidth": "scott"}),
    "no restarts": ("kdegan", {"rev_restarts": 0}),
    "no background": ("kdegan", {"background": 0.0}),
    "bank of every example": ("kdegan", {"bank_size": 0}),
    "sgd at lr 1": ("kdegan", {"reversal": {"optimizer": "sgd", "lr": 1.0}}),
    "paper preset": ("kdegan", dict(KDEGAN.presets["paper"])),
}
SETTINGS = {  # data -> (steps, batch, shared options)
    "ring8": (3000, 128, {"hidden": 128, "layers": 3, "lr_decay": "linear"}),
    "digits1000": (1600, 64, {}),
}


def train(name: str, data: str, seed: int) -> tuple[Method, list[float], float]:
    """Train one variant; returns it, its scores at a quarter of training (images), seconds."""
    steps, batch, shared = SETTINGS[data]
    method_name, options = VARIANTS[name]
    d = load(data, "train")
    torch.manual_seed(seed)
    cls = METHODS.get(method_name)
    config = from_dict(cls.Config, {**shared, **options}, name)
    method: Method = cls(config, DataSpec(d.shape, None, len(d)), torch.device("cpu"))
    method.bind_data(d.images, None)
    stream = BatchStream(len(d), batch, seed)
    early: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        method.set_progress(step, steps)
        idx = stream.indices(step)
        method.train_step(Batch(d.images[idx], None, idx))
        if data != "ring8" and step + 1 == steps // 4:
            early.append(score(method, data, seed))
    return method, early, time.perf_counter() - start


_EMBEDDINGS: dict[str, Any] = {}


def score(method: Method, data: str, seed: int) -> float:
    if data not in _EMBEDDINGS:
        ref = Reference(data, load(data, "test"), load(data, "train"))
        _EMBEDDINGS[data] = classifier_embedding(ref, EmbedSettings(progress=False))
    with torch.no_grad():
        x = method.sample(2000, torch.Generator().manual_seed(seed))
    probs = _EMBEDDINGS[data].embed(x).probs
    return float(inception_score(probs).mean)


def measure(name: str, data: str, seeds: int) -> str:
    cells: dict[str, list[float]] = {}
    for seed in range(seeds):
        method, early, seconds = train(name, data, seed)
        cells.setdefault("seconds", []).append(seconds)
        if data == "ring8":
            test = load(data, "test")
            x = method.sample(2500, torch.Generator().manual_seed(seed))
            assert test.centres is not None and test.std is not None
            c = mode_count(x, test.centres, test.std)
            cells.setdefault("modes", []).append(c.modes_hit)
            cells.setdefault("high quality", []).append(c.high_quality)
        else:
            cells.setdefault("IS at 1/4", []).extend(early)
            cells.setdefault("IS at end", []).append(score(method, data, seed))
    shown = "  ".join(f"{k} {statistics.fmean(v):.3g}" + (f" ({'/'.join(f'{x:g}' for x in v)})"
                                                          if k == "modes" else "")
                      for k, v in cells.items())  # fmt: skip
    return f"{data:<11} {name:<22} {shown}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data", default="ring8,digits1000")
    p.add_argument("--only", default="", help="comma-separated variant names (default all)")
    args = p.parse_args()
    torch.set_num_threads(1)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(VARIANTS)
    print(f"mean over {args.seeds} seeds; 1 thread")
    for data in args.data.split(","):
        for name in names:
            print(measure(name, data, args.seeds), flush=True)


if __name__ == "__main__":
    main()
