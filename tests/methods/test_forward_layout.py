"""method.module.forward_layout: ``joint`` forwards all views of a size in one pass (BN over every
view), ``per_view`` one pass per view (BN per view, as most methods' official code). Same rows in
the same order either way; the same values without batch-norm statistics of the batch (eval mode);
in train mode ``per_view`` is each view forwarded alone, by hand, and differs from ``joint``."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from selfsup.augment import Views
from selfsup.build import build_module
from selfsup.methods.base import Method
from tests.conftest import CONFIGS
from tests.methods.test_contract import METHODS

B = 6


def _module(composed: Any, method: str, layout: str, *extra: str) -> Method:
    torch.manual_seed(0)
    module = build_module(composed(f"method={method}", f"method.module.forward_layout={layout}", *extra))
    bank = getattr(module, "bank", None)
    if bank is not None:  # NPID: one bank row per training image (Method.setup, without a trainer)
        bank.resize_per_sample(B)
    return module


def _views(module: Method) -> Views:
    torch.manual_seed(1)
    return module.view_maker(torch.randint(0, 256, (B, 1, 12, 12), dtype=torch.uint8))


def _run(module: Method, views: Views) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(2)  # NPID draws its negatives
    return module.objective(views, torch.arange(B))


def _per_view(net: Any, x: torch.Tensor, count: int) -> torch.Tensor:
    """Each view's B rows through ``net`` alone, by hand."""
    return torch.cat([net(x[v * B : (v + 1) * B]) for v in range(count)])


@pytest.mark.parametrize("method", METHODS)
def test_both_layouts_train_every_method_and_agree_without_batch_statistics(composed, method: str) -> None:  # type: ignore[no-untyped-def]
    """Every method's objective in both layouts: a finite loss with gradients, (V*B, ·) outputs in
    the same order; in eval mode (BN from running statistics) the same loss and outputs to 1e-6,
    in train mode different ones (the statistics are per view or over all views) when the backbone
    has batch norm and there are two views or more (a ViT's layer norm is per token, MAE has one view)."""
    joint = _module(composed, method, "joint")
    per_view = copy.deepcopy(joint)
    per_view.forward_layout = "per_view"
    views = _views(joint)
    rows = views.count * B
    for module in (joint, per_view):
        loss, h, z = _run(module, views)
        # the rows of every view, or of some views of every image (a teacher of the global views)
        assert torch.isfinite(loss) and h.shape[1] == joint.backbone.num_features and z.shape[0] == h.shape[0]
        assert h.shape[0] % B == 0 and h.shape[0] <= rows
        loss.backward()
        assert all(p.grad is not None for p in module.backbone.parameters())
    eval_joint, eval_per_view = copy.deepcopy(joint).eval(), copy.deepcopy(per_view).eval()
    eval_per_view.load_state_dict(eval_joint.state_dict())
    with torch.no_grad():
        for a, b in zip(_run(eval_joint, views), _run(eval_per_view, views), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    train_per_view = copy.deepcopy(joint)
    train_per_view.forward_layout = "per_view"
    with torch.no_grad():
        h_joint, h_per_view = joint.encode(views), train_per_view.encode(views)
    batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in joint.backbone.modules())
    assert h_joint.shape == h_per_view.shape
    # Batch statistics over all views or per view: different features, with batch norm and 2+ views.
    assert torch.allclose(h_joint, h_per_view, atol=1e-4) is not (batch_norm and views.count > 1)


@pytest.mark.parametrize("layout", ["joint", "per_view"])
def test_train_mode_per_view_is_each_view_by_hand(composed, layout: str) -> None:  # type: ignore[no-untyped-def]
    """SimCLR with multi-crop (2 global views of 12 px, 2 local ones of 8 px): the backbone and the
    head see each view's B images alone (per_view), or all views of a size / all features (joint)."""
    module = _module(composed, "simclr", layout, "augment.local_views=2", "augment.local_size=8")
    views = _views(module)
    assert [g.shape[0] for g in views.groups] == [2 * B, 2 * B] and views.count == 4
    _, h, z = _run(module, views)
    with torch.no_grad():
        if layout == "per_view":
            want_h = torch.cat([_per_view(module.backbone, g, 2) for g in views.groups])
            want_z = _per_view(module.head, want_h, 4)
        else:
            want_h = torch.cat([module.backbone(g) for g in views.groups])
            want_z = module.head(want_h)
    torch.testing.assert_close(h, want_h, rtol=0, atol=1e-6)
    torch.testing.assert_close(z, want_z, rtol=0, atol=1e-6)


@pytest.mark.parametrize("layout", ["joint", "per_view"])
def test_the_teacher_and_the_predictor_follow_the_layout(composed, layout: str) -> None:  # type: ignore[no-untyped-def]
    """BYOL in train mode: the momentum teacher's backbone and head, and the online predictor, run
    in the method's layout."""
    module = _module(composed, "byol", layout)
    views = _views(module)
    (x,) = views.groups
    ht, zt = module.teach(views)
    teacher, predictor = module.momentum_teacher, module.predictor
    assert predictor is not None
    with torch.no_grad():
        h = module.encode(views)
        p = module.by_view(predictor, module.by_view(module.head, h, 2), 2)
        if layout == "per_view":
            want_ht = _per_view(teacher.backbone, x, 2)
            want_zt = _per_view(teacher.head, want_ht, 2)
            want_p = _per_view(predictor, _per_view(module.head, h, 2), 2)
        else:
            want_ht = teacher.backbone(x)
            want_zt = teacher.head(want_ht)
            want_p = predictor(module.head(h))
    torch.testing.assert_close(ht, want_ht, rtol=0, atol=1e-6)
    torch.testing.assert_close(zt, want_zt, rtol=0, atol=1e-6)
    torch.testing.assert_close(p, want_p, rtol=0, atol=1e-6)


def test_rows_that_are_not_whole_views_are_refused(composed) -> None:  # type: ignore[no-untyped-def]
    module = _module(composed, "simclr", "per_view")
    with pytest.raises(ValueError, match="7 rows are not 2 views of equal size"):
        module.by_view(module.head, torch.randn(7, module.backbone.num_features), 2)


def test_every_method_config_sets_its_papers_layout() -> None:
    """Each configs/method/*.yaml sets forward_layout itself, with a comment above it saying what it
    follows (the official code's batch norm); the signature's default is joint."""
    for method in METHODS:
        path = CONFIGS / "method" / f"{method}.yaml"
        assert OmegaConf.load(path).method.module.forward_layout in ("joint", "per_view"), method
        lines = path.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("forward_layout:"))
        comment = lines[at - 1].strip()
        assert comment.startswith("# ") and ("code" in comment) and ("BN" in comment), (method, comment)
    assert inspect.signature(Method.__init__).parameters["forward_layout"].default == "joint"
