"""scikit-learn's bundled 8x8 handwritten digits, the offline default data set."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from selfsup.data.base import ImageSplits, TensorImageDataset
from selfsup.schema import OpenFraction


def digits_splits(test_fraction: OpenFraction = 0.25, seed: int = 0) -> ImageSplits:
    """1,797 grey 8x8 images in 10 classes, split stratified and seeded (no split is shipped).

    Pixel values 0..16 are rescaled to 0..255 uint8.

    Args:
        test_fraction: share of images held out for evaluation.
        seed: seed of the stratified split (fixed so every run sees the same split).
    """
    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, stratify=d.target, random_state=seed)
    return ImageSplits(TensorImageDataset(xtr, ytr), TensorImageDataset(xte, yte), num_classes=10)
