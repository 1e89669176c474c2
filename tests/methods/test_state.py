"""State kept between steps: momentum schedule, EMA teacher, MoCo's queue, NPID's bank, exactly."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from torch import nn

from selfsup.methods._memory_bank import MemoryBank
from selfsup.methods._momentum import MomentumTeacher
from selfsup.methods._queue import KeyQueue
from selfsup.methods.base import cosine_momentum


def test_cosine_momentum_goes_from_base_to_final() -> None:
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(50, 100, 0.996) == pytest.approx(1 - 0.004 / 2)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_momentum(25, 100, 0.99, 0.999) == pytest.approx(0.999 - 0.009 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_momentum(3, 100, 0.999, 0.999) == pytest.approx(0.999)  # equal ends: a constant m


def test_teacher_moves_by_ema_and_keeps_its_own_buffers() -> None:
    torch.manual_seed(0)
    backbone, head = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), nn.Linear(4, 2)
    teacher = MomentumTeacher(backbone, head)
    assert all(not p.requires_grad for p in teacher.parameters())
    before = [p.clone() for p in teacher.parameters()]
    with torch.no_grad():
        for p in list(backbone.parameters()) + list(head.parameters()):
            p.add_(torch.randn_like(p))
        backbone[1].running_mean.fill_(7.0)
    online = list(backbone.parameters()) + list(head.parameters())
    teacher.update(backbone, head, 0.9)
    for xi, xi0, theta in zip(teacher.parameters(), before, online, strict=True):
        torch.testing.assert_close(xi, 0.9 * xi0 + 0.1 * theta)
    assert teacher.backbone[1].running_mean.abs().max() == 0  # not copied from the online BN


def test_queue_is_fifo_and_wraps() -> None:
    q = KeyQueue(size=5, dim=2)
    keys = torch.nn.functional.normalize(torch.randn(8, 2), dim=1)
    initial = q.keys.clone()
    q.enqueue(keys[:3])
    torch.testing.assert_close(q.keys[:3], keys[:3])
    torch.testing.assert_close(q.keys[3:], initial[3:])
    assert int(q.ptr) == 3
    q.enqueue(keys[3:7])  # slots 3, 4, then 0, 1
    torch.testing.assert_close(q.keys, torch.stack([keys[5], keys[6], keys[2], keys[3], keys[4]]))
    assert int(q.ptr) == 2
    q.enqueue(torch.randn(9, 2) * 3)  # more keys than slots: the newest 5, normalised
    assert torch.allclose(q.keys.norm(dim=1), torch.ones(5))
    state = q.state_dict()
    assert set(state) == {"keys", "ptr"}  # both in the checkpoint


def test_memory_bank_update_is_the_normalised_momentum_average() -> None:
    bank = MemoryBank(size=6, dim=3, momentum=0.5)
    rows = bank.rows.clone()
    feats = torch.randn(2, 3)
    bank.update(torch.tensor([4, 1]), feats)
    for r, f in zip([4, 1], feats, strict=True):
        want = 0.5 * rows[r] + 0.5 * f / f.norm()
        torch.testing.assert_close(bank.rows[r], want / want.norm())
    torch.testing.assert_close(bank.rows[[0, 2, 3, 5]], rows[[0, 2, 3, 5]])
    bank.resize_per_sample(10)
    assert bank.rows.shape == (10, 3) and "rows" in bank.state_dict()


def test_teacher_drops_nothing_when_the_student_does() -> None:
    """The teacher copies a student with stochastic depth and dropout without them, as the official
    DINO and iBOT build their teacher without ``drop_path_rate``: its training-mode forward is then
    deterministic and equals the student's eval-mode one."""
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=16, patch_size=4, num_classes=0, drop_path_rate=0.5, drop_rate=0.5
    )
    head = nn.Sequential(nn.Linear(192, 8), nn.Dropout(0.5))
    teacher = MomentumTeacher(vit, head).train()
    vit.train(), head.train()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        h1, z1 = teacher(x)
        h2, z2 = teacher(x)
        assert not torch.equal(vit(x), vit(x))  # the student still drops paths
        vit.eval(), head.eval()
        ref = vit(x)
        torch.testing.assert_close(h1, h2)
        torch.testing.assert_close(z1, z2)
        torch.testing.assert_close(h1, ref)
        torch.testing.assert_close(z1, head(ref))
    assert vit.blocks[-1].drop_path1.drop_prob > 0 and head[1].p == 0.5  # the student's own are kept
