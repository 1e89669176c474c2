"""Any timm model as a feature extractor, with a CIFAR-style stem switch for small images.

Pretrained weights come from a local file only, never from the network: the file given
(``pretrained_file``), or timm's weights of the model already in the local caches (Hugging Face's
hub cache, then torch hub's ``checkpoints/``, where timm would download them). Weights in neither
are refused at once, in one line naming both caches, instead of timm retrying the model hub.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from selfsup.errors import ConfigError, MissingFileError


@dataclass(frozen=True)
class Tokens:
    """A Vision Transformer's output tokens, after its final norm (:meth:`TimmBackbone.tokens`).

    Attributes:
        prefix: (B, P, D) the class token (and register tokens, if the model has them).
        patches: (B, N, D) the patch tokens in grid order (row by row); with the masked ones
            dropped, the (B, N_kept, D) kept ones, in grid order.
        pooled: (B, F) the model's pooling of these tokens: what ``forward`` returns when nothing
            is masked.
    """

    prefix: Tensor
    patches: Tensor
    pooled: Tensor


class TimmBackbone(nn.Module):
    """A timm model without its classifier; forward returns the pooled features (B, F).

    Args:
        name: any name ``timm.list_models()`` knows (``resnet18``, ``vit_tiny_patch16_224``, ...).
        in_chans: input channels.
        cifar_stem: replace a ResNet-style stem (7x7 stride-2 conv + max-pool) by a 3x3
            stride-1 conv and no pooling, as is usual for 32 px images.
        pretrained: load timm's pretrained weights of ``name`` from ``pretrained_file`` or the local
            caches (see the module docstring); nothing is downloaded.
        pretrained_file: a weights file (``.safetensors``, ``.pth``, ``.bin``, timm's or the
            model hub's) to load with ``pretrained``; None: the local caches.
        model_kwargs: extra keyword arguments for ``timm.create_model`` (e.g. ``img_size`` for ViTs).

    Example:
        >>> from selfsup.backbones import TimmBackbone
        >>> encoder = TimmBackbone("resnet18", cifar_stem=True)  # random weights; nothing is downloaded
        >>> encoder(torch.randn(2, 3, 32, 32)).shape  # pooled features (B, num_features)
        torch.Size([2, 512])
    """

    def __init__(
        self,
        name: str = "resnet18",
        in_chans: int = 3,
        cifar_stem: bool = False,
        pretrained: bool = False,
        pretrained_file: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if name not in timm.list_models(pretrained=False) and not timm.is_model(name):
            raise ValueError(f"backbone.name={name!r} is not a timm model; see timm.list_models()")
        kwargs = dict(model_kwargs or {})
        if pretrained_file is not None and not pretrained:
            raise ConfigError(
                f"backbone.pretrained_file={pretrained_file} with backbone.pretrained=false: set "
                "backbone.pretrained=true to load it, or leave pretrained_file out"
            )
        if pretrained:
            overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
            kwargs["pretrained_cfg_overlay"] = overlay | local_weights(name, pretrained_file or overlay.get("file"))
        self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs)
        if cifar_stem:
            self._cifar_stem(name, in_chans)
        self.num_features: int = int(self.model.num_features)  # type: ignore[arg-type]
        #: timm's name of the model (``backbone.name``).
        self.model_name: str = name
        self._cifar_stem_on = cifar_stem
        self._model_args: dict[str, Any] = {"in_chans": in_chans, **dict(model_kwargs or {})}

    def _cifar_stem(self, name: str, in_chans: int) -> None:
        conv1 = getattr(self.model, "conv1", None)
        if not isinstance(conv1, nn.Conv2d) or not hasattr(self.model, "maxpool"):
            raise ValueError(
                f"backbone.cifar_stem=true needs a ResNet-style model with conv1 and maxpool; {name!r} has none"
            )
        self.model.conv1 = nn.Conv2d(in_chans, conv1.out_channels, 3, stride=1, padding=1, bias=False)
        self.model.maxpool = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, num_features)."""
        return torch.flatten(self.model(x), 1)

    @property
    def has_tokens(self) -> bool:
        """Whether :meth:`tokens` works: timm's VisionTransformer family (``vit_*``, ``deit_*``)."""
        return isinstance(self.model, VisionTransformer)

    def num_patches(self, size: int) -> int:
        """N, the patch tokens of a (size, size) image."""
        patch: tuple[int, int] = self.model.patch_embed.patch_size  # type: ignore[union-attr,assignment]
        return (size // int(patch[0])) * (size // int(patch[1]))

    def tokens(self, x: Tensor, mask: Tensor | None = None, mask_token: Tensor | None = None) -> Tokens:
        """(B, C, H, W) images -> their :class:`Tokens`, through timm's own layers (``patch_embed``,
        ``_pos_embed``, the blocks and the final norm, as ``forward_features``).

        Args:
            x: the images.
            mask: (B, N) bool, True where a patch is masked, or None.
            mask_token: (D,) with ``mask``: the masked patches' embeddings are replaced by it before
                the position embedding (iBOT, Zhou et al. 2022; BEiT); None: the masked patches
                are dropped after the position embedding and the encoder sees only the others
                (MAE, He et al. 2022), every image masking as many.

        Raises:
            ValueError: the model is not a Vision Transformer, or the mask has the wrong shape or,
                when dropping, masks a different number of patches per image.
        """
        if not self.has_tokens:
            raise ValueError(f"backbone.name={self.model_name} has no patch tokens (timm's VisionTransformers have)")
        m: Any = self.model
        t = m.patch_embed(x)  # (B, N, D), or (B, h, w, D) with dynamic_img_size
        b, d = t.shape[0], t.shape[-1]
        n = t[..., 0].numel() // b
        if mask is not None and tuple(mask.shape) != (b, n):
            raise ValueError(f"mask: expected ({b}, {n}) (images, patches), got {tuple(mask.shape)}")
        if mask is not None and mask_token is not None:
            flat = t.reshape(b, n, d)
            t = torch.where(mask[..., None], mask_token.to(flat.dtype).view(1, 1, d), flat).reshape(t.shape)
        t = m._pos_embed(t)  # (B, P + N, D)
        p = int(m.num_prefix_tokens)
        if mask is not None and mask_token is None:
            kept = (~mask).sum(1)
            if bool((kept != kept[0]).any()):
                raise ValueError(f"mask: dropping needs as many masked patches in every image, got {kept.tolist()}")
            order = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)[:, : int(kept[0])]  # kept, grid order
            t = torch.cat([t[:, :p], t[:, p:].gather(1, order[..., None].expand(-1, -1, d))], dim=1)
        t = m.norm(m.blocks(m.norm_pre(m.patch_drop(t))))
        return Tokens(prefix=t[:, :p], patches=t[:, p:], pooled=torch.flatten(m.forward_head(t, pre_logits=True), 1))

    @property
    def stages(self) -> list[str]:
        """The names of the feature stages :meth:`stage` indexes (timm's ``feature_info``: for a
        ResNet ``act1`` (the stem), ``layer1`` ... ``layer4``; for a ViT each block)."""
        info: list[dict[str, Any]] = self.model.feature_info  # type: ignore[assignment]
        return [str(f["module"]) for f in info]

    def stage(self, x: Tensor, index: int) -> Tensor:
        """(B, C, H, W) -> the feature map (B, C_i, H_i, W_i) of stage ``index`` (timm's
        ``forward_intermediates``, stopping there; a ViT's tokens as a map, without the class token)."""
        out = self.model.forward_intermediates(  # type: ignore[operator]
            x, indices=[index], intermediates_only=True, stop_early=True
        )
        return out[0]  # type: ignore[no-any-return]

    def export_config(self) -> dict[str, Any]:
        """What :func:`selfsup.export.export_encoder` writes: timm's name and arguments, and the
        timm model's own state dict (its keys, so plain timm loads it)."""
        return {
            "architecture": self.model_name,
            "model_args": dict(self._model_args),
            "cifar_stem": self._cifar_stem_on,
            "state_dict": self.model.state_dict(),
        }


# The file names timm asks the model hub for when the pretrained config names none: the
# safetensors version first (timm.models._hub.load_state_dict_from_hf).
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def local_weights(name: str, file: str | None = None) -> dict[str, Any]:
    """Where timm's pretrained weights of ``name`` are on this machine, as the
    ``pretrained_cfg_overlay`` that makes ``timm.create_model`` load them from there and never ask
    the network: ``file`` if given, else the model hub's file in Hugging Face's cache
    (``huggingface_hub.constants.HF_HUB_CACHE``), else the URL's file in torch hub's
    ``checkpoints/`` (``torch.hub.get_dir()``), as timm would download them.

    Raises:
        MissingFileError: ``file`` does not exist, or the weights are in neither cache.
        ConfigError: timm has no pretrained weights of ``name``.
    """
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ConfigError(
            f"backbone.name={name}: timm has no pretrained weights of it (timm.list_models(pretrained=True) "
            "lists the models that have); set backbone.pretrained=false"
        )
    if file is not None:
        if not Path(file).is_file():
            raise MissingFileError(f"backbone.pretrained_file={file}: no such file")
        # A model's own loader (custom_load: a ViT's .npz) is for files of its URL's kind only.
        custom = bool(cfg.custom_load) and Path(file).suffix == Path(_url_file(cfg.url or "")).suffix
        return {"file": str(file), "custom_load": custom}
    from huggingface_hub import constants, try_to_load_from_cache

    looked = []
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else list(HF_FILES)
        for filename in names:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                # timm loads a hub file with the model's own loader only for custom_load="hf" and a named file.
                return {"file": found, "custom_load": cfg.custom_load == "hf" and bool(cfg.hf_hub_filename)}
        looked.append(f"{repo}/{' or '.join(names)} in {constants.HF_HUB_CACHE} (Hugging Face's cache: HF_HUB_CACHE)")
    if cfg.url:
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", _url_file(cfg.url))
        if os.path.isfile(cached):
            return {"file": cached, "custom_load": bool(cfg.custom_load)}
        looked.append(f"{cached} (torch hub's cache: TORCH_HOME)")
    raise MissingFileError(
        f"backbone.pretrained=true: timm's weights of {name} are not on this machine and nothing is "
        f"downloaded; looked for {' and '.join(looked)}; put the file there, or give it with "
        "backbone.pretrained_file=PATH"
    )


def _url_file(url: str | tuple[str, str]) -> str:
    """The name timm caches a download under (a ``(url, filename)`` pair names it)."""
    return url[1] if isinstance(url, tuple) else os.path.basename(urlparse(url).path)
