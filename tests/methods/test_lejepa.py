"""method=lejepa: LeJEPA's loss against a float64 reference written as the paper writes it (the
characteristic function as a complex mean, the integral by the trapezoid rule over the symmetric
range), the method's objective as that loss of its own networks' projections, and the directions:
unit length, new at every call, the same after a resume."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from selfsup.losses.lejepa import LeJEPALoss
from tests.losses.reference_methods import assert_same
from tests.methods.test_distributed_methods import eval_module, global_views, tiny_cfg


def lejepa_reference(
    z: Tensor, views: int, global_views: int, a: Tensor, lambd: float, t_max: float, n_points: int
) -> Tensor:
    b = z.shape[0] // views
    zv = z.view(views, b, -1)
    mu = zv[:global_views].mean(0)
    pred = sum(((mu - zv[v]) ** 2).mean() for v in range(views)) / views
    t = torch.linspace(-t_max, t_max, 2 * n_points - 1, dtype=torch.float64)
    sigregs = []
    for v in range(views):
        x = zv[v] @ a  # (N, S)
        ecf = torch.exp(1j * x[..., None] * t).mean(0)  # (S, T): mean_j exp(i t x_j)
        integrand = (ecf - torch.exp(-(t**2) / 2)).abs() ** 2 * torch.exp(-(t**2) / 2)
        sigregs.append((b * torch.trapezoid(integrand, t, dim=-1)).mean())
    return (1 - lambd) * pred + lambd * sum(sigregs) / views


@pytest.mark.parametrize("views,global_views", [(2, 2), (4, 2), (3, 1)])
def test_the_loss_is_the_papers(views: int, global_views: int) -> None:
    g = torch.Generator().manual_seed(views)
    z = torch.randn(views * 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    loss = LeJEPALoss(lambd=0.3, num_slices=7, t_max=3.0, n_points=9).double()
    a = loss.directions(6, z.device, z.dtype)
    got = loss(z, views=views, global_views=global_views)
    assert_same(got, lejepa_reference(z, views, global_views, a, 0.3, 3.0, 9), [z])


def test_the_directions_are_unit_new_at_every_call_and_resume_with_the_state() -> None:
    loss = LeJEPALoss(num_slices=32)
    first = loss.directions(8, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(first.norm(dim=0), torch.ones(32))
    loss(torch.randn(2 * 4, 8), views=2)
    second = loss.directions(8, torch.device("cpu"), torch.float32)
    assert not torch.allclose(first, second) and int(loss.calls) == 1
    resumed = LeJEPALoss(num_slices=32)
    resumed.load_state_dict(loss.state_dict())
    torch.testing.assert_close(resumed.directions(8, torch.device("cpu"), torch.float32), second)


def test_sigreg_is_small_for_gaussian_embeddings_and_large_for_collapsed_ones() -> None:
    loss = LeJEPALoss(num_slices=64)
    a = loss.directions(16, torch.device("cpu"), torch.float64)
    gaussian = torch.randn(2048, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # N·|φ̂ - φ|² is O(1) for a sample of the target (its expectation is 1 - φ(t)²), O(N) otherwise.
    gaussian_stat = loss.sigreg(gaussian, a).item()
    collapsed_stat = loss.sigreg(torch.ones(2048, 16, dtype=torch.float64), a).item()
    assert gaussian_stat < 3.0 and collapsed_stat > 300 * gaussian_stat


def test_the_objective_is_the_loss_of_its_own_projections() -> None:
    cfg = tiny_cfg("lejepa", "lejepa")
    cfg.loss.num_slices = 16
    assert cfg.augment.local_views > 0
    module = eval_module(cfg)
    views, index = global_views(module)
    a = module.loss_fn.directions(cfg.head.out_dim, index.device, torch.float64)
    loss, h, z = module.objective(views, index)
    b, global_count = index.shape[0], views.groups[0].shape[0] // index.shape[0]
    assert h.shape[0] == z.shape[0] == views.count * b
    projections = torch.cat([module.head(module.backbone(g)) for g in views.groups])
    params = [p for m in module.trained_modules() for p in m.parameters() if p.requires_grad]
    want = lejepa_reference(
        projections, views.count, global_count, a, cfg.loss.lambd, cfg.loss.t_max, cfg.loss.n_points
    )
    assert_same(loss, want, params)
