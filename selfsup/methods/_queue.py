"""MoCo's queue of negative keys (He et al., CVPR 2020), also NNCLR's support set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.dist import gather_cat


class KeyQueue(nn.Module):
    """A FIFO of ``size`` L2-normalised keys, first filled with random unit vectors (as MoCo).

    :meth:`enqueue` gathers the keys of every rank first (rank order, then row order), so every
    rank holds the same queue, the one a single process with the global batch would hold. The
    queue and its write position are buffers: saved in the checkpoint, restored on resume.

    Args:
        size: K, keys kept.
        dim: key width D.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size <= 0:
            raise ValueError(f"queue size must be > 0, got {size}")
        self.keys: Tensor
        self.ptr: Tensor
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write (n, D) keys (this rank's; gathered here) over the oldest ones, wrapping around."""
        keys = gather_cat(keys.detach().to(self.keys.dtype))
        size = self.keys.shape[0]
        n = min(keys.shape[0], size)  # more keys than slots: the newest fill the queue
        slots = (self.ptr + torch.arange(n, device=self.keys.device)) % size
        self.keys[slots] = F.normalize(keys[-n:], dim=1)
        self.ptr.copy_((self.ptr + n) % size)

    @torch.no_grad()
    def nearest(self, x: Tensor) -> Tensor:
        """(n, D) -> (n, D): the queued key of highest cosine similarity to each row (NNCLR)."""
        sim = F.normalize(x.detach().to(self.keys.dtype), dim=1) @ self.keys.T
        return self.keys[sim.argmax(dim=1)]
