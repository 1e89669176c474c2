"""CutMix soft targets in NT-Xent, DCL and DCLW: λ = 1 is the unmixed loss, a naive loop agrees."""

from __future__ import annotations

import pytest
import torch

from selfsup.losses import DCL, DCLW, HCL, NTXent
from selfsup.losses._pairs import soft_targets
from selfsup.mix import Mix
from tests.losses.reference import mixed_hcl_naive, mixed_naive

LOSSES = [NTXent(0.5), DCL(0.2), DCLW(0.2, sigma=0.5), HCL(0.5, beta=1.0, tau_plus=0.1)]
IDS = ["ntxent", "dcl", "dclw", "hcl"]


def _mix(b: int, view: int, seed: int, lam: torch.Tensor | None = None) -> Mix:
    g = torch.Generator().manual_seed(seed)
    partner = torch.randperm(b, generator=g)
    if lam is None:
        lam = torch.rand(b, generator=g, dtype=torch.float64)
    return Mix(view=view, partner=partner, lam=lam)


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
@pytest.mark.parametrize("views", [2, 3])
def test_lambda_one_reproduces_the_unmixed_loss_exactly(loss: torch.nn.Module, views: int) -> None:
    z = torch.randn(views * 8, 16, generator=torch.Generator().manual_seed(0), requires_grad=True)
    plain = loss(z, views=views)
    (g_plain,) = torch.autograd.grad(plain, z)
    mixed = loss(z, views=views, mix=_mix(8, views - 1, 1, lam=torch.ones(8)))
    (g_mixed,) = torch.autograd.grad(mixed, z)
    assert torch.equal(plain, mixed) and torch.equal(g_plain, g_mixed)


@pytest.mark.parametrize("views,mix_view", [(2, 1), (2, 0), (3, 1)])
@pytest.mark.parametrize("decoupled", [False, True], ids=["ntxent", "dcl"])
def test_soft_targets_match_a_naive_loop(views: int, mix_view: int, decoupled: bool) -> None:
    b = 6
    z = torch.randn(views * b, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mix = _mix(b, mix_view, 3)
    loss = DCL(0.3) if decoupled else NTXent(0.3)
    got = loss(z, views=views, mix=mix).item()
    want = mixed_naive(z, views, 0.3, mix_view, mix.partner.tolist(), mix.lam.tolist(), decoupled)
    assert got == pytest.approx(want, rel=1e-10)


def test_dclw_weights_multiply_the_whole_soft_positive_of_a_view() -> None:
    b, views = 6, 2
    z = torch.randn(views * b, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    mix = _mix(b, 1, 5)
    # σ → ∞ makes every weight 1: DCLW equals DCL on the same soft targets.
    assert DCLW(0.3, sigma=1e12)(z, views=views, mix=mix).item() == pytest.approx(
        DCL(0.3)(z, views=views, mix=mix).item(), rel=1e-9
    )


def test_target_rows_sum_to_one_per_view_and_fixed_points_accumulate() -> None:
    b, views = 5, 3
    partner = torch.tensor([1, 0, 2, 4, 3])  # image 2 is its own partner
    lam = torch.tensor([0.7, 0.4, 0.3, 1.0, 0.0])
    t = soft_targets(b, b, views, 0, Mix(view=1, partner=partner, lam=lam), torch.device("cpu"))
    per_view = t.view(views * b, views, b).sum(-1)  # (rows, views)
    for r in range(views * b):
        v, i = divmod(r, b)
        for u in range(views):
            # Image 4 appears in no mixed picture (its own has λ = 0, image 3's has λ = 1):
            # an unmixed view of it has nothing to match in the mixed view, and no NaN either.
            want = 0.0 if u == v or (i == 4 and u == 1) else 1.0
            assert per_view[r, u].item() == pytest.approx(want), (r, u)
    assert t[1 * b + 2, 0 * b + 2] == 1.0  # mixed with itself: all its own content


@pytest.mark.parametrize("views,mix_view", [(2, 1), (2, 0), (3, 1)])
def test_hcl_soft_targets_match_a_naive_loop(views: int, mix_view: int) -> None:
    b = 6
    z = torch.randn(views * b, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mix = _mix(b, mix_view, 3)
    got = HCL(0.3, beta=0.8, tau_plus=0.1)(z, views=views, mix=mix).item()
    want = mixed_hcl_naive(z, views, 0.3, 0.8, 0.1, mix_view, mix.partner.tolist(), mix.lam.tolist())
    assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize(
    "loss", [NTXent(0.5), DCL(0.5), DCLW(0.5, weight_detach=False), HCL(0.5, beta=1.0, tau_plus=0.1)], ids=IDS
)
def test_gradcheck_with_mixing(loss: torch.nn.Module) -> None:
    z = torch.randn(2 * 4, 5, dtype=torch.float64, requires_grad=True)
    mix = _mix(4, 1, 6)
    assert torch.autograd.gradcheck(lambda t: loss(t, views=2, mix=mix), (z,))


def test_bad_mix_is_named() -> None:
    z = torch.randn(8, 4)
    with pytest.raises(ValueError, match="mix must name a view"):
        NTXent()(z, views=2, mix=_mix(4, 2, 0))
    with pytest.raises(ValueError, match="mix must name a view"):
        NTXent()(z, views=2, mix=_mix(3, 1, 0))
