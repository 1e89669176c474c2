"""MoCo's shuffle BN (He et al. 2020, sec. 3.3) with two real gloo processes: the keys come back
as this rank's images' rows in their order; in eval mode they equal the unshuffled forward row for
row, in train mode they are what the key encoder gives each rank's shard of the shuffled global
batch (recomputed here by hand) and differ from the unshuffled forward. On one process: a no-op."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from selfsup.augment import Views
from selfsup.build import build_module
from selfsup.methods import MoCo
from tests.conftest import TINY, compose_cfg, free_port, start_ranks

WORLD, B, V = 2, 4, 2
SEED = 5  # the global RNG just before teach(): rank 0 draws the shuffle from it


def _moco(layout: str) -> MoCo:
    torch.manual_seed(0)
    cfg = compose_cfg([*TINY, "method=moco", "method.module.shuffle_bn=true", f"method.module.forward_layout={layout}"])
    module = build_module(cfg)
    assert isinstance(module, MoCo)
    return module


def _images() -> torch.Tensor:
    """(V, WORLD*B, 1, 12, 12): view v of global image i; rank r owns images r*B .. (r+1)*B - 1."""
    return torch.randn(V, WORLD * B, 1, 12, 12, generator=torch.Generator().manual_seed(1))


def _views(x: torch.Tensor) -> Views:
    """A view-major (V*B, ...) group of the given (V, B, ...) images."""
    return Views(groups=[x.flatten(0, 1)], count=V, mix=None)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = {}
        for layout in ("per_view", "joint"):
            module = _moco(layout)
            views = _views(_images()[:, rank * B : (rank + 1) * B])
            for mode in ("eval", "train"):  # eval first: both ranks hold the same BN running statistics
                module.train(mode == "train")
                torch.manual_seed(SEED)
                shuffled = module.teach(views)
                module.shuffle_bn = False
                plain = module.teach(views)
                module.shuffle_bn = True
                results[layout, mode] = (shuffled, plain)
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.barrier()  # neither rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


def _by_hand(module: MoCo, layout: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each rank's (features, keys) with shuffle BN, in one process: every view's global batch
    permuted by rank 0's draw, rank r's shard through the key encoder (per view or both views at
    once, as ``layout``), the outputs put back in the images' order."""
    torch.manual_seed(SEED)
    perms = torch.stack([torch.randperm(WORLD * B) for _ in range(V)])
    x = _images()
    teacher = module.momentum_teacher
    outs: list[list[torch.Tensor]] = [[torch.empty(0)] * V for _ in range(2)]  # [h|k][view] in shuffled order
    shards = []
    for r in range(WORLD):
        shard = torch.stack([x[v, perms[v, r * B : (r + 1) * B]] for v in range(V)])  # (V, B, ...)
        if layout == "per_view":
            h = [teacher.backbone(shard[v]) for v in range(V)]
            k = [teacher.head(hv) for hv in h]
        else:
            hh = teacher.backbone(shard.flatten(0, 1))
            h, k = list(hh.split(B)), list(teacher.head(hh).split(B))
        shards.append((h, k))
    for i in range(2):
        for v in range(V):
            outs[i][v] = torch.cat([shards[r][i][v] for r in range(WORLD)])
    unshuffled = [[outs[i][v][perms[v].argsort()] for v in range(V)] for i in range(2)]
    return [
        tuple(torch.cat([unshuffled[i][v][r * B : (r + 1) * B] for v in range(V)]) for i in range(2))  # type: ignore[misc]
        for r in range(WORLD)
    ]


@pytest.mark.distributed
def test_shuffle_bn_with_two_processes(tmp_path: Path) -> None:
    start_ranks(_worker, (free_port(), str(tmp_path)), WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for layout in ("per_view", "joint"):
        want = _by_hand(_moco(layout).train(), layout)
        for r in range(WORLD):
            (shuffled_eval, plain_eval) = ranks[r][layout, "eval"]
            for a, b in zip(shuffled_eval, plain_eval, strict=True):
                assert a.shape == (V * B, a.shape[1])
                torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
            (shuffled, plain) = ranks[r][layout, "train"]
            for a, b, c in zip(shuffled, plain, want[r], strict=True):
                torch.testing.assert_close(a, c, rtol=0, atol=1e-5)
                assert not torch.allclose(a, b, atol=1e-3), (layout, r)


def test_shuffle_bn_is_a_no_op_on_one_process() -> None:
    module = _moco("per_view")
    views = _views(_images()[:, :B])
    state = torch.get_rng_state()
    shuffled = module.teach(views)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn
    module.shuffle_bn = False
    for a, b in zip(shuffled, module.teach(views), strict=True):
        assert torch.equal(a, b)
