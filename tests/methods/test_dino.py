"""method=dino: DINO's loss against a naive float64 loop of the paper's Eqs. 3-4 (centring,
sharpening, every student view against every other global view of the teacher); the method's
objective is that loss of its own networks' outputs (teacher: the global views only); the teacher
temperature's warm-up, the frozen last layer and the per-parameter clip; a ViT with local views."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from selfsup.build import build_module
from selfsup.heads.dino import DINOHead
from selfsup.losses.dino import DINOLoss
from selfsup.methods.dino import DINO
from tests.losses.reference_methods import assert_same
from tests.methods.test_distributed_methods import eval_module, global_views, tiny_cfg
from tests.methods.test_swav import sinkhorn_reference


def dino_naive(
    student: Tensor, teacher: Tensor, views: int, center: Tensor, tau_s: float, tau_t: float,
    sinkhorn_iterations: int | None = None,
) -> Tensor:  # fmt: skip
    """Σ over teacher global view t and student view s ≠ t of mean_i H(P_t(i), P_s(i)), over the pairs.
    P_t: the centred, sharpened softmax, or with ``sinkhorn_iterations`` DINOv2's Sinkhorn-Knopp
    codes of all the teacher's rows at ε = τ_t (the centre unread)."""
    b = student.shape[0] // views
    globals_ = teacher.shape[0] // b

    def softmax(row: Tensor, tau: float) -> list[Tensor]:
        e = [torch.exp(v / tau) for v in row]
        total = sum(e)
        return [x / total for x in e]

    if sinkhorn_iterations is not None:
        codes = sinkhorn_reference(teacher.detach(), tau_t, sinkhorn_iterations)

    terms = []
    for t in range(globals_):
        for s in range(views):
            if s == t:
                continue
            per_image = []
            for i in range(b):
                if sinkhorn_iterations is None:
                    q = softmax((teacher[t * b + i] - center[0]).detach(), tau_t)
                else:
                    q = list(codes[t * b + i])
                p = softmax(student[s * b + i], tau_s)
                per_image.append(-sum(qk * torch.log(pk) for qk, pk in zip(q, p, strict=True)))
            terms.append(sum(per_image) / b)
    return sum(terms) / len(terms)  # type: ignore[return-value]


@pytest.mark.parametrize("views,globals_", [(2, 2), (4, 2), (3, 1)])
def test_the_loss_is_the_papers_and_the_centre_moves_to_the_global_mean(views: int, globals_: int) -> None:
    g = torch.Generator().manual_seed(views)
    b, k = 3, 5
    student = torch.randn(views * b, k, dtype=torch.float64, generator=g, requires_grad=True)
    teacher = torch.randn(globals_ * b, k, dtype=torch.float64, generator=g)
    loss = DINOLoss(out_dim=k, student_temperature=0.1, center_momentum=0.9).double()
    loss.center.copy_(torch.randn(1, k, generator=g))
    center = loss.center.clone()
    got = loss(student, views=views, teacher=teacher, teacher_temperature=0.04)
    assert_same(got, dino_naive(student, teacher, views, center, 0.1, 0.04), [student])
    torch.testing.assert_close(loss.center, 0.9 * center + 0.1 * teacher.mean(0, keepdim=True), rtol=1e-12, atol=0)


@pytest.mark.parametrize("views,globals_", [(4, 2), (3, 1)])
def test_sinkhorn_knopp_centring_is_dinov2s_and_leaves_the_centre(views: int, globals_: int) -> None:
    g = torch.Generator().manual_seed(views)
    b, k = 3, 5
    student = torch.randn(views * b, k, dtype=torch.float64, generator=g, requires_grad=True)
    teacher = torch.randn(globals_ * b, k, dtype=torch.float64, generator=g)  # not cosines: larger than 1
    loss = DINOLoss(out_dim=k, centering="sinkhorn_knopp", sinkhorn_iterations=2).double()
    loss.center.copy_(torch.randn(1, k, generator=g))
    center = loss.center.clone()
    got = loss(student, views=views, teacher=teacher, teacher_temperature=0.04)
    assert_same(got, dino_naive(student, teacher, views, center, 0.1, 0.04, sinkhorn_iterations=2), [student])
    assert torch.equal(loss.center, center)


def koleo_naive(features: Tensor, globals_: int) -> Tensor:
    """Σ over the global views of -(1/B) Σ_i log(‖u_i − u_j‖ + 1e-8), u the unit rows of the view's
    features, j ≠ i the row nearest to u_i (Sablayrolles et al. 2019; DINOv2's KoLeoLoss)."""
    b = features.shape[0] // globals_
    total = torch.zeros((), dtype=torch.float64)
    for g in range(globals_):
        u = [features[g * b + i] / features[g * b + i].norm() for i in range(b)]
        for i in range(b):
            j = max((j for j in range(b) if j != i), key=lambda j: float(u[i] @ u[j]))
            total = total - torch.log(((u[i] - u[j] + 1e-8) ** 2).sum().sqrt() + 1e-8) / b
    return total


def test_the_koleo_term_spreads_the_global_views_features() -> None:
    g = torch.Generator().manual_seed(5)
    b, k, views = 4, 5, 3
    student = torch.randn(views * b, k, dtype=torch.float64, generator=g, requires_grad=True)
    teacher = torch.randn(2 * b, k, dtype=torch.float64, generator=g)
    features = torch.randn(2 * b, 6, dtype=torch.float64, generator=g, requires_grad=True)
    loss = DINOLoss(out_dim=k, koleo_weight=0.3).double()
    center = loss.center.clone()
    got = loss(student, views=views, teacher=teacher, teacher_temperature=0.04, features=features)
    want = dino_naive(student, teacher, views, center, 0.1, 0.04) + 0.3 * koleo_naive(features, 2)
    assert_same(got, want, [student, features])
    assert loss.logged()["loss_koleo"].item() == pytest.approx(koleo_naive(features, 2).item(), rel=1e-12)
    with pytest.raises(ValueError, match=r"^koleo_weight needs the student's features of the 2 global views"):
        loss(student, views=views, teacher=teacher, teacher_temperature=0.04)


@pytest.mark.parametrize("koleo_weight", [0.0, 0.1])
def test_the_objective_is_the_loss_of_its_own_networks_and_the_teacher_sees_the_global_views(
    koleo_weight: float,
) -> None:
    cfg = tiny_cfg("dino", "dino")
    cfg.loss.koleo_weight = koleo_weight  # KoLeo reads the student's backbone features of the global views
    assert cfg.augment.local_views > 0 and cfg.method.module.eval_with == "teacher"
    module = eval_module(cfg)
    views, index = global_views(module)
    center = module.loss_fn.center.clone()
    loss, h, z = module.objective(views, index)
    b, globals_ = index.shape[0], views.groups[0].shape[0] // index.shape[0]
    student = torch.cat([module.head(module.backbone(g)) for g in views.groups])
    teacher = module.momentum_teacher.head(module.momentum_teacher.backbone(views.groups[0]))
    assert h.shape[0] == z.shape[0] == globals_ * b  # the teacher's rows, evaluated
    params = [p for m in module.trained_modules() for p in m.parameters() if p.requires_grad]
    want = dino_naive(student, teacher, views.count, center, 0.1, cfg.method.module.warmup_teacher_temperature)
    if koleo_weight:
        want = want + koleo_weight * koleo_naive(module.backbone(views.groups[0]), globals_)
    assert_same(loss, want, params)


def test_the_teacher_temperature_rises_over_the_warm_up_epochs(composed) -> None:  # type: ignore[no-untyped-def]
    module = build_module(composed("method=dino"))
    temps = [module.teacher_temperature_at(e) for e in (0, 15, 29, 30, 100)]
    assert temps == pytest.approx([0.04, 0.04 + 0.03 * 15 / 29, 0.07, 0.07, 0.07], rel=1e-12)
    assert (
        build_module(
            composed("method=dino", "method.module.warmup_teacher_temperature_epochs=0")
        ).teacher_temperature_at(0)
        == 0.07
    )


class _Optimizer:
    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.param_groups = [{"params": params}]


def test_the_last_layer_is_frozen_in_the_first_epoch_and_each_gradient_clipped(composed) -> None:  # type: ignore[no-untyped-def]
    module = build_module(composed("method=dino"))
    params = [p for m in module.trained_modules() for p in m.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.full_like(p, 10.0)
    module.on_before_optimizer_step(_Optimizer(params))  # epoch 0 (no trainer): frozen
    last = {id(p) for p in module.head.last_layer.parameters()}
    assert last and all(p.grad is None for p in params if id(p) in last)
    for p in params:
        if id(p) not in last:
            assert p.grad is not None and p.grad.norm().item() == pytest.approx(3.0, rel=1e-5)
    trained_g = module.head.last_layer.parametrizations.weight.original0
    assert not trained_g.requires_grad  # norm_last_layer: g stays 1


def test_dino_needs_its_heads_last_layer_to_freeze_it(composed) -> None:  # type: ignore[no-untyped-def]
    refused = r"^method.module: freeze_last_layer=1 needs a head with a last_layer \(head=dino\)"
    with pytest.raises(ValueError, match=refused):
        build_module(composed("method=dino", "head=mlp", "head.out_dim=32", "loss.out_dim=32"))
    assert isinstance(build_module(composed("method=dino", "head=mlp", "method.module.freeze_last_layer=0")), DINO)


def test_the_head_is_cosines_to_unit_prototypes() -> None:
    head = DINOHead(in_dim=6, hidden_dims=(8,), bottleneck_dim=4, out_dim=5).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    bottleneck = torch.nn.functional.normalize(head.mlp(x), dim=-1)
    prototypes = torch.nn.functional.normalize(head.last_layer.parametrizations.weight.original1, dim=1)
    torch.testing.assert_close(head(x), bottleneck @ prototypes.T)
    assert head(x).abs().max() <= 1 + 1e-12  # cosines


def test_a_vit_student_takes_the_local_views_at_their_size(composed) -> None:  # type: ignore[no-untyped-def]
    vit = [
        "backbone=timm",
        "backbone.name=vit_tiny_patch16_224",
        "+backbone.model_kwargs.img_size=16",
        "+backbone.model_kwargs.patch_size=4",
        "+backbone.model_kwargs.depth=1",
        "+backbone.model_kwargs.dynamic_img_size=true",
        "head.hidden_dims=[32]",
        "head.out_dim=16",
    ]
    module = build_module(composed("method=dino", *vit))
    views = module.view_maker(torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8))
    assert [g.shape[-1] for g in views.groups] == [16, 8]
    loss, h, _ = module.objective(views, torch.arange(4))
    loss.backward()
    assert torch.isfinite(loss) and h.shape == (2 * 4, 192)
