"""Optimisers and learning-rate schedules."""

from selfsup.optim.lars import LARS
from selfsup.optim.schedule import warmup_cosine

__all__ = ["LARS", "warmup_cosine"]
