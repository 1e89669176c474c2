"""Two gloo processes == one process: every method's loss path (values and gradients, Barlow's and
VICReg's global batch statistics included), and MoCo's queue, NPID's bank and iSogCLR's
per-image state after an update."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from selfsup.losses import (
    AMCL,
    DCL,
    DCLW,
    HCL,
    AlignUniform,
    BarlowTwinsLoss,
    BYOLLoss,
    ISogCLR,
    NTXent,
    SimSiamLoss,
    VICRegLoss,
)
from selfsup.methods._memory_bank import MemoryBank
from selfsup.methods._queue import KeyQueue
from tests.conftest import free_port

WORLD, B, V, D, K, BANK = 2, 4, 2, 6, 5, 11


def _global(seed: int, rows: int = V * WORLD * B) -> Tensor:
    """(V, WORLD*B, D) view-major global batch; rank r owns images r*B .. (r+1)*B - 1."""
    return torch.randn(rows, D, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).view(V, -1, D)


def _local(x: Tensor, rank: int) -> Tensor:
    return x[:, rank * B : (rank + 1) * B].reshape(V * B, D)


QUEUE = torch.randn(K, D, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
BANK_ROWS = torch.nn.functional.normalize(_global(8, BANK * V).reshape(-1, D)[:BANK], dim=1)
INDEX = torch.tensor([3, 0, 8, 5, 10, 1, 7, 2])  # the global batch's sample indices
DRAWN = torch.tensor([2, 6, 4, 9])


def _seeded(loss: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(11)
    return loss


def _amcl() -> AMCL:
    """AMCL with φ off its zero start (the same on every rank), so temperatures differ per pair."""
    torch.manual_seed(3)
    loss = AMCL(dim=D, hidden=4).double()
    with torch.no_grad():
        for p in loss.phi.parameters():
            p.copy_(0.4 * torch.randn_like(p))
    return loss


def _isogclr() -> ISogCLR:
    """iSogCLR with state already written for some images (the moving average's branch too)."""
    loss = ISogCLR(tau_lr=0.5, num_samples=BANK).double()
    g = torch.Generator().manual_seed(5)
    seen = torch.tensor([0, 3, 5, 6])
    loss.u[seen] = torch.rand(4, dtype=torch.float64, generator=g) * 5 + 1
    loss.tau[seen] = torch.rand(4, dtype=torch.float64, generator=g) * 0.5 + 0.1
    loss.tau_grad[seen] = torch.randn(4, dtype=torch.float64, generator=g)
    return loss


# Each method's loss call, as the method makes it: (z, k, index) -> loss; k is a detached target.
PATHS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "simclr": lambda z, k, idx: NTXent(0.3)(z, views=V),
    "moco": lambda z, k, idx: NTXent(0.3)(z, views=V, keys=k, negatives=QUEUE, batch_negatives="none"),
    "moco_dclw": lambda z, k, idx: DCLW(0.3, weight_detach=False)(z, views=V, keys=k, negatives=QUEUE),
    "mocov3": lambda z, k, idx: NTXent(0.3)(z, views=V, keys=k, batch_negatives="other_views"),
    "moco_hcl": lambda z, k, idx: HCL(0.3, beta=1.0, tau_plus=0.1)(
        z, views=V, keys=k, negatives=QUEUE, batch_negatives="none"
    ),
    "simclr_align_uniform": lambda z, k, idx: AlignUniform()(z, views=V),
    "simclr_isogclr": lambda z, k, idx: _isogclr()(z, views=V, index=idx),
    "simclr_amcl": lambda z, k, idx: _amcl()(z, views=V),
    # Feature transformation, given the same draws on every rank (λ, μ, the global batch's permutation).
    "simclr_ft": lambda z, k, idx: _seeded(NTXent(0.3, ft_pos_alpha=2.0, ft_neg_alpha=1.6))(z, views=V),
    "moco_ft": lambda z, k, idx: _seeded(NTXent(0.3, ft_pos_alpha=2.0, ft_neg_alpha=1.6))(
        z, views=V, keys=k, negatives=QUEUE, batch_negatives="none"
    ),
    # NNCLR: support-set rows (detached, here k) are the anchors, the predictions z the candidates.
    "nnclr": lambda z, k, idx: NTXent(0.1)(k, views=V, keys=z, batch_negatives="other_views"),
    "npid": lambda z, k, idx: DCL(0.3)(
        z, views=V, keys=BANK_ROWS[idx].repeat(V, 1), negatives=BANK_ROWS[DRAWN], batch_negatives="none"
    ),
    "byol": lambda z, k, idx: BYOLLoss()(z, k, views=V),
    "simsiam": lambda z, k, idx: SimSiamLoss()(z, k, views=V),
    "barlow": lambda z, k, idx: BarlowTwinsLoss(lambd=0.1)(z, views=V),
    "vicreg": lambda z, k, idx: VICRegLoss()(z, views=V),
}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results: dict[str, object] = {}
        idx = INDEX[rank * B : (rank + 1) * B]
        for name, path in PATHS.items():
            z = _local(_global(0), rank).clone().requires_grad_(True)
            loss = path(z, _local(_global(1), rank), idx)
            loss.backward()
            results[name] = (loss.detach(), z.grad.clone())
        torch.manual_seed(0)
        queue = KeyQueue(size=11, dim=D).double()
        queue.enqueue(_local(_global(2), rank)[:B])  # the first view's keys of this rank
        queue.enqueue(_local(_global(3), rank)[:B])  # wraps around
        results["queue"] = (queue.keys.clone(), queue.ptr.clone())
        torch.manual_seed(0)
        bank = MemoryBank(size=BANK, dim=D).double()
        bank.update(idx, _local(_global(4), rank)[:B])
        results["bank"] = bank.rows.clone()
        isogclr = _isogclr()
        isogclr(_local(_global(0), rank), views=V, index=idx)
        results["isogclr"] = isogclr.state_dict()
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _single(name: str) -> tuple[Tensor, Tensor]:
    z = _global(0).reshape(V * WORLD * B, D).clone().requires_grad_(True)
    loss = PATHS[name](z, _global(1).reshape(V * WORLD * B, D), INDEX)
    loss.backward()
    return loss.detach(), z.grad.view(V, WORLD * B, D)


@pytest.mark.distributed
def test_two_processes_equal_one_for_every_method(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for name in PATHS:
        full, grad = _single(name)
        # DDP averages: the mean of the ranks' losses is the global loss, and each rank's input
        # gradient over the world size (the gather's backward sums over ranks) the global one.
        assert (sum(ranks[r][name][0] for r in range(WORLD)) / WORLD).item() == pytest.approx(full.item(), abs=1e-6)
        for r in range(WORLD):
            torch.testing.assert_close(ranks[r][name][1] / WORLD, _local(grad, r), atol=1e-6, rtol=1e-6, msg=name)

    torch.manual_seed(0)
    queue = KeyQueue(size=11, dim=D).double()
    queue.enqueue(_global(2)[0])  # the global batch's first-view keys, rank 0's images first
    queue.enqueue(_global(3)[0])
    for r in range(WORLD):
        torch.testing.assert_close(ranks[r]["queue"][0], queue.keys)
        assert int(ranks[r]["queue"][1]) == int(queue.ptr) == (2 * WORLD * B) % 11
    torch.manual_seed(0)
    bank = MemoryBank(size=BANK, dim=D).double()
    bank.update(INDEX, _global(4)[0])
    for r in range(WORLD):
        torch.testing.assert_close(ranks[r]["bank"], bank.rows)
    isogclr = _isogclr()
    isogclr(_global(0).reshape(V * WORLD * B, D), views=V, index=INDEX)
    for r in range(WORLD):  # every rank holds every image's state, the single process's
        for key, value in isogclr.state_dict().items():
            torch.testing.assert_close(ranks[r]["isogclr"][key], value, msg=key)
