"""Datasets (uint8 images, label or -1, sample index) and the Lightning data module."""

from selfsup.data.base import ImageSplits, TensorImageDataset
from selfsup.data.module import ImageDataModule

__all__ = ["ImageDataModule", "ImageSplits", "TensorImageDataset"]
