"""Two processes over gloo compute the same loss and gradients as one process on the whole batch.

Also with CutMix soft targets, the mix drawn within each rank's batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from selfsup.losses import DCL, DCLW, HCL, NTXent
from selfsup.mix import Mix
from tests.conftest import free_port, start_ranks

WORLD, B, V, D = 2, 5, 3, 6
LOSSES = {
    "ntxent": lambda: NTXent(temperature=0.3),
    "dcl": lambda: DCL(temperature=0.3),
    "dclw": lambda: DCLW(temperature=0.3, sigma=0.5, weight_detach=False, weight_scope="global"),
    "hcl": lambda: HCL(temperature=0.3, beta=1.0, tau_plus=0.1),
    # Feature transformation (tests/losses/test_feature_transform.py), given the same draws on every
    # rank: λ, μ and the global batch's permutation.
    "ntxent_ft": lambda: _seeded(NTXent(temperature=0.3, ft_pos_alpha=2.0, ft_neg_alpha=1.6)),
}


def _seeded(loss: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(11)
    return loss


def _global_batch() -> torch.Tensor:
    """(V, WORLD*B, D): view v of global image i; rank r owns images r*B .. (r+1)*B - 1."""
    return torch.randn(V, WORLD * B, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _local(z: torch.Tensor, rank: int) -> torch.Tensor:
    return z[:, rank * B : (rank + 1) * B].reshape(V * B, D)  # view-major, as a rank's step sees it


def _mix(rank: int | None) -> Mix:
    """CutMix within each rank's batch; ``rank=None``: the same mix seen from one process."""
    g = torch.Generator().manual_seed(1)
    parts = [(torch.randperm(B, generator=g), torch.rand(B, generator=g, dtype=torch.float64)) for _ in range(WORLD)]
    if rank is not None:
        return Mix(view=1, partner=parts[rank][0], lam=parts[rank][1])
    partner = torch.cat([perm + r * B for r, (perm, _) in enumerate(parts)])
    return Mix(view=1, partner=partner, lam=torch.cat([lam for _, lam in parts]))


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = {}
        for name, make in LOSSES.items():
            for mixed in (False, True):
                z = _local(_global_batch(), rank).clone().requires_grad_(True)
                loss = make()(z, views=V, mix=_mix(rank) if mixed else None)
                loss.backward()
                results[name + ("_mix" if mixed else "")] = (loss.detach(), z.grad.clone())
        # Control: without gathering, each rank only sees its own negatives.
        results["ntxent_local"] = NTXent(temperature=0.3, gather_distributed=False)(_local(_global_batch(), rank), V)
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.barrier()  # neither rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_gathered_negatives_equal_the_single_process_objective(tmp_path: Path) -> None:
    start_ranks(_worker, (free_port(), str(tmp_path)), WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for name, make, mix in [(n, m, mix) for n, m in LOSSES.items() for mix in (None, _mix(None))]:
        z = _global_batch().reshape(V * WORLD * B, D).clone().requires_grad_(True)
        full = make()(z, views=V, mix=mix)
        name = name + ("_mix" if mix is not None else "")
        full.backward()
        grad = z.grad.view(V, WORLD * B, D)
        # DDP averages over ranks: the mean of the local losses is the global loss ...
        mean_loss = sum(ranks[r][name][0] for r in range(WORLD)) / WORLD
        assert mean_loss.item() == pytest.approx(full.item(), abs=1e-6), name
        # ... and each rank's input gradient (summed over ranks by the gather's backward),
        # divided by the world size as DDP's averaging does, is the single-process gradient.
        for r in range(WORLD):
            local_grad = ranks[r][name][1] / WORLD
            assert torch.allclose(local_grad, _local(grad, r), atol=1e-6), (name, r)
    full = LOSSES["ntxent"]()(_global_batch().reshape(V * WORLD * B, D), views=V)
    local_only = sum(ranks[r]["ntxent_local"] for r in range(WORLD)) / WORLD
    assert abs(local_only.item() - full.item()) > 0.1  # the check above can fail
