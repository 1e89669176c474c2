"""LiDAR against a scipy reference and its closed-form behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from selfsup.metrics import lidar


def lidar_scipy(z: np.ndarray, delta: float, eps: float) -> float:
    n, q, d = z.shape
    mu_x = z.mean(axis=1)
    sigma_b = np.cov(mu_x, rowvar=False, ddof=1)
    sigma_w = np.mean([np.cov(z[i], rowvar=False, ddof=1) for i in range(n)], axis=0) + delta * np.eye(d)
    w = scipy.linalg.fractional_matrix_power(sigma_w, -0.5).real
    lam = np.clip(np.linalg.eigvalsh(w @ sigma_b @ w), 0, None)
    p = lam / lam.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def _views(n: int, q: int, d: int, mean_scale: float, noise: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 1, d, generator=g, dtype=torch.float64) * mean_scale
    return means + noise * torch.randn(n, q, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n,q,d", [(10, 5, 4), (30, 8, 12), (6, 20, 3)])
def test_matches_scipy_reference(n: int, q: int, d: int) -> None:
    z = _views(n, q, d, 2.0, 1.0, seed=n)
    assert lidar(z, delta=1e-4, eps=1e-8) == pytest.approx(lidar_scipy(z.numpy(), 1e-4, 1e-8), rel=1e-8)


def test_invariant_to_an_invertible_linear_map() -> None:
    z = _views(200, 10, 6, 1.5, 1.0)
    a = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 3 * torch.eye(6)
    assert torch.linalg.matrix_rank(a) == 6
    # δ breaks exact invariance (it is added after the map); a tiny δ keeps it to rounding.
    assert lidar(z @ a, delta=1e-12) == pytest.approx(lidar(z, delta=1e-12), rel=1e-6)


def test_isotropic_well_separated_means_reach_the_maximum() -> None:
    z = _views(2000, 10, 5, 10.0, 1.0)
    assert lidar(z) == pytest.approx(5.0, rel=0.01)  # min(D, n - 1) = 5


def test_collapses_towards_one_when_images_share_one_mean() -> None:
    g = torch.Generator().manual_seed(0)
    d = 6
    shared = torch.randn(1, 1, d, generator=g, dtype=torch.float64)
    # All images share one mean except along a single direction, which shrinks to nothing.
    values = []
    for spread in (3.0, 1.0, 0.3):
        coord = torch.zeros(300, 1, d, dtype=torch.float64)
        coord[..., 0] = 10.0 * spread * torch.randn(300, 1, generator=g, dtype=torch.float64)
        z = shared + coord * 1.0 + 0.1 * torch.randn(300, 50, d, generator=g, dtype=torch.float64)
        values.append(lidar(z))
    assert values[0] < 1.05 and values[0] < values[1] < values[2]


def test_exact_copies_give_the_effective_rank_of_the_means() -> None:
    """Views that are exact copies: Σ_w = δI, so Σ = Σ_b / δ and LiDAR is the entropy rank of Σ_b."""
    means = torch.randn(50, 4, dtype=torch.float64) @ torch.diag(
        torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    )
    z = means[:, None].expand(50, 7, 4).clone()
    lam = torch.linalg.eigvalsh(torch.cov(means.T))
    p = lam / lam.sum() + 1e-8
    assert lidar(z, delta=1e-4) == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-9)


def test_bounded_by_min_dim_and_images() -> None:
    assert lidar(_views(4, 6, 10, 1.0, 1.0)) <= 3.0 + 1e-6
    assert lidar(_views(50, 6, 3, 1.0, 1.0)) <= 3.0 + 1e-6
    with pytest.raises(ValueError, match="q >= 2"):
        lidar(torch.randn(5, 1, 3))


def test_undefined_for_a_collapsed_representation_is_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every image embedded alike (Σ_b = 0), or an eigen-decomposition that fails on the huge,
    near-equal embeddings of a diverging run: NaN, not a crash of the run that logs it."""
    assert math.isnan(lidar(torch.ones(8, 4, 5)))

    def fail(*args: object, **kwargs: object) -> None:
        raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigvalsh", fail)
    assert math.isnan(lidar(torch.randn(8, 4, 5)))
