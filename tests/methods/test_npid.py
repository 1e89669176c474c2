"""NPID: each view's embedding is one anchor whose positive is its image's memory-bank row, once,
against the bank rows drawn that step: the non-parametric softmax of Wu et al. 2018 (a naive
float64 loop written from the formula), for any number of views; the bank then moves towards the
mean of the views' normalised embeddings."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.build import build_module

B, BANK, NEGATIVES = 6, 10, 7


def npid_naive(z: Tensor, rows: Tensor, drawn: Tensor, tau: float, decoupled: bool) -> Tensor:
    """Mean over the V*B anchors f of -log exp(f·v_i/τ) / (exp(f·v_i/τ) + Σ_j exp(f·v_j/τ)), v_i the
    anchor's image's bank row (its positive, once), v_j the drawn rows; ``decoupled`` (DCL) leaves
    exp(f·v_i/τ) out of the denominator."""
    b = rows.shape[0]
    total = z.new_zeros(())
    for a in range(z.shape[0]):
        f = z[a] / z[a].norm()
        pos = torch.exp(f @ rows[a % b] / tau)
        neg = torch.stack([torch.exp(f @ v / tau) for v in drawn]).sum()
        total = total - torch.log(pos / (neg if decoupled else pos + neg))
    return total / z.shape[0]


@pytest.mark.parametrize("loss", ["ntxent", "dcl"])
@pytest.mark.parametrize("views", [2, 3])
def test_objective_is_the_non_parametric_softmax_with_the_positive_once(composed, views: int, loss: str) -> None:  # type: ignore[no-untyped-def]
    module = build_module(
        composed("method=npid", f"loss={loss}", f"augment.views={views}", f"method.module.negatives={NEGATIVES}")
    )
    module.bank.resize_per_sample(BANK)
    module = module.double()
    module.bank.rows.copy_(F.normalize(module.bank.rows, dim=1))  # unit in float64, as the formula's rows
    index = torch.tensor([3, 0, 8, 5, 1, 9])
    rows_before = module.bank.rows.clone()
    torch.manual_seed(0)
    views_ = module.view_maker(torch.randint(0, 256, (B, 1, 8, 8), dtype=torch.uint8))
    views_ = dataclasses.replace(views_, groups=[g.double() for g in views_.groups])
    assert views_.count == views
    torch.manual_seed(3)
    loss_value, _, z = module.objective(views_, index)
    torch.manual_seed(3)  # the same draw of negatives (the forward draws no random numbers)
    drawn = rows_before[torch.randint(BANK, (NEGATIVES,))]

    want = npid_naive(z, rows_before[index], drawn, module.loss_fn.temperature, decoupled=loss == "dcl")
    assert loss_value.item() == pytest.approx(want.item(), rel=1e-9)
    params = list(module.head.parameters())
    g_got = torch.autograd.grad(loss_value, params, retain_graph=True)
    g_want = torch.autograd.grad(want, params)
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)

    f = F.normalize(F.normalize(z.detach(), dim=1).view(views, B, -1).mean(0), dim=1)  # the views' mean, unit
    m = module.bank.momentum
    torch.testing.assert_close(module.bank.rows[index], F.normalize(m * rows_before[index] + (1 - m) * f, dim=1))
    untouched = torch.ones(BANK, dtype=torch.bool)
    untouched[index] = False
    torch.testing.assert_close(module.bank.rows[untouched], rows_before[untouched])
