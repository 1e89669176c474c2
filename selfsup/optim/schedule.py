"""Linear warm-up followed by cosine decay, stepped every optimisation step."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from selfsup.schema import NonNegative, Probability


def warmup_cosine(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: NonNegative = 10,
    min_lr_ratio: Probability = 0.0,
) -> LambdaLR:
    """Multiply every group's base lr by a factor rising linearly to 1, then cosine-decaying.

    Args:
        optimizer: the optimiser whose groups are scheduled.
        total_steps: optimisation steps of the whole run.
        steps_per_epoch: optimisation steps per epoch (converts ``warmup_epochs`` to steps).
        warmup_epochs: length of the linear warm-up (may be fractional or 0).
        min_lr_ratio: final lr as a fraction of the base lr.
    """
    warmup = min(int(round(warmup_epochs * steps_per_epoch)), max(total_steps - 1, 0))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return min_lr_ratio + (1 - min_lr_ratio) * cosine

    return LambdaLR(optimizer, factor)
