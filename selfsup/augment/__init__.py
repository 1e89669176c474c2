"""Batched view makers: uint8 batches in, augmented float views out, on the model's device."""

from selfsup.augment.views import ViewMaker

__all__ = ["ViewMaker"]
