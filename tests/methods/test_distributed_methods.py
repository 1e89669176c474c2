"""Two gloo processes == one process, for every method with every loss it accepts (the registry,
:mod:`selfsup.registry`): the loss, the gradients DDP averages, and the whole state after an
optimiser step (momentum teachers, queues, memory banks, per-image temperatures, and whatever a
method adds), on the same views.

Each rank runs the method's real objective on its half of a global batch of views made once; the
single process runs it on the whole batch. Batch norm reads running statistics (eval mode): what
differs between the layouts is then only what the method and its loss gather across ranks, which
is what this checks. A method's own randomness must not depend on how the batch is split (a draw
of a fixed size, or per image), as the contract says (selfsup/methods/base.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch import Tensor

from selfsup import registry
from selfsup.augment import Views
from selfsup.build import build_module
from selfsup.methods._memory_bank import MemoryBank
from selfsup.methods._queue import KeyQueue
from selfsup.methods.base import Method
from tests.conftest import TINY, compose_cfg, free_port, start_ranks

WORLD, B, IMAGES = 2, 4, 16  # B images per rank; IMAGES: the training set's size (per-image state)
CASES = [(m, loss) for m in registry.methods() for loss in registry.method_losses(m)]
LR = 0.05


def tiny_cfg(method: str, loss: str) -> DictConfig:
    cfg = compose_cfg([*TINY, f"method={method}", f"loss={loss}"])
    for key, value in (("hidden_dims", [16]), ("out_dim", 8)):  # narrow, where the head option has the key
        if key in cfg.head:
            cfg.head[key] = value
    return cfg


def eval_module(cfg: DictConfig) -> Method:
    torch.manual_seed(0)
    module = build_module(cfg).double().eval()
    for m in module.modules():  # what Method.setup sizes from the training set
        if hasattr(m, "resize_per_sample"):
            m.resize_per_sample(IMAGES)
    return module


def global_views(module: Method) -> tuple[Views, Tensor]:
    """The global batch's views (WORLD*B images) and the images' indices in the training set."""
    torch.manual_seed(1)
    x = torch.randint(0, 256, (WORLD * B, 1, 12, 12), dtype=torch.uint8)
    views = module.view_maker(x)
    index = torch.randperm(IMAGES, generator=torch.Generator().manual_seed(2))[: WORLD * B]
    return Views([g.double() for g in views.groups], views.count, None), index


def _share(views: Views, index: Tensor, rank: int) -> tuple[Views, Tensor]:
    """Rank ``rank``'s images: B of each view, view-major, as its own step sees them."""
    groups = []
    for g in views.groups:
        per_view = g.view(-1, WORLD * B, *g.shape[1:])
        groups.append(per_view[:, rank * B : (rank + 1) * B].reshape(-1, *g.shape[1:]))
    return Views(groups, views.count, None), index[rank * B : (rank + 1) * B]


def _step(module: Method, views: Views, index: Tensor) -> dict[str, Any]:
    """One step: the loss, each trained parameter's gradient (averaged over the ranks, as DDP
    does), then an SGD step and the method's update after it; the state it leaves."""
    torch.manual_seed(3)  # the same draws on every rank and in the single process
    loss, _, _ = module.objective(views, index)
    loss.backward()
    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    grads = {n: p.grad.clone() if p.grad is not None else None for n, p in params.items()}
    if dist.is_initialized():
        for g in grads.values():
            if g is not None:
                dist.all_reduce(g)
                g /= WORLD
        loss = loss.detach().clone()
        dist.all_reduce(loss)
        loss /= WORLD
    with torch.no_grad():
        for n, p in params.items():
            if grads[n] is not None:
                p -= LR * grads[n]
    module.after_optimizer_step(0, 10)
    return {"loss": loss.detach(), "grads": grads, "state": {k: v.clone() for k, v in module.state_dict().items()}}


D, K, BANK = 6, 11, 11
BANK_INDEX = torch.tensor([3, 0, 8, 5, 10, 1, 7, 2])


def _rows(seed: int, rows: int) -> Tensor:
    return torch.randn(rows, D, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _queue_and_bank(part: slice) -> dict[str, Any]:
    """The helpers the methods keep state in, fed the images ``part`` of two global batches."""
    torch.manual_seed(0)
    queue = KeyQueue(size=K, dim=D).double()
    queue.enqueue(_rows(2, WORLD * B)[part])
    queue.enqueue(_rows(3, WORLD * B)[part])  # wraps around
    torch.manual_seed(0)
    bank = MemoryBank(size=BANK, dim=D).double()
    bank.update(BANK_INDEX[part], _rows(4, WORLD * B)[part])
    return {"keys": queue.keys.clone(), "ptr": int(queue.ptr), "bank": bank.rows.clone()}


def _worker(rank: int, port: int, out: str, cfgs: dict[str, DictConfig]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = {}
        for case, cfg in cfgs.items():
            module = eval_module(cfg)
            views, index = global_views(module)
            results[case] = _step(module, *_share(views, index, rank))
        results["queue_and_bank"] = _queue_and_bank(slice(rank * B, (rank + 1) * B))
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _compare(got: dict[str, Any], want: dict[str, Any]) -> None:
    torch.testing.assert_close(got["loss"], want["loss"], rtol=1e-9, atol=1e-10, msg="the loss")
    assert got["grads"].keys() == want["grads"].keys()
    for name, grad in want["grads"].items():
        if grad is None:
            assert got["grads"][name] is None, name
        else:
            # atol 1e-8: timm resamples a ViT's position embedding for another view size in float32
            # (resample_abs_pos_embed), so that gradient (local views of iBOT) agrees to ~1e-9 only.
            torch.testing.assert_close(got["grads"][name], grad, rtol=1e-8, atol=1e-8, msg=f"grad of {name}")
    assert got["state"].keys() == want["state"].keys()
    for key, value in want["state"].items():
        torch.testing.assert_close(got["state"][key], value, rtol=1e-8, atol=1e-10, msg=f"state {key}")


@pytest.mark.distributed
def test_two_processes_equal_one_for_every_method_and_loss(tmp_path: Path) -> None:
    """One spawn of two ranks for every case (each case's failure is named below)."""
    cfgs = {f"{method}-{loss}": tiny_cfg(method, loss) for method, loss in CASES}  # composed once, here
    start_ranks(_worker, (free_port(), str(tmp_path), cfgs), WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    failed = []
    for case, cfg in cfgs.items():
        module = eval_module(cfg)
        want = _step(module, *global_views(module))
        for r, got in enumerate(ranks):
            try:
                _compare(got[case], want)
            except AssertionError as e:
                failed.append(f"{case}, rank {r}: {str(e).splitlines()[0]}")
    assert not failed, "two processes differ from one:\n" + "\n".join(failed)
    want = _queue_and_bank(slice(None))
    assert want["ptr"] == (2 * WORLD * B) % K
    for got in ranks:  # the helpers methods keep state in, past their wrap-around (rank 0's images first)
        got = got["queue_and_bank"]
        torch.testing.assert_close(got["keys"], want["keys"])
        torch.testing.assert_close(got["bank"], want["bank"])
        assert got["ptr"] == want["ptr"]
