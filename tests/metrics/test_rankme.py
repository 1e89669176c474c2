"""RankMe against closed-form cases and a numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfsup.metrics import rankme


def test_k_equal_singular_values_give_k() -> None:
    q, _ = torch.linalg.qr(torch.randn(50, 50, dtype=torch.float64))
    z = q[:, :7] * 3.0  # 7 orthonormal columns scaled equally: 7 equal singular values
    assert rankme(z, eps=0.0) == pytest.approx(7.0, rel=1e-9)


def test_isotropic_gaussian_is_close_to_full_rank() -> None:
    torch.manual_seed(0)
    z = torch.randn(20000, 16)
    assert rankme(z) == pytest.approx(16.0, rel=0.01)


def test_rank_r_matrix_is_about_r_and_bounded() -> None:
    torch.manual_seed(0)
    z = torch.randn(300, 4) @ torch.randn(4, 32)
    r = rankme(z)
    assert 1.0 <= r <= 4.0 + 1e-3
    assert r > 3.0


def test_bounds_on_random_matrices() -> None:
    torch.manual_seed(1)
    for n, k in [(5, 40), (40, 5), (1, 8)]:
        r = rankme(torch.randn(n, k))
        assert 1.0 - 1e-6 <= r <= min(n, k) + 1e-3


def test_matches_numpy_reference() -> None:
    z = np.random.default_rng(0).normal(size=(64, 12)) @ np.diag(np.linspace(0.1, 3, 12))
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + 1e-7
    expected = float(np.exp(-(p * np.log(p)).sum()))
    assert rankme(torch.from_numpy(z)) == pytest.approx(expected, rel=1e-9)


def test_non_finite_embeddings_give_nan() -> None:
    z = torch.randn(50, 8)
    z[3, 2] = float("nan")
    assert math.isnan(rankme(z))
    z[3, 2] = float("inf")
    assert math.isnan(rankme(z))
