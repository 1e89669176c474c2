"""Feature extraction of a frozen model over a data loader."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader


@contextlib.contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """``modules`` in eval mode (BatchNorm on its running statistics, which stay untouched), each
    put back in its own mode afterwards."""
    present = [m for m in modules if m is not None]
    modes = [m.training for m in present]
    for m in present:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(present, modes, strict=True):
            m.train(mode)


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
    hs, zs, ys, ids = [], [], [], []
    with eval_mode(backbone, head):
        for x, y, idx in loader:
            h = backbone(prepare(x.to(device)))
            hs.append(h.float().cpu())
            if head is not None:
                zs.append(head(h).float().cpu())
            ys.append(y.cpu())
            ids.append(torch.as_tensor(idx).cpu())
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
