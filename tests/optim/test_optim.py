"""Warm-up + cosine schedule values and LARS's update rule."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.optim import LARS, warmup_cosine


def test_warmup_then_cosine_to_min() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = warmup_cosine(opt, total_steps=100, steps_per_epoch=10, warmup_epochs=2, min_lr_ratio=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1 / 20) and lrs[19] == pytest.approx(1.0)
    assert lrs[20] == pytest.approx(1.0)
    mid = 20 + 40
    assert lrs[mid] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 40 / 80)))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b - 1e-12 for a, b in zip(lrs[20:], lrs[21:], strict=False))


def test_lars_step_uses_trust_ratio_and_skips_excluded_groups() -> None:
    w = torch.nn.Parameter(torch.full((4,), 2.0))
    b = torch.nn.Parameter(torch.full((4,), 2.0))
    opt = LARS(
        [{"params": [w]}, {"params": [b], "weight_decay": 0.0, "lars_exclude": True}],
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        trust_coefficient=0.01,
    )
    w.grad = torch.full((4,), 0.5)
    b.grad = torch.full((4,), 0.5)
    opt.step()
    trust = 0.01 * torch.norm(torch.full((4,), 2.0)) / torch.norm(torch.full((4,), 0.5))
    assert torch.allclose(w, 2.0 - 0.1 * trust * 0.5)
    assert torch.allclose(b, torch.full((4,), 2.0 - 0.1 * 0.5))


def test_lars_decreases_a_quadratic() -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(10, 10))
    opt = LARS([w], lr=1.0, momentum=0.9, weight_decay=0.0, trust_coefficient=0.02)
    first = None
    for _ in range(50):
        opt.zero_grad()
        loss = (w**2).sum()
        first = first or loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
