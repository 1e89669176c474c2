"""method=swav: the loss against a float64 loop of the paper's Sinkhorn-Knopp and swapped
prediction (queue rows included), Sinkhorn's marginals, the objective as that loss of the method's
own networks, the frozen and rescaled prototypes, and the queue: two DDP processes equal one, and
a SIGKILLed run with the queue in use resumes to the uninterrupted one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch import Tensor

from selfsup.losses._sinkhorn import sinkhorn
from selfsup.losses.swav import SwAVLoss
from tests.conftest import free_port, start_ranks
from tests.losses.reference_methods import assert_same, leaf
from tests.methods.test_distributed_methods import WORLD, _compare, _share, _step, eval_module, global_views, tiny_cfg
from tests.test_resume import assert_resumes_to_the_uninterrupted_result


def sinkhorn_reference(scores: Tensor, epsilon: float, iterations: int) -> Tensor:
    """The paper's Eq. 3 solved as its Algorithm 1 does, one entry at a time: Q = exp(S^T / ε),
    scaled to total 1, then ``iterations`` times each prototype's row to 1/K and each sample's
    column to 1/N; the codes are N·Q^T (each sample's row sums to 1)."""
    n, k = scores.shape
    q = [[torch.exp(scores[j, i] / epsilon) for j in range(n)] for i in range(k)]
    total = sum(sum(row) for row in q)
    q = [[x / total for x in row] for row in q]
    for _ in range(iterations):
        q = [[x / (sum(row) * k) for x in row] for row in q]
        cols = [sum(q[i][j] for i in range(k)) for j in range(n)]
        q = [[q[i][j] / (cols[j] * n) for j in range(n)] for i in range(k)]
    return torch.stack([torch.stack([q[i][j] * n for i in range(k)]) for j in range(n)])


def swav_reference(
    z: Tensor, views: int, assign: int, prototypes: Tensor, temperature: float, epsilon: float, iterations: int,
    queue: list[Tensor] | None = None,
) -> Tensor:  # fmt: skip
    b = z.shape[0] // views
    unit = [z[r] / z[r].norm() for r in range(z.shape[0])]
    scores = torch.stack([torch.stack([u @ c for c in prototypes]) for u in unit])  # (V*B, K)
    total = torch.zeros((), dtype=torch.float64)
    for a in range(assign):
        own = scores[a * b : (a + 1) * b].detach()
        if queue is not None:
            own = torch.cat([queue[a] @ prototypes.detach().t(), own])
        q = sinkhorn_reference(own, epsilon, iterations)[-b:]
        sub = torch.zeros((), dtype=torch.float64)
        for v in range(views):
            if v == a:
                continue
            for i in range(b):
                s = scores[v * b + i] / temperature
                log_p = s - torch.log(torch.exp(s).sum())
                sub = sub - (q[i] * log_p).sum() / b
        total = total + sub / (views - 1)
    return total / assign


def _loss(k: int, dim: int) -> SwAVLoss:
    torch.manual_seed(0)
    loss = SwAVLoss(in_dim=dim, prototypes=k, temperature=0.1, epsilon=0.3, sinkhorn_iterations=3).double()
    loss.normalize_prototypes()
    return loss


@pytest.mark.parametrize("views,assign,queued", [(2, 2, 0), (4, 2, 0), (3, 1, 5)])
def test_the_loss_is_the_papers(views: int, assign: int, queued: int) -> None:
    b, dim, k = 4, 5, 6
    z = leaf(views * b, dim, seed=views)
    loss = _loss(k, dim)
    queue = [torch.nn.functional.normalize(leaf(queued, dim, seed=10 + a).detach(), dim=1) for a in range(assign)]
    got = loss(z, views=views, assign=assign, queue=queue if queued else None)
    want = swav_reference(z, views, assign, loss.prototypes.weight, 0.1, 0.3, 3, queue if queued else None)
    assert_same(got, want, [z, loss.prototypes.weight])


def test_sinkhorn_gives_each_prototype_an_equal_share_and_each_sample_one_code() -> None:
    scores = (
        torch.nn.functional.normalize(leaf(12, 4, seed=0).detach(), dim=1)
        @ torch.nn.functional.normalize(leaf(3, 4, seed=1).detach(), dim=1).t()
    )
    q = sinkhorn(scores, epsilon=0.5, iterations=200)
    torch.testing.assert_close(q.sum(1), torch.ones(12, dtype=torch.float64))  # a distribution per sample
    torch.testing.assert_close(q.sum(0), torch.full((3,), 12 / 3, dtype=torch.float64))  # N/K per prototype
    torch.testing.assert_close(sinkhorn(scores, 0.5, 3), sinkhorn_reference(scores, 0.5, 3))


def test_the_objective_is_the_loss_of_its_own_projections_with_unit_prototypes() -> None:
    module = eval_module(tiny_cfg("swav", "swav"))
    with torch.no_grad():
        module.loss_fn.prototypes.weight.mul_(3.0)  # rescaled to unit rows by the step
    views, index = global_views(module)
    loss, h, z = module.objective(views, index)
    torch.testing.assert_close(
        module.loss_fn.prototypes.weight.norm(dim=1),
        torch.ones(module.loss_fn.prototypes.weight.shape[0], dtype=torch.float64),
    )
    projections = torch.cat([module.head(module.backbone(g)) for g in views.groups])
    assert views.global_count == 2 and views.count > 2  # multi-crop: 2 global views, the rest local
    cfg = module.loss_fn
    want = swav_reference(
        projections, views.count, 2, cfg.prototypes.weight, cfg.temperature, cfg.epsilon, cfg.sinkhorn_iterations
    )
    params = [p for m in module.trained_modules() for p in m.parameters() if p.requires_grad]
    assert any(p is cfg.prototypes.weight for p in params)  # the prototypes are trained
    assert_same(loss, want, params)
    torch.testing.assert_close(z, projections)


def test_the_prototypes_get_no_update_in_the_first_epochs() -> None:
    module = eval_module(tiny_cfg("swav", "swav"))
    views, index = global_views(module)
    module.objective(views, index)[0].backward()
    weight = module.loss_fn.prototypes.weight
    assert weight.grad is not None
    module.on_before_optimizer_step(torch.optim.SGD([weight], lr=0.1))  # epoch 0 < freeze_prototypes_epochs
    assert weight.grad is None
    module.freeze_prototypes_epochs = 0
    module.objective(views, index)[0].backward()
    module.on_before_optimizer_step(torch.optim.SGD([weight], lr=0.1))
    assert weight.grad is not None


def _queue_cfg() -> DictConfig:
    cfg = tiny_cfg("swav", "swav")
    cfg.method.module.queue_size = 8  # one global batch: used from the second step on
    cfg.method.module.queue_start_epoch = 0
    return cfg


def _two_steps(module: Any, views: Any, index: Tensor) -> list[dict[str, Any]]:
    first = _step(module, views, index)
    assert int(module.queued) == 8
    return [first, _step(module, views, index)]


def _worker(rank: int, port: int, out: str, cfg: DictConfig) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        module = eval_module(cfg)
        views, index = global_views(module)
        torch.save(_two_steps(module, *_share(views, index, rank)), Path(out) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_processes_with_the_queue_equal_one(tmp_path: Path) -> None:
    """The second step's codes are over the queue (the first step's global batch, gathered on every
    rank) and the batch: Sinkhorn's sums over the ranks count the queue once."""
    cfg = _queue_cfg()
    start_ranks(_worker, (free_port(), str(tmp_path), cfg), WORLD)
    module = eval_module(cfg)
    want = _two_steps(module, *global_views(module))
    assert not torch.equal(want[1]["state"]["queues.0.keys"], want[0]["state"]["queues.0.keys"])
    for r in range(WORLD):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
        for step in range(2):
            _compare(got[step], want[step])


def test_a_sigkilled_run_with_the_queue_resumes_to_the_uninterrupted_one(tmp_path: Path) -> None:
    # 16 images a step; the queue of 32 rows is full after epoch 0's second step and in use from then on.
    overrides = ["method=swav", "method.module.queue_size=32", "method.module.queue_start_epoch=0"]
    assert_resumes_to_the_uninterrupted_result(tmp_path, overrides)
