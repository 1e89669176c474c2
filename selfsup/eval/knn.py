"""Weighted k-nearest-neighbour classifier of InstDisc (Wu et al., CVPR 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def knn_predict(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> Tensor:
    """Predict labels by a vote of the k most cosine-similar train features.

    Class score = Σ over the top-k neighbours of that class of exp(s / T).

    Args:
        train_x: (N, F) features. train_y: (N,) labels in [0, num_classes).
        test_x: (M, F) features.
        num_classes: number of classes C.
        k: neighbours (capped at N).
        temperature: T.
        chunk: test rows scored at once (bounds memory at chunk x N).

    Returns:
        (M,) predicted labels.
    """
    train_x = F.normalize(train_x.float(), dim=1)
    test_x = F.normalize(test_x.float(), dim=1)
    k = min(k, train_x.shape[0])
    preds = []
    for start in range(0, test_x.shape[0], chunk):
        sim = test_x[start : start + chunk] @ train_x.T  # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        scores = torch.zeros(sim.shape[0], num_classes, device=sim.device, dtype=weights.dtype)
        scores.scatter_add_(1, train_y[top_idx], weights)
        preds.append(scores.argmax(1))
    return torch.cat(preds)


def knn_top1(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    k: int,
    temperature: float,
) -> float:
    """Top-1 accuracy (percent) of :func:`knn_predict`."""
    pred = knn_predict(train_x, train_y, test_x, num_classes, k=k, temperature=temperature)
    return 100.0 * float((pred == test_y).float().mean())
