"""iSogCLR (Qiu et al. 2023): a naive float64 loop (value, gradient, state), the reduction to
τ·DCL, per-image temperatures that separate frequent from rare images, and a training run."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.build import ConfigError, build_module
from selfsup.losses import DCL, ISogCLR
from selfsup.pipeline import run
from tests.losses.reference_methods import leaf
from tests.losses.reference_seed import isogclr_naive

HP = dict(tau_init=0.1, tau_min=0.05, tau_max=0.7, rho=0.3, gamma=0.9, tau_lr=0.01, tau_momentum=0.5, grad_clip=3.0)


def _state(loss: ISogCLR) -> dict[str, list[float]]:
    return {k: getattr(loss, k).tolist() for k in ("u", "tau", "tau_grad")}


@pytest.mark.parametrize("views", [2, 3])
def test_two_steps_equal_the_naive_loop(views: int) -> None:
    """The first step sees every image for the first time (u = g); the second mixes new and seen
    images (the moving average), with a large τ step so that τ moves and is clipped."""
    hp = {**HP, "tau_lr": 0.5, "grad_clip": 0.5}
    loss = ISogCLR(**hp, num_samples=9).double()
    state = _state(loss)
    for step, index in enumerate(([4, 0, 7, 2, 8], [2, 5, 4, 1, 3])):
        z = leaf(views * len(index), 6, seed=step)
        got = loss(z, views=views, index=torch.tensor(index))
        value, surrogate, state = isogclr_naive(z, index, views, state, **hp)
        assert got.item() == pytest.approx(value.item(), rel=1e-9, abs=1e-12)
        (g_got,) = torch.autograd.grad(got, z)
        (g_want,) = torch.autograd.grad(surrogate, z)
        torch.testing.assert_close(g_got, g_want, rtol=1e-8, atol=1e-12)
        for key, want in state.items():
            torch.testing.assert_close(getattr(loss, key), torch.tensor(want, dtype=torch.float64), msg=key)
    assert len(set(loss.tau.tolist())) > 2 and loss.tau.max() <= 0.7 and loss.tau.min() >= 0.05


def test_the_scale_is_half_the_authors_sum_over_the_two_views() -> None:
    """The convention, pinned. The value is the mean over the 2B anchors of the per-anchor objective
    τ_i (log E_n exp((s_n − s⁺)/τ_i) + ρ), and the gradient that of the mean of the per-anchor
    surrogates. The authors' code (``SogCLR_DRO_Loss`` in zhqiu/contrastive-learning-iSogCLR,
    unimodal_exps/losses.py) and LibAUC's ``GCLoss_v1`` sum the two views' terms and average over the
    B images: written here in their layout (B x 2B logits, 2(B − 1) negatives), theirs is exactly twice
    this loss, in value and gradient (docs/algorithms.md: lr x 2, weight decay / 2 to take their SGD step)."""
    b, tau, rho = 5, 0.25, 0.3  # τ exact in float32, where the buffers start
    loss = ISogCLR(tau_init=tau, rho=rho, num_samples=b).double()
    z = leaf(2 * b, 6, seed=4)
    got = loss(z, views=2, index=torch.arange(b))  # every image seen for the first time: u = g

    h1, h2 = F.normalize(z[:b], dim=1), F.normalize(z[b:], dim=1)
    pos = torch.eye(b, 2 * b, dtype=torch.float64)  # column i of [h·h_otherᵀ, h·h_sameᵀ]: the positive
    self_mask = torch.eye(b, dtype=torch.float64) * 1e9

    def view_term(a: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.cat([a @ other.T, a @ a.T - self_mask], dim=1)  # (B, 2B)
        neg = torch.exp(logits / tau) * (1 - pos)
        u = neg.sum(1, keepdim=True) / (2 * (b - 1))
        w = (neg / u).detach()
        surrogate = -(pos * (logits - (w * logits).sum(1, keepdim=True) / (2 * (b - 1)))).sum(1)
        s_pos = (pos * logits).sum(1)
        value = tau * (torch.log(u.squeeze(1)) - s_pos / tau + rho)  # τ (log E exp((s_n − s⁺)/τ) + ρ)
        return value, surrogate

    (value_a, surrogate_a), (value_b, surrogate_b) = view_term(h1, h2), view_term(h2, h1)
    authors_value, authors_surrogate = (value_a + value_b).mean(), (surrogate_a + surrogate_b).mean()
    assert got.item() == pytest.approx(authors_value.item() / 2, rel=1e-10)
    torch.testing.assert_close(
        torch.autograd.grad(got, z)[0], torch.autograd.grad(authors_surrogate, z)[0] / 2, rtol=1e-9, atol=1e-12
    )


def test_one_shared_fixed_temperature_and_no_memory_is_tau_times_dcl() -> None:
    """γ = 1 (the batch's estimate only) and η = 0 (τ stays τ0): the gradient is τ times DCL's
    (NT-Xent without the positive in the denominator) and the value τ·DCL + τ(ρ − log(2B − 2))."""
    tau, b = 0.25, 6  # exact in float32, where the buffers start
    loss = ISogCLR(tau_init=tau, gamma=1.0, tau_lr=0.0, num_samples=b).double()
    z = leaf(2 * b, 5, seed=3)
    for _ in range(2):  # the second step has every image seen: the same, since γ = 1
        got = loss(z, views=2, index=torch.arange(b))
        dcl = DCL(temperature=tau)(z, views=2)
        want = tau * dcl + tau * (0.3 - math.log(2 * b - 2))
        assert got.item() == pytest.approx(want.item(), rel=1e-10)
        torch.testing.assert_close(torch.autograd.grad(got, z)[0], tau * torch.autograd.grad(dcl, z)[0])
    assert torch.equal(loss.tau, torch.full((b,), tau, dtype=torch.float64))


def test_near_duplicate_images_learn_larger_temperatures_than_rare_ones() -> None:
    """The paper's claim (Qiu et al. 2023, sec. 5): images with frequent semantics get larger
    temperatures, rare ones smaller. Constructed data: 16 near-duplicates of one image and 48
    distinct ones; a linear encoder trained with the loss. A near-duplicate's negatives include
    its copies, so its weights over the negatives stay concentrated (KL above ρ: τ grows); a rare
    image's negatives are all alike far (KL below ρ: τ shrinks). At the default step η 0.01;
    at the authors' 0.03, 6 of the 16 near-duplicates end at τ_min instead, oscillating
    between visits (their u, estimated at the last visit's τ, is far off at the new one)."""
    g = torch.Generator().manual_seed(0)
    d, n_freq, n_rare = 24, 16, 48
    base = torch.randn(1, d, generator=g)
    x = torch.cat([base + 0.05 * torch.randn(n_freq, d, generator=g), torch.randn(n_rare, d, generator=g)])
    encoder = torch.nn.Linear(d, 16)
    loss = ISogCLR(num_samples=n_freq + n_rare)
    opt = torch.optim.SGD(encoder.parameters(), lr=0.1)
    for _ in range(40):  # epochs
        for index in torch.randperm(len(x), generator=g).view(-1, 16):
            views = torch.cat([x[index] + 0.1 * torch.randn(16, d, generator=g) for _ in range(2)])
            opt.zero_grad()
            loss(encoder(views), views=2, index=index).backward()
            opt.step()
    freq, rare = loss.tau[:n_freq], loss.tau[n_freq:]
    assert freq.mean() > rare.mean() + 0.1, (freq.mean(), rare.mean())
    assert freq.min() > rare.max(), (freq.min(), rare.max())


@pytest.mark.parametrize(
    "override,message",
    [
        ("loss.tau_min=0.8", r"loss.tau_min=0.8, loss.tau_max=0.7: expected 0 < tau_min <= tau_max"),
        ("loss.tau_init=0.9", r"loss.tau_init=0.9: expected within \[tau_min, tau_max\]"),
        ("loss.rho=-0.1", r"loss.rho=-0.1: expected rho >= 0"),
        ("loss.gamma=0.0", r"loss.gamma=0.0: expected 0 < gamma <= 1"),
    ],
)
def test_bad_settings_fail_before_training_naming_the_key(composed, override, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        build_module(composed("loss=isogclr", override))


def test_index_is_required_and_checked() -> None:
    loss = ISogCLR(num_samples=4)
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="needs the sample index"):
        loss(z, views=2)
    with pytest.raises(ValueError, match="sample index 9 outside the 4 images"):
        loss(z, views=2, index=torch.tensor([0, 9]))


def test_training_logs_temperatures_and_checkpoints_one_per_image(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("loss=isogclr", "eval.baselines=[]", "trainer.log_every_n_steps=1")
    run(cfg, tmp_path / "run", loss_choice="isogclr")
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/tau_median")]
    assert rows, "no learned-temperature rows in metrics.csv"
    for r in rows:
        lo, mid, hi = (float(r[f"train/tau_{k}"]) for k in ("min", "median", "max"))
        assert 0.05 <= lo <= mid <= hi <= 0.7
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = ckpt["state_dict"]
    n = state["loss_fn.tau"].shape[0]
    assert state["loss_fn.u"].shape == state["loss_fn.tau_grad"].shape == (n,)
    seen = state["loss_fn.u"] > 0
    assert 0 < int(seen.sum()) <= n and not torch.equal(state["loss_fn.tau"][seen], torch.full((int(seen.sum()),), 0.1))
    assert F.relu(state["loss_fn.tau"] - 0.7).sum() == 0
