"""Hard negatives on the contrastive losses: dropping each anchor's most similar negatives and
MoCHi's synthetic negatives, against a naive float64 loop (values and gradients), on the batch
and on a method's keys and queue; end to end in a MoCo run."""

from __future__ import annotations

import pytest
import torch

from selfsup.losses import DCL, HCL, NTXent
from selfsup.losses._hard_negatives import mochi_negatives
from selfsup.losses._pairs import contrastive_pairs
from tests.losses.reference_methods import assert_same, leaf
from tests.losses.reference_seed import infonce_hard_naive


@pytest.mark.parametrize("views,drop", [(2, 1), (2, 3), (3, 2)])
def test_dropping_the_most_similar_negatives_matches_naive_loop(views: int, drop: int) -> None:
    z = leaf(views * 5, 6, seed=views + drop)
    assert_same(
        NTXent(0.3, drop_top_k=drop)(z, views=views), infonce_hard_naive(z, None, None, views, 0.3, drop=drop), [z]
    )


@pytest.mark.parametrize("batch_negatives", ["none", "other_views", "all"])
def test_dropping_on_keys_and_a_queue_matches_naive_loop(batch_negatives: str) -> None:
    q, k = leaf(2 * 4, 5, seed=1), leaf(2 * 4, 5, seed=2)
    queue = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    args = {"keys": k, "negatives": queue, "batch_negatives": batch_negatives}
    got = NTXent(0.2, drop_top_k=2)(q, views=2, **args)
    assert_same(got, infonce_hard_naive(q, k, queue, 2, 0.2, batch_negatives, drop=2), [q, k])


def test_dropping_keeps_one_negative_and_zero_is_the_plain_loss() -> None:
    z = leaf(2 * 3, 4, seed=4)  # 4 negatives per anchor
    assert_same(NTXent(0.3, drop_top_k=100)(z, views=2), infonce_hard_naive(z, None, None, 2, 0.3, drop=3), [z])
    assert_same(NTXent(0.3, drop_top_k=0)(z, views=2), NTXent(0.3)(z, views=2), [z])


def _draws(rows: int, hardest: int, mixes: int, query_mixes: int, seed: int) -> dict[str, torch.Tensor]:
    """The implementation's draws, in its documented order, from the same seed."""
    torch.manual_seed(seed)
    i = torch.randint(hardest, (rows, mixes))
    j = torch.randint(hardest, (rows, mixes))
    alpha = torch.rand(rows, mixes, 1, dtype=torch.float64)
    jq = torch.randint(hardest, (rows, query_mixes))
    beta = 0.5 * torch.rand(rows, query_mixes, 1, dtype=torch.float64)
    return {"i": i, "j": j, "alpha": alpha, "jq": jq, "beta": beta}


@pytest.mark.parametrize("mixes,query_mixes,drop", [(4, 0, 0), (0, 3, 0), (4, 3, 0), (4, 3, 1)])
def test_mochi_on_moco_keys_and_queue_matches_naive_loop(mixes: int, query_mixes: int, drop: int) -> None:
    q, k = leaf(2 * 4, 5, seed=5), leaf(2 * 4, 5, seed=6)
    queue = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    args = {"keys": k, "negatives": queue, "batch_negatives": "none"}
    loss = NTXent(0.2, drop_top_k=drop, mochi_hardest=5, mochi_mixes=mixes, mochi_query_mixes=query_mixes)
    torch.manual_seed(11)
    got = loss(q, views=2, **args)
    want = infonce_hard_naive(
        q, k, queue, 2, 0.2, "none", drop=drop, draws=_draws(8, 5, mixes, query_mixes, 11), hardest=5
    )
    assert_same(got, want, [q, k])


def test_mochi_on_in_batch_negatives_matches_naive_loop() -> None:
    z = leaf(2 * 6, 5, seed=8)
    torch.manual_seed(12)
    got = NTXent(0.3, mochi_hardest=4, mochi_mixes=3, mochi_query_mixes=2)(z, views=2)
    want = infonce_hard_naive(z, None, None, 2, 0.3, draws=_draws(12, 4, 3, 2, 12), hardest=4)
    assert_same(got, want, [z])


def test_synthetic_negatives_are_detached_unit_vectors_near_the_hardest() -> None:
    z = leaf(2 * 6, 5, seed=9)
    p = contrastive_pairs(z, 2, 0.3, gather_distributed=False)
    h = mochi_negatives(p, hardest=3, mixes=8, query_mixes=8)
    assert h.shape == (12, 16, 5) and not h.requires_grad
    torch.testing.assert_close(h.norm(dim=2), torch.ones(12, 16, dtype=torch.float64))
    # A query mix (β < 0.5 on the anchor) is closer to the anchor than the negative it was mixed
    # with, so closer than the third-hardest negative at least; never the anchor itself.
    sim = torch.einsum("rd,rsd->rs", p.anchors.detach(), h[:, 8:])
    third = p.sim.detach().masked_fill(p.masked | p.pos, float("-inf")).topk(3, dim=1).values[:, -1:]
    assert (sim > third).all() and (sim < 1 - 1e-9).all()


def test_hard_negative_options_reach_every_contrastive_loss_and_bad_counts_are_named() -> None:
    z = leaf(2 * 5, 4, seed=10)
    for loss in (
        DCL(0.2, drop_top_k=1, mochi_hardest=3, mochi_mixes=2),
        HCL(0.5, mochi_hardest=3, mochi_query_mixes=2),
    ):
        assert torch.isfinite(loss(z, views=2))
    with pytest.raises(ValueError, match="hard-negative counts must be >= 0"):
        NTXent(0.2, drop_top_k=-1)
    with pytest.raises(ValueError, match="need mochi_hardest > 0"):
        NTXent(0.2, mochi_mixes=4)
