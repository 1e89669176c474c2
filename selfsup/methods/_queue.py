"""MoCo's queue of negative keys (He et al., CVPR 2020), also NNCLR's support set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.dist import gather_cat
from selfsup.errors import ConfigError


def _below(n: int) -> int:
    """A power of two at most a quarter of ``n`` (at least 1): a queue size to suggest."""
    return 1 << max(0, (max(1, n // 4)).bit_length() - 1)


class KeyQueue(nn.Module):
    """A FIFO of ``size`` L2-normalised keys, first filled with random unit vectors (as MoCo).

    :meth:`enqueue` gathers the keys of every rank first (rank order, then row order), so every
    rank holds the same queue, the one a single process with the global batch would hold. The
    queue and its write position are buffers: saved in the checkpoint, restored on resume.

    Args:
        size: K, keys kept.
        dim: key width D.
        option: the config key that sets ``size``, named when :meth:`check_train_size` refuses it.
    """

    def __init__(self, size: int, dim: int, option: str = "queue size") -> None:
        super().__init__()
        if size <= 0:
            raise ValueError(f"queue size must be > 0, got {size}")
        self.option = option
        self.keys: Tensor
        self.ptr: Tensor
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def check_train_size(self, n: int) -> None:
        """Refuse a queue of ``n`` keys or more for a training set of ``n`` images: it would hold
        several stale keys of every image, and an image's own older keys would be its negatives."""
        size = int(self.keys.shape[0])
        if size >= n:
            raise ConfigError(
                f"{self.option}={size} is not below the training set's {n} images: the queue would hold several "
                f"keys of every image (its own among its negatives); keep it below {n}, e.g. {self.option}={_below(n)}"
            )

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
