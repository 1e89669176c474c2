"""Per-layer evaluation: the final report's probe, kNN and RankMe on intermediate stages.

Skean et al., "Layer by Layer: Uncovering Hidden Representations in Language Models" (ICML 2025)
find that intermediate layers often give better features than the last one, and that label-free
measures of a layer (entropy, rank; RankMe here) track where. ``eval.layers`` lists stage indices
of the backbone (timm's ``feature_info`` order for a timm model: for a ResNet 0 is the stem, 1-4
are ``layer1``-``layer4``; one per width for the small CNN; negative indices count from the end).
Each stage's feature map is averaged over its spatial positions, and the result is evaluated like
the final features, as a row of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from torch import Tensor, nn

from selfsup.errors import ConfigError

T = TypeVar("T")


LAYER_ROW = "pretrained:"  # the final report's row of stage NAME is "pretrained:NAME"


def layer_row(name: str) -> str:
    """The final report's row name for stage ``name``."""
    return LAYER_ROW + name


def split_rows(rows: Mapping[str, T]) -> tuple[dict[str, T], dict[str, T]]:
    """``rows`` of the final report (other than ``pretrained``) as (stages by name, baselines)."""
    layers = {k.removeprefix(LAYER_ROW): v for k, v in rows.items() if k.startswith(LAYER_ROW)}
    baselines = {k: v for k, v in rows.items() if k != "pretrained" and not k.startswith(LAYER_ROW)}
    return layers, baselines


class StageFeatures(nn.Module):
    """(B, C, H, W) -> (B, C_i): the spatial mean of stage ``index`` of ``backbone``.

    Args:
        backbone: a backbone with ``stage(x, index)`` (``TimmBackbone``, ``SmallCNN``).
        index: the stage, as :func:`stage_encoders` checked it.
    """

    def __init__(self, backbone: nn.Module, index: int) -> None:
        super().__init__()
        self.backbone, self.index = backbone, index

    def forward(self, x: Tensor) -> Tensor:
        fmap = self.backbone.stage(x, self.index)  # type: ignore[operator]
        return fmap.float().mean(dim=(2, 3)) if fmap.ndim == 4 else fmap.float().flatten(1)


def stage_encoders(backbone: nn.Module, layers: Sequence[int]) -> dict[str, StageFeatures]:
    """``{stage name: encoder}`` for each index of ``layers`` (``eval.layers``), in their order.

    Raises:
        ConfigError: ``eval.layers`` names a stage the backbone does not have, or the backbone has
            no stages to index.
    """
    if not layers:
        return {}
    backbone = getattr(backbone, "_orig_mod", backbone)  # a torch.compile wrapper: the module inside
    names = getattr(backbone, "stages", None)
    if names is None:
        raise ConfigError(f"eval.layers={list(layers)}: {type(backbone).__name__} has no stages to evaluate")
    out: dict[str, StageFeatures] = {}
    for i in layers:
        if not -len(names) <= i < len(names):
            raise ConfigError(
                f"eval.layers={list(layers)}: {i} is not a stage of the backbone, which has {len(names)} "
                f"(0..{len(names) - 1}: {', '.join(names)}; negative counts from the end)"
            )
        out[names[i]] = StageFeatures(backbone, i % len(names))
    return out
