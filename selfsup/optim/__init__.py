"""Optimisers, learning-rate schedules and batch-size scaling of the lr."""

from selfsup.optim.lars import LARS
from selfsup.optim.scaling import lr_scaling
from selfsup.optim.schedule import warmup_cosine

__all__ = ["LARS", "lr_scaling", "warmup_cosine"]
