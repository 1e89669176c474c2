"""The methods' losses and candidate paths against naive float64 loops: values and gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from selfsup.losses import DCL, BarlowTwinsLoss, BYOLLoss, NTXent, SimSiamLoss, VICRegLoss
from tests.losses.reference_methods import (
    assert_same,
    barlow_naive,
    byol_naive,
    infonce_keys_naive,
    leaf,
    simsiam_naive,
    vicreg_naive,
)


@pytest.mark.parametrize(
    "views,batch_negatives,queue,decoupled",
    # "none" without a queue has no negatives at all: no method asks for it.
    [
        c
        for c in itertools.product([2, 3], ["none", "other_views", "all"], [0, 7], [False, True])
        if c[1:3] != ("none", 0)
    ],
)
def test_keys_and_queue_path_matches_moco_infonce(
    views: int, batch_negatives: str, queue: int, decoupled: bool
) -> None:
    """MoCo v2 (keys + queue, no batch negatives), MoCo v3 (other views' keys), and both with DCL."""
    b, d, tau = 4, 5, 0.3
    q, k = leaf(views * b, d, seed=1), leaf(views * b, d, seed=2)
    negatives = leaf(queue, d, seed=3) if queue else None
    loss = (DCL if decoupled else NTXent)(temperature=tau)
    got = loss(q, views=views, keys=k, negatives=negatives, batch_negatives=batch_negatives)
    want = infonce_keys_naive(q, k, negatives, views, tau, batch_negatives, decoupled)
    assert_same(got, want, [q, k] + ([negatives] if negatives is not None else []))


def test_npid_bank_path_is_the_non_parametric_softmax() -> None:
    """NPID: each view's embedding against its bank row (the positive) and drawn bank rows."""
    b, d, tau, n_bank = 5, 4, 0.07, 9
    f = leaf(2 * b, d, seed=4)
    bank = torch.nn.functional.normalize(leaf(n_bank, d, seed=5).detach(), dim=1)
    index, drawn = torch.tensor([3, 0, 8, 5, 1]), torch.tensor([2, 2, 7, 4, 6, 0])
    got = NTXent(tau)(f, views=2, keys=bank[index].repeat(2, 1), negatives=bank[drawn], batch_negatives="none")
    want = f.new_zeros(())
    for a in range(2 * b):
        fa = f[a] / f[a].norm()
        pos = torch.exp(fa @ bank[index[a % b]] / tau)
        want = want - torch.log(pos / (pos + sum(torch.exp(fa @ bank[j] / tau) for j in drawn)))
    assert_same(got, want / (2 * b), [f])


@pytest.mark.parametrize("views", [2, 3])
def test_byol_loss_matches_naive_loop(views: int) -> None:
    p, z = leaf(views * 6, 5, seed=6), leaf(views * 6, 5, seed=7)
    assert_same(BYOLLoss()(p, z, views=views), byol_naive(p, z, views), [p, z])


def test_byol_two_views_is_the_papers_symmetrised_loss() -> None:
    p, z = leaf(12, 5, seed=8), leaf(12, 5, seed=9)
    f = torch.nn.functional

    def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((f.normalize(a, dim=1) - f.normalize(b, dim=1)) ** 2).sum(1).mean()  # = 2 - 2 cos

    want = mse(p[:6], z[6:]) + mse(p[6:], z[:6])  # L + L~
    assert BYOLLoss()(p, z).item() == pytest.approx(want.item(), rel=1e-12)


@pytest.mark.parametrize("views", [2, 3])
def test_simsiam_loss_matches_naive_loop(views: int) -> None:
    p, z = leaf(views * 6, 5, seed=10), leaf(views * 6, 5, seed=11)
    assert_same(SimSiamLoss()(p, z, views=views), simsiam_naive(p, z, views), [p, z])


@pytest.mark.parametrize("views,lambd", [(2, 5e-3), (2, 0.5), (3, 5e-3)])
def test_barlow_loss_matches_naive_loop(views: int, lambd: float) -> None:
    z = leaf(views * 7, 4, seed=12)
    assert_same(BarlowTwinsLoss(lambd=lambd)(z, views=views), barlow_naive(z, views, lambd), [z])


def test_barlow_loss_is_zero_for_identical_decorrelated_views() -> None:
    """Views equal to each other with orthogonal standardised columns: C = I, loss 0."""
    h = torch.linalg.qr(torch.randn(8, 3, dtype=torch.float64))[0]  # orthonormal columns
    h = torch.cat([h, -h]) * 4**0.5  # zero-mean columns, unit biased variance, C = I
    assert BarlowTwinsLoss()(torch.cat([h, h]), views=2).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("views,weights", [(2, (25.0, 25.0, 1.0)), (2, (1.0, 3.0, 0.5)), (3, (25.0, 25.0, 1.0))])
def test_vicreg_loss_matches_naive_loop(views: int, weights: tuple[float, float, float]) -> None:
    z = leaf(views * 6, 4, seed=13) * 0.5
    lam, mu, nu = weights
    got = VICRegLoss(invariance=lam, variance=mu, covariance=nu)(z, views=views)
    assert_same(got, vicreg_naive(z, views, lam, mu, nu), [z])
