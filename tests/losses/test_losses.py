"""The contrastive losses against naive loops, gradcheck, and their defining properties."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from selfsup.losses import DCL, DCLW, NTXent
from tests.losses.reference import dcl_naive, ntxent_naive

GRID = list(itertools.product([1, 3, 8], [2, 3, 4], [4, 16], [0.07, 0.5]))  # batch, views, dim, tau


@pytest.mark.parametrize("batch,views,dim,tau", GRID)
def test_ntxent_matches_naive_loop(batch: int, views: int, dim: int, tau: float) -> None:
    z = torch.randn(views * batch, dim, generator=torch.Generator().manual_seed(batch * 100 + views * 10 + dim))
    got = NTXent(temperature=tau)(z, views=views)
    assert got.item() == pytest.approx(ntxent_naive(z, views, tau), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("batch,views,dim,tau", [g for g in GRID if g[0] > 1])
def test_dcl_matches_naive_loop(batch: int, views: int, dim: int, tau: float) -> None:
    z = torch.randn(views * batch, dim, generator=torch.Generator().manual_seed(batch + views + dim))
    got = DCL(temperature=tau)(z, views=views)
    assert got.item() == pytest.approx(dcl_naive(z, views, tau), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("batch,views,dim,tau", [g for g in GRID if g[0] > 1])
@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_dclw_matches_naive_loop(batch: int, views: int, dim: int, tau: float, sigma: float) -> None:
    z = torch.randn(views * batch, dim, generator=torch.Generator().manual_seed(7 * batch + views + dim))
    got = DCLW(temperature=tau, sigma=sigma)(z, views=views)
    assert got.item() == pytest.approx(dcl_naive(z, views, tau, sigma=sigma), rel=1e-5, abs=1e-6)


def test_ntxent_two_views_is_simclr_cross_entropy() -> None:
    """V=2: the SimCLR formulation as a 2N-way cross-entropy with the diagonal removed."""
    n, tau = 6, 0.3
    z = torch.nn.functional.normalize(torch.randn(2 * n, 5, dtype=torch.float64), dim=1)
    logits = z @ z.T / tau
    logits.fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    expected = torch.nn.functional.cross_entropy(logits, target)
    assert NTXent(tau)(z, views=2).item() == pytest.approx(expected.item(), rel=1e-10)


def test_dcl_denominator_lacks_the_positive() -> None:
    """Per anchor, NT-Xent − DCL = log(1 + exp(s_pos/τ) / Σ_neg exp(s/τ)), i.e. exactly the positive's share."""
    n, tau = 5, 0.2
    z = torch.randn(2 * n, 8, dtype=torch.float64)
    zn = torch.nn.functional.normalize(z, dim=1)
    s = zn @ zn.T / tau
    gaps = []
    for a in range(2 * n):
        p = (a + n) % (2 * n)
        neg = sum(math.exp(s[a, k].item()) for k in range(2 * n) if k not in (a, p))
        gaps.append(math.log(1 + math.exp(s[a, p].item()) / neg))
    diff = NTXent(tau)(z, views=2) - DCL(tau)(z, views=2)
    assert diff.item() == pytest.approx(sum(gaps) / len(gaps), rel=1e-10)
    assert diff.item() > 0


def test_dclw_with_huge_sigma_is_dcl() -> None:
    z = torch.randn(3 * 7, 6, dtype=torch.float64)
    dcl = DCL(temperature=0.1)(z, views=3)
    dclw = DCLW(temperature=0.1, sigma=1e9)(z, views=3)
    assert dclw.item() == pytest.approx(dcl.item(), rel=1e-9)


def test_dclw_weight_detach_changes_gradient_not_value() -> None:
    z = torch.randn(2 * 6, 4, dtype=torch.float64, requires_grad=True)
    a = DCLW(weight_detach=True)(z, views=2)
    (ga,) = torch.autograd.grad(a, z)
    b = DCLW(weight_detach=False)(z, views=2)
    (gb,) = torch.autograd.grad(b, z)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    assert not torch.allclose(ga, gb)


@pytest.mark.parametrize(
    "loss",
    [NTXent(0.5), DCL(0.3), DCLW(0.3, sigma=0.5, weight_detach=False)],
    ids=["ntxent", "dcl", "dclw-attached"],
)
@pytest.mark.parametrize("views", [2, 3])
def test_gradcheck_float64(loss: torch.nn.Module, views: int) -> None:
    # Detached DCLW weights are a deliberate stop-gradient, so finite differences cannot match them.
    z = torch.randn(views * 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: loss(t, views=views), (z,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("loss", [NTXent(0.2), DCL(0.1), DCLW(0.1)], ids=["ntxent", "dcl", "dclw"])
def test_loss_decreases_under_a_few_steps(loss: torch.nn.Module) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 10)
    views = torch.cat([x + 0.3 * torch.randn_like(x), x + 0.3 * torch.randn_like(x)])  # two noisy views
    model = torch.nn.Linear(10, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = loss(model(views), views=2).item()
    for _ in range(30):
        opt.zero_grad()
        value = loss(model(views), views=2)
        value.backward()
        opt.step()
    assert value.item() < first - 0.1


@pytest.mark.parametrize("loss", [NTXent(0.05), DCL(0.05), DCLW(0.05)], ids=["ntxent", "dcl", "dclw"])
def test_half_precision_input_is_computed_in_float32(loss: torch.nn.Module) -> None:
    """exp(1/0.05) overflows fp16; the loss must stay finite and match the fp32 value."""
    z = torch.randn(2 * 32, 16)
    ref = loss(z, views=2)
    got = loss(z.half(), views=2)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    assert got.item() == pytest.approx(ref.item(), rel=2e-2)


def test_bad_shapes_and_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="views=3"):
        NTXent()(torch.randn(10, 4), views=3)
    with pytest.raises(ValueError, match="at least 2 views"):
        DCL()(torch.randn(10, 4), views=1)
    with pytest.raises(ValueError, match="temperature"):
        NTXent(temperature=0.0)
    with pytest.raises(ValueError, match="weight_scope"):
        DCLW(weight_scope="batch")  # type: ignore[arg-type]
