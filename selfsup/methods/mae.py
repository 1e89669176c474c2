"""MAE (He et al., CVPR 2022): a ViT encodes a random 25 % of the patches, a light decoder
reconstructs the rest."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.dist import rank, world_size
from selfsup.methods.base import Method
from selfsup.schema import Probability


class _Features(nn.Identity):
    """The evaluation's projector of a method without one: the encoder's features themselves."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim


def patchify(x: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) -> (B, N, patch² C): each patch's pixels, patches row by row, a patch's values
    pixel by pixel with its channels last (the official ``patchify``)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // patch) * (w // patch), patch * patch * c)


class MAE(Method):
    """Masked autoencoder: each image's patches are masked at random (``mask_ratio``, the same count
    in every image), the encoder (a timm Vision Transformer, :meth:`TimmBackbone.tokens`) sees only
    the visible ones after their position embedding, and the decoder (``head=mae``,
    :class:`~selfsup.heads.mae.MAEDecoder`) predicts the pixels of every patch from them and mask
    tokens; ``loss=mae`` scores the masked patches (:class:`~selfsup.losses.mae.MAELoss`).

    He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"; official code
    github.com/facebookresearch/mae (``models_mae.py``, ``main_pretrain.py``). What it follows:

    - 75 % of the patches masked, uniformly at random per image (``random_masking``: the patches
      with the smallest of N uniform draws are kept);
    - the targets are the view's pixels as the encoder gets them (normalised), per patch, channels
      last (``patchify``);
    - one view per image, random resized crop and flip only (``augment.views: 1``, no colour);
    - the evaluation reads the encoder's pooled features (the class token) of whole images; the
      training step's features for the online probe are those of the visible patches, so its
      accuracy during pretraining understates the final probe's.

    The masks are drawn for the global batch on every rank and each rank takes its own images'
    rows, so two DDP processes mask as one process does.

    Args:
        mask_ratio: the share of each image's patches that is masked.
        *args, **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    needs_tokens = True
    min_views = 1
    local_views_ok = False
    mix_ok = False

    def __init__(self, *args: Any, mask_ratio: Probability = 0.75, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        embed: Any = self.backbone.model.patch_embed  # type: ignore[union-attr]  # a ViT: checked by Method
        patch_size, channels = int(embed.patch_size[0]), int(embed.proj.in_channels)
        head = self.head
        if not hasattr(head, "mask_token") or (head.patch_size, head.channels) != (patch_size, channels):
            raise ValueError(
                f"MAE needs head=mae with the backbone's patch_size={patch_size} and channels={channels}; got "
                f"{type(head).__name__} with {getattr(head, 'patch_size', None)} and {getattr(head, 'channels', None)}"
            )
        self.mask_ratio, self.patch_size = mask_ratio, patch_size
        self.features_head = _Features(self.feature_dim)

    @property
    def eval_head(self) -> nn.Module:
        """The encoder's features: MAE has no projector (its decoder reads tokens, not features)."""
        return self.features_head

    def random_mask(self, images: int, patches: int, device: torch.device) -> Tensor:
        """(images, patches) bool, True where masked: ``round(patches × mask_ratio)`` per image,
        those with the largest uniform draws. Drawn for the global batch, this rank's rows taken."""
        keep = patches - int(round(patches * self.mask_ratio))
        if not 0 < keep < patches:
            raise ValueError(f"method.module.mask_ratio={self.mask_ratio} keeps {keep} of {patches} patches; "
                             "keep at least one and mask at least one")  # fmt: skip
        noise = torch.rand(images * world_size(), patches, device=device)[rank() * images : (rank() + 1) * images]
        order = noise.argsort(dim=1)
        mask = torch.ones(images, patches, dtype=torch.bool, device=device)
        mask.scatter_(1, order[:, :keep], False)
        return mask

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.to_memory_format(torch.cat(views.groups))  # (V*B, C, S, S), one group: no local views
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        mask = self.random_mask(x.shape[0], grid[0] * grid[1], x.device)
        tokens = self.backbone.tokens(x, mask=mask)  # type: ignore[operator]  # a ViT: checked by Method
        pred = self.head(tokens.prefix, tokens.patches, mask, grid)
        loss = self.criterion(pred, target=patchify(x, self.patch_size), mask=mask)
        return loss, tokens.pooled, tokens.pooled
