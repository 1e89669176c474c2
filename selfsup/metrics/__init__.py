"""Representation metrics that need no labels."""

from selfsup.metrics.alignment import alignment, uniformity
from selfsup.metrics.lidar import lidar
from selfsup.metrics.rankme import rankme

__all__ = ["alignment", "lidar", "rankme", "uniformity"]
