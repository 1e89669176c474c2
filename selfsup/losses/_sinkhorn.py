"""Sinkhorn-Knopp's equal partition of a batch over K prototypes: SwAV's codes (Caron et al.,
NeurIPS 2020) and DINOv2's centring of a teacher (Oquab et al., TMLR 2024), one helper."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from selfsup.dist import world_size


def _summed_over_ranks(local: Tensor, shared: Tensor) -> Tensor:
    """``shared`` (the same on every rank: a queue's part) plus ``local`` summed over the ranks."""
    if world_size() > 1:
        local = local.clone()
        dist.all_reduce(local)
    return local + shared


@torch.no_grad()
def sinkhorn(
    scores: Tensor, epsilon: float, iterations: int, shared_rows: int = 0, bound: float | None = 1.0
) -> Tensor:
    """Codes Q (N, K) of the scores (N, K) by Sinkhorn-Knopp (SwAV's Eq. 3 and official
    ``distributed_sinkhorn``; DINOv2's ``sinkhorn_knopp_teacher``): ``exp(scores / ε)`` rescaled
    ``iterations`` times so that each of the K prototypes gets 1/K of the mass over all rows and
    each row 1/N, then each row sums to 1.

    Under DDP the rows are every rank's (their number may differ between ranks): the sums over
    rows and the row count are summed over the ranks, so the codes are those of the global batch.
    The first ``shared_rows`` rows (SwAV's queue) are the same on every rank and count once.

    ``bound``, a score no row exceeds (cosines: 1), is subtracted before the exponential: a
    constant factor that the first normalisation removes, and the exponential cannot overflow.
    ``None`` subtracts the global batch's largest score instead (scores without a bound: the
    logits of a head whose last layer's norm is trained).

    Computed in float32 at least (half-precision exponentials lose the small codes), returned in
    the scores' dtype.
    """
    dtype, scores = scores.dtype, scores.to(torch.promote_types(scores.dtype, torch.float32))
    n_local = scores.shape[0] - shared_rows
    if bound is None:
        top = scores.max() if scores.numel() else scores.new_full((), float("-inf"))
        if world_size() > 1:
            top = top.clone()
            dist.all_reduce(top, op=dist.ReduceOp.MAX)
        bound = float(top)
    q = torch.exp((scores - bound) / epsilon).t()  # (K, N)
    k = q.shape[0]
    n = _summed_over_ranks(q.new_tensor(float(n_local)), q.new_tensor(float(shared_rows)))
    q = q / _summed_over_ranks(q[:, shared_rows:].sum(), q[:, :shared_rows].sum())
    for _ in range(iterations):
        q = q / _summed_over_ranks(q[:, shared_rows:].sum(1, keepdim=True), q[:, :shared_rows].sum(1, keepdim=True))
        q = q / k
        q = q / q.sum(0, keepdim=True)
        q = q / n
    return (q * n).t().to(dtype)
