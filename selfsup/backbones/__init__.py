"""Backbones: modules with ``num_features`` whose forward returns pooled features (B, F)."""

from selfsup.backbones.small_cnn import SmallCNN
from selfsup.backbones.timm_backbone import TimmBackbone

__all__ = ["SmallCNN", "TimmBackbone"]
