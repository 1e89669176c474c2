"""Feature transformation (Zhu et al., "Improving Contrastive Learning by Visualizing Feature
Transformation", ICCV 2021): harder positives by extrapolation, more varied negatives by
interpolation, in the embedding space, for every contrastive loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class FeatureTransform:
    """Positive extrapolation and negative interpolation of unit embeddings.

    - **Positive extrapolation** (``pos_alpha`` > 0): with one λ = 1 + Beta(α_p, α_p) per step
      (so λ ∈ [1, 2]), each anchor and its positive move apart along their difference,
      ẑ_q = λ z_q + (1 − λ) z_k and ẑ_k = λ z_k + (1 − λ) z_q; their similarity drops to
      s − 2λ(λ − 1)(1 − s). With V > 2 views the partner of a view is the mean of the other views
      (for V = 2, exactly the paper's pair). Gradients flow through both (a method's detached
      keys pass theirs on to the anchors through the (1 − λ) term, as in the authors' code).
    - **Negative interpolation** (``neg_alpha`` > 0): with one μ ~ Beta(α_n, α_n) per step, every
      negative n_j becomes μ n_j + (1 − μ) n_π(j), π a random permutation: of the queue (or bank
      rows), and of the batch's images for in-batch candidates (a candidate stays the anchor's
      positive unmixed; a mixed negative may contain a little of the anchor's image when π
      pairs it with the anchor's own, with probability 1/N).
    - ``normalize``: re-normalise the transformed vectors. The authors' released ImageNet command
      does not (``--postmix_norm`` off), so the default is off.

    The authors' command (MoCo v2, ImageNet): α_p 2.0, α_n 1.6, one λ and one μ per step
    (``--dim_mask none``). μ ~ U(0, 1) is α_n = 1.
    """

    pos_alpha: float = 0.0
    neg_alpha: float = 0.0
    normalize: bool = False

    def __post_init__(self) -> None:
        for key in ("pos_alpha", "neg_alpha"):
            if getattr(self, key) < 0:
                raise ValueError(f"loss.ft_{key}={getattr(self, key)}: expected >= 0 (0: off; Beta(a, a) otherwise)")

    def _unit(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) if self.normalize else x

    def extrapolate(self, z: Tensor, keys: Tensor | None, views: int) -> tuple[Tensor, Tensor | None]:
        """Unit (V*B, D) anchors and keys (or None: the anchors are the candidates) -> extrapolated."""
        if self.pos_alpha <= 0:
            return z, keys
        lam = 1 + torch.distributions.Beta(self.pos_alpha, self.pos_alpha).sample().to(z)
        zv = z.view(views, -1, z.shape[-1])
        kv = zv if keys is None else keys.view(views, -1, z.shape[-1])

        def others(x: Tensor) -> Tensor:  # per view, the mean of the image's other views
            return (x.sum(0, keepdim=True) - x) / (views - 1)

        z_new = self._unit(lam * zv + (1 - lam) * others(kv)).reshape_as(z)
        if keys is None:
            return z_new, None
        return z_new, self._unit(lam * kv + (1 - lam) * others(zv)).reshape_as(keys)

    def interpolate(self, x: Tensor, mu: Tensor, dim: int) -> Tensor:
        """``x`` mixed with a random permutation of itself along ``dim``: μ x + (1 − μ) x[π]."""
        perm = torch.randperm(x.shape[dim], device=x.device)
        return self._unit(mu * x + (1 - mu) * x.index_select(dim, perm))

    def draw_mu(self, like: Tensor) -> Tensor | None:
        """This step's μ, or None when negative interpolation is off."""
        if self.neg_alpha <= 0:
            return None
        return torch.distributions.Beta(self.neg_alpha, self.neg_alpha).sample().to(like)
