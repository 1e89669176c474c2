"""AMCL (Wang et al. 2024) and the multi-head projector: a naive float64 loop, the reduction to
NT-Xent, per-head loss terms, per-head metrics, logged temperatures and bad settings."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from selfsup.build import ConfigError, build_module
from selfsup.heads import MultiHead
from selfsup.losses import AMCL, NTXent
from selfsup.pipeline import run
from tests.losses.reference_methods import leaf
from tests.losses.reference_seed import amcl_naive


def _amcl(dim: int, seed: int = 0, **kwargs: float) -> AMCL:
    """AMCL in float64 with φ's output layer moved off zero, so temperatures differ per pair."""
    torch.manual_seed(seed)
    loss = AMCL(dim=dim, hidden=5, **kwargs).double()  # type: ignore[arg-type]
    with torch.no_grad():
        for p in loss.phi.parameters():
            p.copy_(0.4 * torch.randn_like(p))
    return loss


@pytest.mark.parametrize("views", [2, 3])
def test_amcl_equals_the_naive_loop(views: int) -> None:
    loss = _amcl(4, beta=0.1, tau_min=0.05, tau_max=1.0)
    z = leaf(views * 5, 4, seed=1)
    got = loss(z, views=views)
    want = amcl_naive(z, views, loss.phi, 0.05, 1.0, 0.1)
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    inputs = [z, *loss.phi.parameters()]
    for a, b in zip(torch.autograd.grad(got, inputs), torch.autograd.grad(want, inputs), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    taus = loss.temperatures(torch.nn.functional.normalize(z, dim=1), torch.nn.functional.normalize(z, dim=1))
    assert taus.std() > 0.05 and taus.min() >= 0.05 and taus.max() <= 1.0


def _flat(loss: AMCL) -> AMCL:
    """φ's output layer at zero: every τ = (τ_min + τ_max)/2."""
    with torch.no_grad():
        loss.phi[2].weight.zero_()  # type: ignore[operator]
    return loss


def test_without_the_regulariser_and_a_constant_temperature_it_is_ntxent() -> None:
    """β = 0 and φ's output at zero (every τ = (τ_min + τ_max)/2): NT-Xent at that τ exactly."""
    loss = _flat(AMCL(dim=6, beta=0.0, tau_min=0.1, tau_max=0.5).double())
    z = leaf(2 * 7, 6, seed=2)
    got, want = loss(z), NTXent(0.3)(z)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    torch.testing.assert_close(torch.autograd.grad(got, z)[0], torch.autograd.grad(want, z)[0])


def test_the_regulariser_is_the_closed_form_at_a_constant_temperature() -> None:
    """φ at zero: τ = 0.3 for every pair, so the loss is NT-Xent(0.3) + β((D/2) log 0.3 + 1/0.3)."""
    z = leaf(2 * 4, 8, seed=3)
    got = _flat(AMCL(dim=8, beta=0.1, tau_min=0.1, tau_max=0.5).double())(z)
    want = NTXent(0.3)(z) + 0.1 * (4 * torch.log(torch.tensor(0.3, dtype=torch.float64)) + 1 / 0.3)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)


def test_multi_head_objective_is_the_weighted_sum_of_the_heads_losses(composed) -> None:  # type: ignore[no-untyped-def]
    module = build_module(composed("head=multi", "head.weights=[1.0,0.5,0.25]", "head.out_dim=16"))
    assert isinstance(module.head, MultiHead) and module.head_dim == 48
    torch.manual_seed(0)
    views = module.view_maker(torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8))  # digits: 1 channel
    loss, h, z = module.objective(views, torch.arange(6))
    parts = module.head.split(z)
    want = sum(w * module.loss_fn(p, views=2) for w, p in zip([1.0, 0.5, 0.25], parts, strict=True))
    assert z.shape == (12, 48) and loss.item() == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["head=multi", "head.num_heads=0"], r"head: head.num_heads=0: expected at least 1 head"),
        (["head=multi", "head.weights=[1.0,-1.0,1.0]"], r"head.weights=\[1.0, -1.0, 1.0\]: expected 3 non-negative"),
        (["loss=amcl", "loss.tau_min=1.0"], r"loss.tau_min=1.0, loss.tau_max=1.0: expected 0 < tau_min < tau_max"),
        (["loss=amcl", "loss.beta=-0.1"], r"loss.beta=-0.1: expected beta >= 0"),
        (["method=moco", "head=multi"], r"MoCo has its own objective and does not split a multi-head projector"),
        (["loss=isogclr", "head=multi"], r"loss ISogCLR keeps per-image state and takes one projector"),
    ],
)
def test_bad_settings_fail_before_training(composed, overrides, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        build_module(composed(*overrides))


def test_amcl_with_three_heads_trains_logs_temperatures_and_reports_each_head(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("loss=amcl", "head=multi", "eval.baselines=[]", "trainer.log_every_n_steps=1")
    run(cfg, tmp_path / "run", loss_choice="amcl")
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    taus = [r for r in rows if r.get("train/tau_pos_median")]
    assert taus, "no temperature rows"
    for r in taus:
        for kind in ("pos", "neg"):
            lo, mid, hi = (float(r[f"train/tau_{kind}_{q}"]) for q in ("q10", "median", "q90"))
            assert 0.05 <= lo <= mid <= hi <= 1.0
    assert any(r.get("val/rankme_projector_head2") for r in rows)
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    for c in range(3):
        for key in ("rankme", "lidar", "align", "uniform"):
            assert f"{key}_projector_head{c}" in metrics, f"{key}_projector_head{c}"
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["state_dict"]["loss_fn.phi.2.bias"].abs().sum() > 0, "φ was not trained (its bias starts at zero)"
