"""LARS: SGD with layer-wise trust ratios (You et al., 2017), as used by SimCLR at large batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

import torch
from annotated_types import Interval
from torch.optim import Optimizer

from selfsup.schema import NonNegative, Positive


class LARS(Optimizer):
    """SGD with momentum whose step per tensor is scaled by η‖w‖ / (‖g‖ + wd‖w‖).

    Parameter groups with ``lars_exclude=True`` (biases and norm layers, by convention) get
    neither weight decay nor the trust ratio, as in SimCLR.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        momentum: heavy-ball momentum.
        weight_decay: L2 coefficient added to the gradient.
        trust_coefficient: η.
        eps: guards the division.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Positive = 0.1,
        momentum: Annotated[float, Interval(ge=0, lt=1)] = 0.9,
        weight_decay: NonNegative = 1e-6,
        trust_coefficient: Positive = 1e-3,
        eps: NonNegative = 1e-8,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            exclude = group.get("lars_exclude", False)
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not exclude:
                    if group["weight_decay"]:
                        g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.norm(p), torch.norm(g)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["trust_coefficient"] * w_norm / (g_norm + group["eps"]),
                        torch.ones_like(w_norm),
                    )
                    g = g.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
