"""MAE's reconstruction loss: mean squared error on the masked patches' (normalised) pixels."""

from __future__ import annotations

from torch import Tensor, nn


class MAELoss(nn.Module):
    """Mean squared error between predicted and true pixels, over the masked patches only (He et
    al. 2022, sec. 3; official code github.com/facebookresearch/mae, ``forward_loss``):

    ``L = Σ_i Σ_n m_i,n mean_p (ŷ_i,n,p − y_i,n,p)² / Σ_i Σ_n m_i,n``

    With ``norm_pix`` (the paper's default, "normalized pixels as reconstruction target", Table 1c:
    +0.5 points), each patch's target is its own pixels standardised:
    ``y ← (y − mean(y)) / sqrt(var(y) + 1e-6)`` over the patch's pixels (unbiased variance, as
    the official code's ``var``).

    Args:
        norm_pix: standardise each target patch.

    Example:
        >>> from selfsup.losses.mae import MAELoss
        >>> pred, target = torch.randn(2, 16, 48), torch.randn(2, 16, 48)  # 2 images, 16 patches of 48 values
        >>> mask = torch.rand(2, 16) < 0.75
        >>> MAELoss()(pred, target=target, mask=mask).shape
        torch.Size([])
    """

    def __init__(self, norm_pix: bool = True) -> None:
        super().__init__()
        self.norm_pix = norm_pix

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """``pred`` and ``target`` (B, N, P) of N patches, ``mask`` (B, N) True where masked; a scalar."""
        if pred.shape != target.shape or tuple(mask.shape) != tuple(pred.shape[:2]):
            raise ValueError(f"pred and target must be (B, N, P) and mask (B, N); got {tuple(pred.shape)}, "
                             f"{tuple(target.shape)}, {tuple(mask.shape)}")  # fmt: skip
        if self.norm_pix:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = ((pred - target) ** 2).mean(-1)
        m = mask.to(per_patch.dtype)
        return (per_patch * m).sum() / m.sum()
