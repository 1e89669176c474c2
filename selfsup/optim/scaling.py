"""Learning rate scaled with the global batch size."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable

from selfsup.schema import LrScalingRule

RULES = typing.get_args(LrScalingRule)


def lr_scaling(rule: str = "none", reference_batch: int = 256) -> Callable[[int], float] | None:
    """The factor applied to the configured lr, as a function of the global batch B.

    ``linear``: B / reference_batch (Goyal et al. 2017; SimCLR with LARS: 0.3 x B/256).
    ``sqrt``: sqrt(B / reference_batch) (SimCLR's small-batch rule, 0.075 x sqrt(B)).
    ``none``: no scaling, the configured lr is used as is (returns None).

    B is the images per optimiser step: batch size x devices x nodes x gradient accumulation.

    Raises:
        ValueError: an unknown rule or a reference batch below 1.
    """
    if rule not in RULES:
        raise ValueError(f"optim.lr_scaling.rule={rule!r}: expected one of {', '.join(RULES)}")
    if reference_batch < 1:
        raise ValueError(f"optim.lr_scaling.reference_batch={reference_batch}: expected a positive batch size")
    if rule == "none":
        return None
    if rule == "linear":
        return lambda batch: batch / reference_batch
    return lambda batch: math.sqrt(batch / reference_batch)
