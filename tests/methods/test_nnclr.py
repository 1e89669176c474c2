"""NNCLR: the support set's nearest neighbour is exact, the loss is InfoNCE with the neighbours as
anchors and the other view's predictions as candidates (a naive float64 loop), and the first
view's projections are enqueued after the lookup."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from selfsup.build import build_module
from selfsup.methods._queue import KeyQueue
from tests.losses.reference_methods import infonce_keys_naive


def test_nearest_is_the_row_of_highest_cosine() -> None:
    queue = KeyQueue(size=4, dim=3)
    queue.keys.copy_(F.normalize(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]), dim=1))
    x = torch.tensor([[5.0, 0.1, 0], [0.1, 0.2, 3.0], [1.0, 0.9, 0.0], [-1.0, -1.0, -1.0]])
    got = queue.nearest(x)
    want = []
    for row in x:  # a loop over the rows, cosines by hand
        cos = [float(row @ k / (row.norm() * k.norm())) for k in queue.keys]
        want.append(queue.keys[max(range(4), key=cos.__getitem__)])
    assert torch.equal(got, torch.stack(want))
    assert torch.equal(got[:3], queue.keys[[0, 2, 3]])


def test_objective_is_infonce_from_the_neighbours_and_enqueues_the_first_view(composed) -> None:  # type: ignore[no-untyped-def]
    module = build_module(composed("method=nnclr", "method.module.support_size=16")).double()
    support_before = module.support.keys.clone()
    torch.manual_seed(0)
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    views = module.view_maker(x)
    views = dataclasses.replace(views, groups=[g.double() for g in views.groups])
    loss, h, z = module.objective(views, torch.arange(6))

    # Train-mode BN: the same batch in the same layout (per_view, configs/method/nnclr.yaml), the same output.
    z_again = module.by_view(module.head, module.encode(views), 2)
    torch.testing.assert_close(z_again, z)
    p = module.by_view(module.predictor, z_again, 2)
    rows = F.normalize(z_again.detach(), dim=1)
    anchors = torch.stack([support_before[int((support_before @ r).argmax())] for r in rows])
    want = infonce_keys_naive(anchors, p, None, 2, module.loss_fn.temperature, "other_views", False)
    assert loss.item() == pytest.approx(want.item(), rel=1e-9)
    g_got = torch.autograd.grad(loss, list(module.predictor.parameters()), retain_graph=True)
    g_want = torch.autograd.grad(want, list(module.predictor.parameters()))
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)

    torch.testing.assert_close(module.support.keys[:6], F.normalize(z[:6].detach(), dim=1))
    torch.testing.assert_close(module.support.keys[6:], support_before[6:])
    assert int(module.support.ptr) == 6
