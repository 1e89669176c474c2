"""Distillation from a frozen teacher loaded from a local file: the student's features, through its
head and a linear map, regress the teacher's features of the same view."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.errors import ConfigError, MissingFileError
from selfsup.methods.base import Method
from selfsup.schema import PositiveInt


def _timm_teacher(name: str, weights: str, in_chans: int) -> tuple[nn.Module, dict[str, Any]]:
    """timm's ``name`` with ``weights`` (a file), and its normalisation and input size from timm's
    pretrained config."""
    import timm.data

    from selfsup.backbones import TimmBackbone

    model = TimmBackbone(name, in_chans=in_chans, pretrained=True, pretrained_file=weights).model
    data = timm.data.resolve_data_config({}, model=model)
    # built for in_chans (timm adapts the weights' first layer); timm's config names its source's channels
    size = [in_chans, *data["input_size"][1:]]
    return model, {"mean": list(data["mean"]), "std": list(data["std"]), "input_size": size}


class Teacher(nn.Module):
    """A frozen encoder (eval mode, no gradient) that maps the student's views to its features.

    The teacher is a selfsup export (``RUN_DIR/export``: any backbone a run trained, read with
    :func:`~selfsup.export.load_exported`), or any timm model ``name`` with a weights file
    (``.safetensors``, ``.pth``); nothing is downloaded. It sees each view as it was trained to:
    the student's normalisation undone and its own applied (the export's, or timm's pretrained
    config's; a 3-channel normalisation averaged for a teacher of other channels), resized
    (bilinear) to its input size when that differs.

    The teacher's weights are not in the method's checkpoints: they are the file's. A checkpoint
    keeps the weights' SHA-256 (``fingerprint``), and resuming with another teacher is refused.

    With ``embed_cache`` the teacher's features of each training image are computed once, the
    first time the image is drawn, from the image itself (resized, not augmented), and kept (in
    the checkpoint too: training-set size × the teacher's width floats); every view of the image
    then regresses them. Without it, the teacher sees the same augmented view as the student.

    Args:
        path: a selfsup export directory, or a weights file with ``name``.
        name: the timm model of the weights file ``path``; None for an export.
        in_chans: the data's channels (the teacher's must match).
        embed_cache: keep each training image's teacher features (see above).

    Example:
        >>> import tempfile
        >>> from selfsup.backbones import SmallCNN
        >>> from selfsup.export import export_encoder
        >>> from selfsup.methods.distill import Teacher
        >>> out = export_encoder(SmallCNN(in_chans=1), Path(tempfile.mkdtemp()) / "export", mean=[0.5], std=[0.25],
        ...                      image_size=16, card={})
        >>> teacher = Teacher(str(out), in_chans=1)
        >>> teacher(torch.randn(4, 1, 16, 16), mean=torch.zeros(1), std=torch.ones(1)).shape
        torch.Size([4, 128])
    """

    model: nn.Module
    mean: Tensor
    std: Tensor
    fingerprint: Tensor
    cache: Tensor
    cached: Tensor

    def __init__(
        self, path: str, name: str | None = None, in_chans: PositiveInt = 3, embed_cache: bool = False
    ) -> None:
        super().__init__()
        where = Path(path)
        if where.is_dir():
            if name is not None:
                raise ConfigError(
                    f"method.module.teacher.name={name} with an export directory "
                    f"(method.module.teacher.path={path}): an export names its own model; set name=null"
                )
            if not (where / "config.json").is_file():
                raise MissingFileError(
                    f"method.module.teacher.path={path}: no config.json there; expected a selfsup export "
                    "(RUN_DIR/export) or a weights file with method.module.teacher.name"
                )
            from selfsup.export import load_exported

            model = load_exported(where)
            config = json.loads((where / "config.json").read_text())["pretrained_cfg"]
        elif where.is_file():
            if name is None:
                raise ConfigError(
                    f"method.module.teacher.path={path} is a weights file: set method.module.teacher.name to "
                    "its timm model (resnet50, vit_small_patch14_dinov2, ...)"
                )
            model, config = _timm_teacher(name, str(where), in_chans)
        else:
            raise MissingFileError(f"method.module.teacher.path={path}: no such export directory or weights file")
        channels = int(config["input_size"][0])
        if channels != in_chans:
            raise ConfigError(
                f"method.module.teacher.path={path} takes {channels}-channel images and the data has {in_chans}"
            )
        model.eval().requires_grad_(False)
        # Not a registered submodule: its weights stay out of the state_dict (and the optimiser);
        # _apply moves it with the rest.
        object.__setattr__(self, "model", model)
        self.num_features = int(model.num_features)  # type: ignore[arg-type]
        self.input_size = (int(config["input_size"][1]), int(config["input_size"][2]))
        mean, std = [float(v) for v in config["mean"]], [float(v) for v in config["std"]]
        if len(mean) != channels:  # timm's RGB normalisation for a model built with other channels
            mean, std = [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        digest = hashlib.sha256()
        for key, value in sorted(model.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().float().contiguous().numpy().tobytes())
        # The weights' SHA-256, in the checkpoint (uint8: no precision setting converts it).
        self.register_buffer("fingerprint", torch.tensor(list(digest.digest()), dtype=torch.uint8))
        self.path = path
        self.embed_cache = embed_cache
        if embed_cache:
            self.register_buffer("cache", torch.zeros(0, self.num_features))
            self.register_buffer("cached", torch.zeros(0, dtype=torch.bool))
            self.resize_per_sample: Callable[[int], None] = self._resize_cache

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> nn.Module:
        self.model._apply(fn)
        return super()._apply(fn, recurse)

    def _resize_cache(self, n: int) -> None:
        """One row per training image (Method.setup calls it before a checkpoint is loaded)."""
        self.cache = torch.zeros(n, self.num_features, dtype=self.cache.dtype, device=self.cache.device)
        self.cached = torch.zeros(n, dtype=torch.bool, device=self.cached.device)

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        saved = state_dict.get(prefix + "fingerprint")
        if saved is not None and not torch.equal(saved.cpu(), self.fingerprint.cpu()):
            raise ConfigError(
                f"method.module.teacher.path={self.path}: the checkpoint was trained with another teacher "
                f"(weights SHA-256 {bytes(saved.tolist()).hex()[:12]}…, this one's "
                f"{bytes(self.fingerprint.tolist()).hex()[:12]}…); resume with that teacher"
            )
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[arg-type]

    @torch.no_grad()
    def forward(self, x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        """(N, C, H, W) views normalised with ``mean`` and ``std`` -> the teacher's features (N, T)."""
        x = (x * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1) - self.mean) / self.std
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        return torch.flatten(self.model(x.to(self.mean.dtype)), 1)

    @torch.no_grad()
    def cached_features(self, images: Tensor, index: Tensor, prepare: Callable[[Tensor], Tensor],
                        mean: Tensor, std: Tensor) -> Tensor:  # fmt: skip
        """(B, T): each image's kept features, computed (from ``prepare(images)``) where not yet kept."""
        if self.cache.shape[0] == 0:
            raise ConfigError("method.module.teacher.embed_cache=true needs the training set's size (Method.setup)")
        new = ~self.cached[index]
        if bool(new.any()):
            self.cache[index[new]] = self(prepare(images[new]), mean, std).to(self.cache.dtype)
            self.cached[index[new]] = True
        return self.cache[index]


class Distill(Method):
    """The student (backbone and head, any architecture) regresses a frozen teacher's features:
    backbone → head → a linear map to the teacher's width (trained with the rest, truncated-normal
    initialised with std 0.02), mean squared error to the teacher's features of the same view
    (``loss=distill``, :class:`~selfsup.losses.distill.DistillLoss`).

    LightlyTrain's distillation (Lightly, github.com/lightly-ai/lightly-train, ``distillationv2``),
    in the line of knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural
    Network") and of feature regression onto a pretrained teacher (FitNets, Romero et al. 2015).
    LightlyTrain regresses the patch features of the teacher's last two blocks, through a linear
    map of the student's feature map, with mixup of the images; here the student's pooled
    features regress the teacher's pooled features (which ``embed_cache`` can keep per image), and
    the views are the augmentation's.

    One view per image suffices (``augment.views: 1``); with more, every view regresses its own.

    Args:
        teacher: the frozen :class:`Teacher`.
        *args, **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    min_views = 1
    local_views_ok = False
    mix_ok = False

    teacher_net: Teacher

    def __init__(self, *args: Any, teacher: Teacher, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher_net = teacher
        self.regressor = nn.Linear(self.head_dim, teacher.num_features)
        nn.init.trunc_normal_(self.regressor.weight, std=0.02)
        nn.init.zeros_(self.regressor.bias)
        self._images: Tensor | None = None

    @classmethod
    def stand_in_overrides(cls, workdir: Path, channels: int) -> list[str]:
        """A teacher for a run with nothing of the user's: a small CNN of random weights exported to
        ``workdir/stand_in_teacher_{channels}ch`` (its features are a fixed random map of the image)."""
        from selfsup.backbones import SmallCNN
        from selfsup.export import export_encoder

        out = Path(workdir) / f"stand_in_teacher_{channels}ch"  # one per channel count
        if not (out / "config.json").is_file():
            torch.manual_seed(0)
            export_encoder(SmallCNN(in_chans=channels, widths=[8, 16, 32]), out, mean=[0.5] * channels,
                           std=[0.25] * channels, image_size=16, card={"method": "random weights"})  # fmt: skip
        return [f"method.module.teacher.path={out}"]

    def trained_modules(self) -> list[nn.Module]:
        return [*super().trained_modules(), self.regressor]

    def training_step(self, batch: tuple[Any, Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        self._images = batch[0]  # the un-augmented images, for the teacher's kept features
        try:
            return super().training_step(batch, batch_idx)
        finally:
            self._images = None

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)  # (V*B, F)
        z = self.by_view(self.head, h, views.count)  # (V*B, D)
        mean, std = self.view_maker.mean, self.view_maker.std  # type: ignore[attr-defined]
        if self.teacher_net.embed_cache:
            if not isinstance(self._images, Tensor):
                raise ConfigError(
                    "method.module.teacher.embed_cache=true needs the training batch's images as one uint8 "
                    "tensor (augment.backend=batched)"
                )
            kept = self.teacher_net.cached_features(self._images, index, self.view_maker.prepare, mean, std)
            target = kept.repeat(views.count, 1)
        else:
            target = torch.cat([self.teacher_net(self.to_memory_format(g), mean, std) for g in views.groups])
        return self.criterion(self.regressor(z), target=target), h, z
