"""``kdegen modnet``: how a trained ModNet turns images into a target class (thesis Sec. 2.5,
Fig. 2.5-2.6), as a PNG with three rows: the inputs, the deltas and the outputs.

A delta is the change the network made, output - input, in [-2, 2]; it is drawn halved, so
mid-grey means "unchanged", white "brightened" and black "darkened".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdegen import runs
from kdegen.cli.base import DataOptions, command, output_path
from kdegen.cli.flags import parse
from kdegen.config import option
from kdegen.data import load
from kdegen.errors import UsageError
from kdegen.images import save_grid
from kdegen.methods.capabilities import TransformsImages, capable


@dataclass(frozen=True, kw_only=True)
class ModNetOptions(DataOptions):
    target: int = option(help="the class to turn images into")
    out: str = option(help="output PNG")
    n: int = option(8, "number of input images", ge=1)
    seed: int = option(0, "seed of the choice of inputs")


@command("modnet")
def cmd_modnet(argv: list[str]) -> int:
    """Turn images into a target class with a modnet run: inputs, deltas, outputs (PNG)."""
    args = parse(ModNetOptions, argv, "kdegen modnet", cmd_modnet.__doc__)
    out = output_path(args.out, (".png",))
    loaded = runs.load_run(args.run, args.device)
    method: TransformsImages = capable(
        loaded.method,
        TransformsImages,
        loaded.config.method,
        "no image-to-image network; kdegen modnet needs a run trained with --method modnet",
    )
    if not 0 <= args.target < method.classes:
        raise UsageError(
            f"--target {args.target} is not a class of this run; give 0 to {method.classes - 1}"
        )
    data = load(args.data, split=args.split)
    shape = loaded.method.spec.shape
    if tuple(data.shape) != shape:
        raise UsageError(
            f"{args.data} has examples of shape {tuple(data.shape)}; the run was trained on "
            f"shape {shape}"
        )
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))
    x = data.images[pick[: args.n]]
    target = torch.full((len(x),), args.target, dtype=torch.long)
    y = method.transform(x, target).cpu()
    save_grid(torch.cat([x, (y - x) / 2, y]), out, nrow=len(x))
    hits = int((method.classify(y).argmax(1).cpu() == args.target).sum())
    before = int((method.classify(x).argmax(1).cpu() == args.target).sum())
    print(
        f"wrote {out}: {len(x)} inputs, deltas and outputs (rows); the run's classifier "
        f"says {args.target} for {hits}/{len(x)} outputs ({before}/{len(x)} inputs); "
        f"mean |delta| {float((y - x).abs().mean()):.3f}"
    )
    return 0
