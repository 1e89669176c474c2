"""RankMe (Garrido et al., ICML 2023): effective rank of an embedding matrix."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def rankme(z: Tensor, eps: float = 1e-7) -> float:
    """exp(entropy) of the normalised singular values of the raw embeddings.

    p_k = σ_k / Σσ + ε, no centring and no squaring. 1 ≤ RankMe ≤ min(N, K). NaN for
    embeddings with a NaN or infinite entry.

    Args:
        z: (N, K) embeddings.
        eps: ε added to each p_k (1e-7 as in the paper for float32).

    Example:
        >>> from selfsup.metrics import rankme
        >>> round(rankme(torch.eye(16)), 2)  # 16 equal singular values: full rank
        16.0
        >>> round(rankme(torch.ones(8, 16)), 2)  # every embedding alike: rank 1, collapsed
        1.0
    """
    if not torch.isfinite(z).all():
        return float("nan")  # a diverged run's embeddings: undefined, reported, not a crash
    s = torch.linalg.svdvals(z.double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))
