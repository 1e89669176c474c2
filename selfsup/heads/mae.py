"""MAE's light decoder: visible tokens and mask tokens in, every patch's pixels out (He et al. 2022)."""

from __future__ import annotations

import torch
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from selfsup.schema import Positive, PositiveInt


class MAEDecoder(nn.Module):
    """The decoder of a masked autoencoder (He et al. 2022, "Masked Autoencoders Are Scalable
    Vision Learners"; official code github.com/facebookresearch/mae, ``models_mae.py``): the
    encoder's tokens of the visible patches are embedded to ``dim``, a learned mask token fills
    every masked patch's place, a fixed 2-D sin-cos position embedding is added, ``depth``
    Transformer blocks and a norm follow, and a linear layer predicts each patch's ``patch_size² ×
    channels`` pixel values. It is used in pretraining only (the evaluation reads the encoder).

    Args:
        in_dim: the encoder's token width (``num_features``).
        patch_size: the encoder's patch side in pixels.
        channels: the images' channels.
        dim: the decoder's width (the paper: 512).
        depth: its Transformer blocks (the paper: 8; 1 block already gives 84.8 % fine-tuned, Table 1a).
        num_heads: its attention heads (the paper: 16).
        mlp_ratio: the blocks' MLP width over ``dim`` (4).

    Example:
        >>> from selfsup.heads.mae import MAEDecoder
        >>> decoder = MAEDecoder(in_dim=192, patch_size=4, channels=1, dim=32, depth=1, num_heads=4)
        >>> mask = torch.zeros(2, 16, dtype=torch.bool)
        >>> mask[:, 4:] = True  # 12 of 16 patches masked, 4 kept
        >>> decoder(torch.randn(2, 1, 192), torch.randn(2, 4, 192), mask, grid=(4, 4)).shape
        torch.Size([2, 16, 16])
    """

    def __init__(
        self,
        in_dim: PositiveInt,
        patch_size: PositiveInt = 16,
        channels: PositiveInt = 3,
        dim: PositiveInt = 512,
        depth: PositiveInt = 8,
        num_heads: PositiveInt = 16,
        mlp_ratio: Positive = 4.0,
    ) -> None:
        super().__init__()
        if dim % num_heads or dim % 4:
            raise ValueError(f"head.dim={dim} must be a multiple of head.num_heads={num_heads} and of 4 (sin-cos)")
        self.patch_size, self.channels, self.dim = patch_size, channels, dim
        #: The pixel values predicted per patch.
        self.out_dim = patch_size * patch_size * channels
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, self.out_dim)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():  # the official initialisation
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, prefix: Tensor, kept: Tensor, mask: Tensor, grid: tuple[int, int]) -> Tensor:
        """Predicted pixels (B, N, out_dim) of every patch, in grid order.

        Args:
            prefix: (B, P, in_dim) the encoder's class (and register) tokens.
            kept: (B, N_kept, in_dim) the encoder's tokens of the visible patches, in grid order.
            mask: (B, N) bool, True where a patch was masked (N_kept False per row).
            grid: the patch grid (rows, columns), rows × columns = N.
        """
        b, n = mask.shape
        x = self.embed(kept)
        full = self.mask_token.to(x.dtype).expand(b, n, self.dim).clone()
        full[~mask] = x.reshape(-1, self.dim)  # row-major: each image's visible patches in grid order
        pos = build_sincos2d_pos_embed(list(grid), self.dim, device=x.device, dtype=x.dtype)
        tokens = torch.cat([self.embed(prefix), full + pos], dim=1)
        p = prefix.shape[1]
        return self.pred(self.norm(self.blocks(tokens)))[:, p:]
