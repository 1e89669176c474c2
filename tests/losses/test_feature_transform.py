"""Feature transformation (Zhu et al. 2021) in every contrastive loss: a naive float64 loop with the
step's λ, μ and permutations, the extrapolated positives' similarity, and bad settings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selfsup.build import ConfigError, build_module
from selfsup.losses import DCL, NTXent
from selfsup.losses._feature_transform import FeatureTransform
from tests.losses.reference_methods import leaf
from tests.losses.reference_seed import infonce_ft_naive

B, D, K = 5, 4, 6


def _draws(pos_alpha: float, neg_alpha: float, n: int, k: int) -> tuple[float, float | None, list[int], list[int]]:
    """λ, μ and the two permutations, drawn in the loss's order from the same seed."""
    torch.manual_seed(7)
    lam = float(1 + torch.distributions.Beta(pos_alpha, pos_alpha).sample()) if pos_alpha else 1.0
    mu = float(torch.distributions.Beta(neg_alpha, neg_alpha).sample()) if neg_alpha else None
    perm = torch.randperm(n).tolist() if neg_alpha else []
    queue_perm = torch.randperm(k).tolist() if neg_alpha and k else []
    return lam, mu, perm, queue_perm


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("pos_alpha,neg_alpha", [(2.0, 0.0), (0.0, 1.6), (2.0, 1.6)])
def test_simclr_batch_equals_the_naive_loop(pos_alpha: float, neg_alpha: float, normalize: bool) -> None:
    z = leaf(2 * B, D, seed=0)
    loss = NTXent(0.3, ft_pos_alpha=pos_alpha, ft_neg_alpha=neg_alpha, ft_normalize=normalize)
    torch.manual_seed(7)
    got = loss(z, views=2)
    lam, mu, perm, _ = _draws(pos_alpha, neg_alpha, B, 0)
    want = infonce_ft_naive(z, None, None, 0.3, lam, mu, perm, normalize=normalize)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)  # λ, μ drawn in float32
    torch.testing.assert_close(torch.autograd.grad(got, z)[0], torch.autograd.grad(want, z)[0], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("batch_negatives", ["none", "other_views"])
def test_moco_keys_and_queue_equal_the_naive_loop(batch_negatives: str) -> None:
    """MoCo (a detached key per view, a queue) and MoCo v3 (the other views' keys): the keys
    pass gradient to the queries through the (1 - λ) term of their extrapolation."""
    q, k, queue = leaf(2 * B, D, seed=1), leaf(2 * B, D, seed=2).detach(), leaf(K, D, seed=3).detach()
    negatives = queue if batch_negatives == "none" else None
    loss = NTXent(0.2, ft_pos_alpha=2.0, ft_neg_alpha=1.6)
    torch.manual_seed(7)
    got = loss(q, views=2, keys=k, negatives=negatives, batch_negatives=batch_negatives)
    lam, mu, perm, queue_perm = _draws(2.0, 1.6, B, K if negatives is not None else 0)
    want = infonce_ft_naive(q, k, negatives, 0.2, lam, mu, perm, queue_perm, batch_negatives)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    torch.testing.assert_close(torch.autograd.grad(got, q)[0], torch.autograd.grad(want, q)[0], rtol=1e-5, atol=1e-8)


def test_extrapolation_makes_the_positive_harder_by_the_closed_form() -> None:
    """For unit q, k with similarity s: ẑ_q·ẑ_k = s − 2λ(λ − 1)(1 − s) < s, and λ ∈ [1, 2]."""
    z = F.normalize(torch.randn(2 * 64, 8, dtype=torch.float64), dim=1)
    s = (z[:64] * z[64:]).sum(1)
    torch.manual_seed(0)
    out, _ = FeatureTransform(pos_alpha=2.0).extrapolate(z, None, views=2)
    torch.manual_seed(0)
    lam = float(1 + torch.distributions.Beta(2.0, 2.0).sample())
    assert 1 <= lam <= 2
    torch.testing.assert_close((out[:64] * out[64:]).sum(1), s - 2 * lam * (lam - 1) * (1 - s))
    # Off (both alphas 0), the loss is the plain loss exactly.
    x = leaf(2 * B, D, seed=4)
    assert DCL(0.1, ft_pos_alpha=0.0, ft_neg_alpha=0.0)(x).item() == DCL(0.1)(x).item()


def test_three_views_extrapolate_against_the_mean_of_the_others() -> None:
    z = F.normalize(torch.randn(3 * 4, 5, dtype=torch.float64), dim=1)
    torch.manual_seed(1)
    out, _ = FeatureTransform(pos_alpha=2.0).extrapolate(z, None, views=3)
    torch.manual_seed(1)
    lam = float(1 + torch.distributions.Beta(2.0, 2.0).sample())
    zv = z.view(3, 4, 5)
    torch.testing.assert_close(out.view(3, 4, 5)[1], lam * zv[1] + (1 - lam) * (zv[0] + zv[2]) / 2)


@pytest.mark.parametrize("key", ["ft_pos_alpha", "ft_neg_alpha"])
def test_a_negative_alpha_fails_before_training(composed, key) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=rf"loss.{key}=-1.0: expected >= 0"):
        build_module(composed(f"loss.{key}=-1.0"))
