"""The seed papers' objectives against naive float64 loops (values and gradients) and their
defining reductions: HCL with β = 0 is the debiased loss, with β = 0 and τ⁺ = 0 NT-Xent;
alignment + uniformity is the metrics' sum."""

from __future__ import annotations

import itertools

import pytest
import torch

from selfsup.losses import HCL, AlignUniform, NTXent
from selfsup.metrics import alignment, uniformity
from selfsup.mix import Mix
from tests.losses.reference_methods import assert_same, leaf
from tests.losses.reference_seed import align_uniform_naive, debiased_naive, hcl_naive


@pytest.mark.parametrize(
    "views,beta,tau_plus,tau", list(itertools.product([2, 3], [0.0, 0.5, 1.0], [0.0, 0.1, 0.5], [0.2, 0.5]))
)
def test_hcl_matches_naive_loop(views: int, beta: float, tau_plus: float, tau: float) -> None:
    z = leaf(views * 5, 6, seed=views + int(10 * beta) + int(10 * tau_plus))
    got = HCL(temperature=tau, beta=beta, tau_plus=tau_plus)(z, views=views)
    assert_same(got, hcl_naive(z, None, None, views, tau, beta, tau_plus), [z])


@pytest.mark.parametrize("batch_negatives,queue", [("none", 7), ("other_views", 0), ("other_views", 7), ("all", 7)])
def test_hcl_with_a_methods_keys_and_queue_matches_naive_loop(batch_negatives: str, queue: int) -> None:
    """MoCo's path: a key encoder's embeddings as candidates, a queue as extra negatives."""
    q, k = leaf(2 * 4, 5, seed=1), leaf(2 * 4, 5, seed=2)
    negatives = torch.randn(queue, 5, dtype=torch.float64) if queue else None
    loss = HCL(temperature=0.3, beta=0.7, tau_plus=0.1)
    got = loss(q, views=2, keys=k, negatives=negatives, batch_negatives=batch_negatives)
    assert_same(got, hcl_naive(q, k, negatives, 2, 0.3, 0.7, 0.1, batch_negatives), [q, k])


@pytest.mark.parametrize("tau,beta,tau_plus", [(0.01, 1.0, 0.1), (0.005, 3.0, 0.5)])
def test_hcl_is_stable_in_float32_at_small_temperatures(tau: float, beta: float, tau_plus: float) -> None:
    """exp(1/τ) overflows float32 at τ 0.01; the log-space form still gives the float64 loop's value."""
    z64 = leaf(2 * 4, 6, seed=12)
    want = hcl_naive(z64, None, None, 2, tau, beta, tau_plus)
    z32 = z64.detach().float().requires_grad_(True)
    got = HCL(tau, beta=beta, tau_plus=tau_plus)(z32, views=2)
    assert got.item() == pytest.approx(want.item(), rel=1e-4)
    (grad,) = torch.autograd.grad(got, z32)
    assert torch.isfinite(grad).all()


def test_hcl_beta_zero_is_the_debiased_loss_and_zero_prior_is_ntxent() -> None:
    z = leaf(2 * 6, 8, seed=3)
    assert_same(HCL(0.5, beta=0.0, tau_plus=0.1)(z, views=2), debiased_naive(z, 0.5, 0.1), [z])
    assert_same(HCL(0.5, beta=0.0, tau_plus=0.0)(z, views=2), NTXent(0.5)(z, views=2), [z])
    q, k = leaf(2 * 4, 5, seed=4), leaf(2 * 4, 5, seed=5)
    queue = torch.randn(9, 5, dtype=torch.float64)
    args = {"keys": k, "negatives": queue, "batch_negatives": "none"}  # MoCo's InfoNCE
    assert_same(HCL(0.2, beta=0.0, tau_plus=0.0)(q, views=2, **args), NTXent(0.2)(q, views=2, **args), [q, k])


def test_hcl_floor_holds_when_the_debiasing_overshoots() -> None:
    """τ⁺ 0.9 with near-duplicate positives drives the estimate below zero for every anchor: Ng is the
    floor N e^{-1/τ}, and each anchor's loss is -p + log(e^p + N e^{-1/τ})."""
    base = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    z = torch.cat([base, base + 1e-3 * torch.randn(4, 6, dtype=torch.float64)]).requires_grad_(True)
    got = HCL(0.5, beta=1.0, tau_plus=0.9)(z, views=2)
    assert_same(got, hcl_naive(z, None, None, 2, 0.5, 1.0, 0.9), [z])
    u = torch.nn.functional.normalize(z.detach(), dim=1)
    p = (u[:4] * u[4:]).sum(1).repeat(2) / 0.5
    n = 6  # 2B - 2 negatives
    floor = torch.log(torch.exp(p) + n * torch.exp(torch.tensor(-2.0, dtype=torch.float64))) - p
    assert got.item() == pytest.approx(floor.mean().item(), rel=1e-12)


def test_hcl_gives_hard_negatives_more_gradient_than_ntxent() -> None:
    """Hard negatives (similar to the anchor) get a larger share of the anchor's gradient as β grows."""
    g = torch.Generator().manual_seed(7)
    anchor = torch.randn(1, 8, dtype=torch.float64, generator=g)
    hard = anchor + 0.3 * torch.randn(1, 8, dtype=torch.float64, generator=g)
    easy = -anchor + 0.3 * torch.randn(1, 8, dtype=torch.float64, generator=g)
    positive = anchor + 0.1 * torch.randn(1, 8, dtype=torch.float64, generator=g)

    def share(beta: float) -> float:
        keys = torch.cat([positive, positive]).requires_grad_(False)
        negatives = torch.cat([hard, easy]).requires_grad_(True)
        loss = HCL(0.5, beta=beta, tau_plus=0.0)(
            torch.cat([anchor, anchor]), views=2, keys=keys, negatives=negatives, batch_negatives="none"
        )
        (grad,) = torch.autograd.grad(loss, negatives)
        return (grad[0].norm() / grad.norm(dim=1).sum()).item()

    assert share(0.0) < share(1.0) < share(3.0)


@pytest.mark.parametrize("views", [2, 3])
def test_hcl_lambda_one_mix_is_the_unmixed_loss(views: int) -> None:
    z = leaf(views * 6, 8, seed=8)
    loss = HCL(0.5, beta=1.0, tau_plus=0.1)
    mix = Mix(view=views - 1, partner=torch.randperm(6), lam=torch.ones(6, dtype=torch.float64))
    assert_same(loss(z, views=views, mix=mix), loss(z, views=views), [z])


def test_hcl_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"loss.beta=-1.0: expected beta >= 0"):
        HCL(beta=-1.0)
    with pytest.raises(ValueError, match=r"loss.tau_plus=.*: expected 0 <= tau_plus < 1"):
        HCL(tau_plus=1.0)
    with pytest.raises(ValueError, match="at least one negative"):
        HCL()(torch.randn(2, 4), views=2)


@pytest.mark.parametrize("views,alpha,t,weights", [(2, 2.0, 2.0, (1.0, 1.0)), (3, 1.0, 3.0, (0.5, 2.0))])
def test_align_uniform_matches_naive_loop(views: int, alpha: float, t: float, weights: tuple[float, float]) -> None:
    z = leaf(views * 6, 5, seed=views)
    got = AlignUniform(alpha=alpha, t=t, align_weight=weights[0], uniform_weight=weights[1])(z, views=views)
    assert_same(got, align_uniform_naive(z, views, alpha, t, *weights), [z])


def test_align_uniform_is_the_metrics_sum_and_zero_alignment_for_identical_views() -> None:
    x, y = torch.randn(7, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    got = AlignUniform()(torch.cat([x, y]), views=2)
    want = alignment(x, y) + (uniformity(x) + uniformity(y)) / 2
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    same = AlignUniform(uniform_weight=0.0)(torch.cat([x, 3 * x]), views=2)  # same direction
    assert same.item() == pytest.approx(0.0, abs=1e-12)


def test_align_uniform_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="needs alpha >= 1 and t > 0"):
        AlignUniform(t=0.0)
    with pytest.raises(ValueError, match="needs alpha >= 1 and t > 0"):
        AlignUniform(alpha=0.5)
    with pytest.raises(ValueError, match="at least 2 images"):
        AlignUniform()(torch.randn(2, 4), views=2)
