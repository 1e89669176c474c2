"""LiDAR (Thilak et al., ICLR 2024): effective rank of the LDA matrix of augmented views."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def lidar(z: Tensor, delta: float = 1e-4, eps: float = 1e-8) -> float:
    """exp(entropy) of the eigenvalues of Σ_w^{-1/2} Σ_b Σ_w^{-1/2}.

    Classes are source images, samples are their augmented views: μ_x is the mean of image x's
    views, Σ_b the covariance of the μ_x, Σ_w the mean over images of the views' covariance
    plus δI. p_i = λ_i / Σλ + ε. Bounded by min(D, n - 1). Computed in float64. NaN where it is
    undefined: a collapsed representation (every image embedded alike: Σ_b = 0), or one so
    ill-conditioned that the eigen-decomposition fails (a run diverging to huge, near-equal
    embeddings); a run's metrics are still logged and its collapse reported, not a crash.

    Args:
        z: (n, q, D) embeddings of q views of each of n images, grouped by the true image.
        delta: δ, ridge added to Σ_w.
        eps: ε added to each p_i.

    Example:
        >>> from selfsup.metrics import lidar
        >>> _ = torch.manual_seed(0)
        >>> images = torch.randn(32, 1, 8)  # 32 images spread over 8 dimensions
        >>> z = images + 0.1 * torch.randn(32, 4, 8)  # 4 views of each, close to their image
        >>> round(lidar(z))  # at most min(D, n - 1) = 8
        7
    """
    if z.ndim != 3 or z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(f"lidar needs (n >= 2 images, q >= 2 views, D) embeddings, got {tuple(z.shape)}")
    z = z.double()
    n, q, d = z.shape
    mu_x = z.mean(dim=1)  # (n, D)
    mu = mu_x.mean(dim=0)
    cb = mu_x - mu
    sigma_b = cb.T @ cb / (n - 1)
    cw = z - mu_x[:, None]  # (n, q, D)
    sigma_w = torch.einsum("nqd,nqe->de", cw, cw) / (n * (q - 1)) + delta * torch.eye(d, dtype=z.dtype)
    if not (torch.isfinite(sigma_w).all() and torch.isfinite(sigma_b).all()):
        return float("nan")  # overflowed embeddings: LAPACK would only complain on stderr
    # Σ_w^{-1/2} by its eigen-decomposition (Σ_w is symmetric positive definite thanks to δ).
    try:
        w_vals, w_vecs = torch.linalg.eigh(sigma_w)
        inv_sqrt = w_vecs @ torch.diag(w_vals.clamp(min=1e-300).rsqrt()) @ w_vecs.T
        lam = torch.linalg.eigvalsh(inv_sqrt @ sigma_b @ inv_sqrt).clamp(min=0)
    except torch.linalg.LinAlgError:
        return float("nan")
    p = lam / lam.sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))
