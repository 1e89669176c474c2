"""Feature extraction of a frozen model over a data loader."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: DataLoader,
    prepare: Callable[[Tensor], Tensor],
    head: nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """Backbone features (and projections, if a head is given) of every item, in loader order.

    Args:
        backbone: (N, C, H, W) -> (N, F), run in eval mode.
        loader: yields ``(uint8 images, labels, indices)``.
        prepare: uint8 batch -> normalised float input.
        head: optional projector (N, F) -> (N, D).
        device: where to compute.

    Returns:
        ``h`` (N, F), ``labels`` (N,), ``index`` (N,), and ``z`` (N, D) when ``head`` is given;
        all on the CPU.
    """
    was_training = backbone.training
    backbone.eval()
    if head is not None:
        head.eval()
    hs, zs, ys, ids = [], [], [], []
    for x, y, idx in loader:
        h = backbone(prepare(x.to(device)))
        hs.append(h.float().cpu())
        if head is not None:
            zs.append(head(h).float().cpu())
        ys.append(y.cpu())
        ids.append(torch.as_tensor(idx).cpu())
    backbone.train(was_training)
    if head is not None:
        head.train(was_training)
    out = {"h": torch.cat(hs), "labels": torch.cat(ys), "index": torch.cat(ids)}
    if head is not None:
        out["z"] = torch.cat(zs)
    return out


def labelled_features(
    backbone: nn.Module, loader: DataLoader, prepare: Callable[[Tensor], Tensor], device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """Backbone features (N, F) and labels (N,) of the labelled items (label -1 dropped)."""
    f = extract_features(backbone, loader, prepare, device=device)
    keep = f["labels"] >= 0
    return f["h"][keep], f["labels"][keep]
