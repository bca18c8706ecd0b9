"""The training heuristics of Basart's thesis, Sec. 2.4.1, for every GAN-family method.

All of them weaken or slow the discriminator, and all are off by default:

- ``g_steps`` K: K generator updates per discriminator update, the schedule of the first
  GAN paper that the thesis describes (G updated twice as often, D frozen in between).
- ``label_smoothing`` a: one-sided label smoothing (Salimans et al. 2016): real examples
  get the target a instead of 1; fakes keep 0.
- ``label_flip`` p: each real example's target is flipped to fake (0) with probability p
  ("adds noise to the positive target labels").
- ``instance_noise`` s: Gaussian noise of standard deviation s(t) = s exp(-t / tau) added
  to every input of the discriminator, real and generated, in both phases, at step t,
  with tau = ``instance_noise_decay`` steps (a schedule in steps, not in the fraction of
  training, so a run extended on resume continues it exactly).
- ``freeze_d_layers`` L: L of the discriminator's weight layers (linear and convolutional)
  kept at their random initial weights, counted from its input (the thesis's "stronger
  corruption": a fixed random nonlinear map of the input) or from its output.

Label targets exist only for the objectives with a real label (minimax, non-saturating,
lsgan); asking for smoothing or flipping with another is refused.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kdegen.errors import UsageError
from kdegen.objectives import OBJECTIVES, Objective

FreezeFrom = Literal["input", "output"]
WEIGHT_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def check_heuristics(config: Any) -> None:
    """Refuse label heuristics for an objective whose real examples have no label."""
    asked = [
        flag
        for flag, on in (
            ("--label-smoothing", config.label_smoothing != 1.0),
            ("--label-flip", config.label_flip > 0),
        )
        if on
    ]
    if asked and OBJECTIVES.get(config.objective).targeted_d_loss is None:
        with_labels = [n for n, o in OBJECTIVES.items() if o.targeted_d_loss is not None]
        raise UsageError(
            f"{asked[0]} changes the real examples' label, which objective "
            f"{config.objective} does not have; use it with {', '.join(with_labels)}"
        )


def real_targets(v_real: Tensor, smoothing: float, flip: float) -> Tensor:
    """The target of each real example (B,): ``smoothing``, or 0 with probability ``flip``
    (drawn from torch's global generator, so a resumed run draws the same)."""
    t = torch.full_like(v_real, smoothing)
    if flip > 0:
        flipped = torch.rand(v_real.shape, device=v_real.device) < flip
        t = torch.where(flipped, torch.zeros_like(t), t)
    return t


def discriminator_loss(objective: Objective, config: Any, v_real: Tensor, v_fake: Tensor) -> Tensor:
    """The objective's discriminator loss, with smoothed or flipped real targets if asked."""
    if config.label_smoothing == 1.0 and config.label_flip == 0:
        return objective.d_loss(v_real, v_fake)
    assert objective.targeted_d_loss is not None  # check_heuristics refused the rest
    t = real_targets(v_real, config.label_smoothing, config.label_flip)
    return objective.targeted_d_loss(v_real, v_fake, t)


def noise_std(start: float, tau: float, step: int) -> float:
    """Instance noise std at ``step``: start * exp(-step / tau)."""
    return start * math.exp(-step / tau)


class InstanceNoise:
    """A forward pre-hook that adds N(0, std^2) noise to a discriminator's first input
    while it is in training mode (evaluations see clean inputs). ``std`` is set from the
    schedule at every step."""

    def __init__(self, net: nn.Module) -> None:
        self.std = 0.0
        net.register_forward_pre_hook(self)

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if self.std <= 0 or not module.training or not args:
            return None
        x = args[0]
        if not (isinstance(x, Tensor) and x.is_floating_point()):
            return None
        return (x + self.std * torch.randn_like(x), *args[1:])


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """The linear and convolutional layers of ``net`` in the order they were built (the
    order of the forward pass for kdegen's networks)."""
    return [m for m in net.modules() if isinstance(m, WEIGHT_LAYERS)]


def freeze_layers(net: nn.Module, count: int, start: FreezeFrom) -> list[nn.Module]:
    """Keep ``count`` weight layers of ``net`` at their current weights (no gradients, so
    no optimizer moves them), counted from its input or output; returns them.

    Raises:
        UsageError: ``net`` has no more weight layers than ``count`` (one must learn).
    """
    layers = weight_layers(net)
    if count >= len(layers):
        raise UsageError(
            f"--freeze-d-layers {count}: the discriminator has {len(layers)} weight layers "
            f"and one must learn; give at most {len(layers) - 1}"
        )
    chosen = layers[:count] if start == "input" else layers[len(layers) - count :]
    for layer in chosen:
        layer.requires_grad_(False)
    return chosen
