"""Weighted Decoupled Contrastive Learning loss (DCLW, Yeh et al., ECCV 2022)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from selfsup.losses._pairs import Pairs
from selfsup.losses.dcl import DCL
from selfsup.schema import Positive


class DCLW(DCL):
    """DCL whose positive term is weighted by a von Mises-Fisher factor.

    w_i = 2 - N·softmax_i(s(z_i¹, z_i²)/σ), the softmax taken over the images of the batch,
    separately for each ordered pair of views. Easy positives (high similarity) get
    w < 1, hard ones w > 1; as σ → ∞ every w_i → 1 and DCLW becomes DCL.

    Published code differs on two points, both exposed here:
    ``weight_detach`` (lightly detaches the weight; a widely used third-party repository
    does not) and ``weight_scope`` ("global": softmax over the batch gathered from every
    rank, which makes DDP the same objective as one process; "local": over this rank's batch).
    With mixed views, the weight of a view's (soft) positive term is computed from the two
    views of the same image index, mixed or not, exactly as without mixing.

    Args:
        temperature: τ.
        sigma: σ of the weighting softmax.
        weight_detach: stop gradients through the weights.
        weight_scope: "global" or "local".
        gather_distributed: take negatives from every DDP rank (with gradient).
        **options: the hard-negative options ``drop_top_k``, MoCHi's ``mochi_hardest``,
            ``mochi_mixes``, ``mochi_query_mixes``, and feature transformation's ``ft_pos_alpha``,
            ``ft_neg_alpha``, ``ft_normalize`` (:class:`~selfsup.losses._contrastive.ContrastiveLoss`).

    Example:
        >>> from selfsup.losses import DCLW
        >>> loss = DCLW(temperature=0.1, sigma=0.5)
        >>> z = torch.randn(2 * 8, 16)  # 2 views of 8 images, view-major
        >>> loss(z, views=2).shape
        torch.Size([])
    """

    def __init__(
        self,
        temperature: float = 0.1,
        sigma: Positive = 0.5,
        weight_detach: bool = True,
        weight_scope: Literal["global", "local"] = "global",
        gather_distributed: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(temperature=temperature, gather_distributed=gather_distributed, **options)
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if weight_scope not in ("global", "local"):
            raise ValueError(f"weight_scope must be 'global' or 'local', got {weight_scope!r}")
        self.sigma = sigma
        self.weight_detach = weight_detach
        self.weight_scope = weight_scope

    def positive_weights(self, p: Pairs, views: int) -> Tensor:
        z_all, keys_all = (p.z_all.detach(), p.keys_all.detach()) if self.weight_detach else (p.z_all, p.keys_all)
        b = p.pos.shape[0] // views
        if self.weight_scope == "local":
            z_all, keys_all = z_all[:, p.offset : p.offset + b], keys_all[:, p.offset : p.offset + b]
        # Positive similarity of every image for every ordered view pair: (V, V, n), anchor
        # view first (with keys from a target encoder: anchor v of image i against key u of i).
        pos_sim = torch.einsum("vnd,und->vun", z_all, keys_all)
        scope_n = z_all.shape[1]
        w = 2 - scope_n * torch.softmax(pos_sim / self.sigma, dim=-1)  # (V, V, n)
        if self.weight_scope == "global":
            w = w[:, :, p.offset : p.offset + b]  # this rank's anchors
        # Row v*B+i, column u: the weight of anchor (v, i)'s positive term in view u.
        return w.permute(0, 2, 1).reshape(views * b, views).to(p.sim.dtype)
