"""A preview of what the encoder finds similar: each held-out query image beside its nearest
training images (``neighbours.png``), the look at an unlabelled run that no probe gives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from selfsup.eval.display import as_rgb, stored_as_float
from selfsup.run_dir import atomic_path

NEIGHBOURS = "neighbours.png"
#: Held-out images shown (rows), neighbours per image (columns), training images searched.
QUERIES, K, GALLERY = 8, 8, 2048
CELL = 64  # the side a cell is drawn at (images are scaled up or down to it)
GAP = 4  # white pixels between cells; twice that after the query column


@torch.no_grad()
def nearest(
    encoder: nn.Module, prepare: Callable[[Tensor], Tensor], queries: Tensor, gallery: Tensor, k: int, batch: int = 256
) -> Tensor:
    """(Q, k) indices into ``gallery`` of each query's ``k`` nearest images by the cosine of the
    encoder's features, nearest first. Both are uint8 (N, C, H, W) batches; ``prepare`` makes the
    encoder's input (the evaluation's: resize and normalise). The encoder runs in eval mode and is
    put back in its own mode."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device

    def embed(x: Tensor) -> Tensor:
        parts = [encoder(prepare(x[i : i + batch].to(device))).float() for i in range(0, len(x), batch)]
        return F.normalize(torch.cat(parts).flatten(1), dim=1)

    try:
        q, g = embed(queries), embed(gallery)
    finally:
        encoder.train(was_training)
    return (q @ g.T).topk(min(k, len(gallery)), dim=1).indices.cpu()


def _cell(image: Tensor) -> Image.Image:
    """A stored (C, H, W) image as an RGB cell of :data:`CELL` px: grey repeated, RGB as it is, other
    channel counts in false colour (:func:`selfsup.eval.display.as_rgb`)."""
    if image.dtype == torch.uint8 and image.shape[0] in (1, 3):  # as it is stored, no rescaling
        x = image if image.shape[0] == 3 else image.expand(3, -1, -1)
    else:
        x = (as_rgb(stored_as_float(image)[None])[0] * 255).round().to(torch.uint8)
    return Image.fromarray(x.permute(1, 2, 0).numpy()).resize((CELL, CELL), Image.Resampling.NEAREST)


def neighbour_grid(queries: Tensor, gallery: Tensor, indices: Tensor) -> Image.Image:
    """Rows: each query, a wider gap, then its neighbours ``gallery[indices[row]]`` left to right."""
    rows, k = indices.shape
    width = (k + 1) * CELL + (k + 1) * GAP
    grid = Image.new("RGB", (width, rows * CELL + (rows - 1) * GAP), "white")
    for r in range(rows):
        y = r * (CELL + GAP)
        grid.paste(_cell(queries[r]), (0, y))
        for c, j in enumerate(indices[r].tolist()):
            grid.paste(_cell(gallery[j]), (CELL + 2 * GAP + c * (CELL + GAP), y))
    return grid


def write_neighbours(
    encoder: nn.Module, prepare: Callable[[Tensor], Tensor], queries: Tensor, gallery: Tensor, out: Path
) -> Path:
    """``out`` (a PNG, written whole or not at all): :func:`neighbour_grid` of :func:`nearest`, the
    :data:`K` nearest of ``gallery`` for each of ``queries``."""
    grid = neighbour_grid(queries, gallery, nearest(encoder, prepare, queries, gallery, K))
    with atomic_path(out) as tmp:
        grid.save(tmp, format="PNG")
    return out
