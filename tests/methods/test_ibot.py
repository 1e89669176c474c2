"""method=ibot: the loss against a float64 loop of the paper's class and masked-patch terms (and
both centres), the blockwise masks (their ratio, split-invariant over ranks), the objective as that
loss of its own networks (the student's masked global views with the mask token, the teacher's
unmasked, local views without a patch term), the patch temperature's warm-up, and the refusals."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import selfsup.methods.ibot as ibot_module
from selfsup.build import ConfigError, build_module
from selfsup.losses.ibot import IBOTLoss
from selfsup.methods.ibot import IBOT, block_mask
from tests.conftest import free_port, start_ranks
from tests.losses.reference_methods import assert_same
from tests.methods.test_dino import dino_naive, koleo_naive
from tests.methods.test_distributed_methods import WORLD, _compare, _step, _worker, eval_module, global_views, tiny_cfg
from tests.methods.test_swav import sinkhorn_reference


def mim_naive(
    student: Tensor, teacher: Tensor, mask: Tensor, center: Tensor, tau_s: float, tau_t: float, b: int,
    sinkhorn_iterations: int | None = None,
) -> Tensor:  # fmt: skip
    """Per global view and image: the mean over its masked patches of H(P_t, P_s) (0 without one);
    averaged over the images, then the views. P_t: the centred, sharpened softmax, or with
    ``sinkhorn_iterations`` DINOv2's Sinkhorn-Knopp codes at ε = τ_t of the masked patches' rows."""
    masked = [(r, n) for r in range(teacher.shape[0]) for n in range(teacher.shape[1]) if mask[r, n]]
    if sinkhorn_iterations is not None:
        rows = torch.stack([teacher[r, n].detach() for r, n in masked])
        codes = dict(zip(masked, sinkhorn_reference(rows, tau_t, sinkhorn_iterations), strict=True))

    def softmax(row: Tensor, tau: float) -> list[Tensor]:
        e = [torch.exp(v / tau) for v in row]
        total = sum(e)
        return [x / total for x in e]

    per_view = []
    for g in range(student.shape[0] // b):
        per_image = []
        for i in range(b):
            r = g * b + i
            terms = []
            for n in range(student.shape[1]):
                if mask[r, n]:
                    if sinkhorn_iterations is None:
                        q = softmax((teacher[r, n] - center[0]).detach(), tau_t)
                    else:
                        q = list(codes[r, n])
                    p = softmax(student[r, n], tau_s)
                    terms.append(-sum(qk * torch.log(pk) for qk, pk in zip(q, p, strict=True)))
            per_image.append(sum(terms) / len(terms) if terms else torch.zeros((), dtype=torch.float64))
        per_view.append(sum(per_image) / b)
    return sum(per_view) / len(per_view)  # type: ignore[return-value]


B, K, N, VIEWS = 3, 5, 4, 4  # images, outputs, patches, views (2 global) of the loss tests


def _loss_inputs(g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Student and teacher class outputs, patch outputs and a mask, float64, view-major."""
    z = torch.randn(VIEWS * B, K, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(2 * B, K, dtype=torch.float64, generator=g)
    zp = torch.randn(2 * B, N, K, dtype=torch.float64, generator=g, requires_grad=True)
    tp = torch.randn(2 * B, N, K, dtype=torch.float64, generator=g)
    mask = torch.rand(2 * B, N, generator=g) < 0.5
    mask[1] = False  # an image without a masked patch adds 0 to its view's mean
    return z, t, zp, tp, mask


def test_the_loss_is_the_papers_and_both_centres_move_to_the_global_means() -> None:
    g = torch.Generator().manual_seed(0)
    z, t, zp, tp, mask = _loss_inputs(g)
    b, k, views = B, K, VIEWS
    loss = IBOTLoss(out_dim=k, cls_weight=0.7, patch_weight=1.3).double()
    loss.cls.center.copy_(torch.randn(1, k, generator=g))
    loss.patch_center.copy_(torch.randn(1, k, generator=g))
    c1, c2 = loss.cls.center.clone(), loss.patch_center.clone()
    got = loss(z, views=views, teacher=t, teacher_temperature=0.04, patches=zp, teacher_patches=tp, mask=mask,
               teacher_patch_temperature=0.06)  # fmt: skip
    want = 0.7 * dino_naive(z, t, views, c1, 0.1, 0.04) + 1.3 * mim_naive(zp, tp, mask, c2, 0.1, 0.06, b)
    assert_same(got, want, [z, zp])
    torch.testing.assert_close(loss.cls.center, 0.9 * c1 + 0.1 * t.mean(0, keepdim=True), rtol=1e-12, atol=0)
    torch.testing.assert_close(loss.patch_center, 0.9 * c2 + 0.1 * tp.mean((0, 1))[None], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match=r"mask \(globals\*batch, N\)"):
        loss(z, views=views, teacher=t, teacher_temperature=0.04, patches=zp, teacher_patches=tp, mask=mask[:, :2],
             teacher_patch_temperature=0.06)  # fmt: skip


def test_dinov2s_sinkhorn_knopp_over_the_masked_patches_and_koleo_leave_both_centres() -> None:
    g = torch.Generator().manual_seed(1)
    z, t, zp, tp, mask = _loss_inputs(g)
    b, k, views = B, K, VIEWS
    features = torch.randn(2 * b, 6, dtype=torch.float64, generator=g, requires_grad=True)
    loss = IBOTLoss(out_dim=k, cls_weight=0.5, centering="sinkhorn_knopp", sinkhorn_iterations=3, koleo_weight=0.1)
    loss = loss.double()
    centres = loss.cls.center.clone(), loss.patch_center.clone()
    got = loss(z, views=views, teacher=t, teacher_temperature=0.04, patches=zp, teacher_patches=tp, mask=mask,
               teacher_patch_temperature=0.06, features=features)  # fmt: skip
    want = (
        0.5 * dino_naive(z, t, views, centres[0], 0.1, 0.04, sinkhorn_iterations=3)
        + mim_naive(zp, tp, mask, centres[1], 0.1, 0.06, b, sinkhorn_iterations=3)
        + 0.1 * koleo_naive(features, 2)  # DINOv2's: not weighted by λ1
    )
    assert_same(got, want, [z, zp, features])
    assert set(loss.logged()) == {"loss_cls", "loss_mim", "loss_koleo"}
    assert torch.equal(loss.cls.center, centres[0]) and torch.equal(loss.patch_center, centres[1])


@pytest.mark.distributed
def test_two_processes_equal_one_with_sinkhorn_knopp_centring_and_koleo(tmp_path: Path) -> None:
    """DINO's and iBOT's codes and KoLeo's neighbours are over the global batch; iBOT's ranks hold
    different numbers of masked patches (the masks are drawn per image), and the codes count every
    rank's."""
    cfgs = {}
    for method in ("dino", "ibot"):
        cfgs[method] = tiny_cfg(method, method)
        cfgs[method].loss.centering = "sinkhorn_knopp"
        cfgs[method].loss.koleo_weight = 0.1
    start_ranks(_worker, (free_port(), str(tmp_path), cfgs), WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for method, cfg in cfgs.items():
        module = eval_module(cfg)
        want = _step(module, *global_views(module))
        for got in ranks:
            _compare(got[method], want)


def test_block_masks_reach_their_ratio_in_blocks() -> None:
    rng = random.Random(0)
    assert not any(any(row) for row in block_mask(rng, 14, 14, 0.0))
    counts = [sum(map(sum, block_mask(rng, 14, 14, 0.3))) for _ in range(200)]
    assert max(counts) <= 0.3 * 196 and min(counts) > 0
    assert sum(counts) / len(counts) > 0.8 * 0.3 * 196  # the loop stops short only when no try fits

    # Blocks, not scattered patches: a few 4-connected regions, where as many random patches make many.
    def regions(cells: set[tuple[int, int]]) -> int:
        seen, count = set(), 0
        for start in cells:
            if start in seen:
                continue
            count, stack = count + 1, [start]
            while stack:
                r, c = stack.pop()
                if (r, c) in seen or (r, c) not in cells:
                    continue
                seen.add((r, c))
                stack += [(r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)]
        return count

    masks = [block_mask(rng, 14, 14, 0.3) for _ in range(50)]
    blocky = [regions({(r, c) for r in range(14) for c in range(14) if m[r][c]}) for m in masks]
    scattered = [regions({divmod(i, 14) for i in rng.sample(range(196), 58)}) for _ in range(50)]
    assert sum(blocky) / 50 < 5 < 15 < sum(scattered) / 50


def test_masks_are_drawn_per_view_and_image_and_do_not_depend_on_the_split(monkeypatch: pytest.MonkeyPatch) -> None:
    module: Any = eval_module(tiny_cfg("ibot", "ibot"))
    torch.manual_seed(0)
    whole = module.random_masks(2, 64, (4, 4), torch.device("cpu"))
    assert whole.shape == (128, 16)
    empty = (whole.sum(1) == 0).float().mean().item()
    assert 0.3 < empty < 0.7  # half the views unmasked (ratio 0), the others 10-50 %
    assert whole.sum(1).max().item() <= 8
    monkeypatch.setattr(ibot_module, "world_size", lambda: 2)
    for r in range(2):
        monkeypatch.setattr(ibot_module, "rank", lambda r=r: r)
        torch.manual_seed(0)
        part = module.random_masks(2, 32, (4, 4), torch.device("cpu"))
        for v in range(2):  # view-major: view v's rows of this rank's images
            torch.testing.assert_close(part[v * 32 : (v + 1) * 32], whole[v * 64 + r * 32 : v * 64 + (r + 1) * 32])


@pytest.mark.parametrize("koleo_weight", [0.0, 0.1])
def test_the_objective_is_the_loss_of_its_own_networks(koleo_weight: float) -> None:
    cfg = tiny_cfg("ibot", "ibot")
    cfg.loss.koleo_weight = koleo_weight  # KoLeo reads the student's class tokens of the masked global views
    module: Any = eval_module(cfg)
    module.mask_embed.token.data.normal_()  # a mask token that differs from a patch's embedding
    views, index = global_views(module)
    assert len(views.groups) == 2 and views.global_count == 2  # local views too
    b, x = views.images, views.groups[0]
    torch.manual_seed(5)
    loss, h, z = module.objective(views, index)
    torch.manual_seed(5)
    grid = module.backbone.model.patch_embed.dynamic_feat_size(tuple(x.shape[-2:]))
    mask = module.random_masks(2, b, grid, x.device)
    assert mask.any()
    student = module.backbone.tokens(x, mask=mask, mask_token=module.mask_embed.token)
    zs = module.head(torch.cat([student.pooled, module.backbone(views.groups[1])]))
    zp = module.head(student.patches.flatten(0, 1)).view(*mask.shape, -1)
    teacher = module.momentum_teacher.backbone.tokens(x)
    zt = module.momentum_teacher.head(teacher.pooled)
    tp = module.momentum_teacher.head(teacher.patches.flatten(0, 1)).view(*mask.shape, -1)
    tau, tau_p = module.teacher_temperature_at(0), module.teacher_patch_temperature_at(0)
    c1, c2 = torch.zeros(1, zt.shape[1], dtype=torch.float64), torch.zeros(1, zt.shape[1], dtype=torch.float64)
    want = dino_naive(zs, zt, views.count, c1, 0.1, tau) + mim_naive(zp, tp, mask, c2, 0.1, tau_p, b)
    if koleo_weight:
        want = want + koleo_weight * koleo_naive(student.pooled, 2)
    params = [q for m in module.trained_modules() for q in m.parameters() if q.requires_grad]
    assert_same(loss, want, params)
    torch.testing.assert_close(h, teacher.pooled)  # eval_with: teacher, of the global views
    (grad,) = torch.autograd.grad(module.objective(views, index)[0], [module.mask_embed.token])
    assert grad.abs().sum() > 0  # the mask token is trained ...
    assert not any("mask_embed" in n for n, _ in module.momentum_teacher.named_parameters())  # ... and the student's


def test_the_patch_temperature_warms_up_as_the_class_tokens() -> None:
    module: Any = eval_module(tiny_cfg("ibot", "ibot"))
    module.warmup_teacher_temperature_epochs = 3
    assert [module.teacher_patch_temperature_at(e) for e in range(4)] == pytest.approx([0.04, 0.055, 0.07, 0.07])


def test_refusals_name_the_key(composed) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_cfg("ibot", "ibot")
    with pytest.raises(ConfigError, match=r"mask_ratio=\[0.3\] and mask_ratio_var=\[0.0, 0.2\]: expected lists"):
        build_module(composed("method=ibot", "method.module.mask_ratio=[0.3]"))
    with pytest.raises(ConfigError, match=r"mask_ratio 0.3 ± mask_ratio_var 0.4: expected ratios in \[0, 1\)"):
        build_module(composed("method=ibot", "method.module.mask_ratio=[0.3]", "method.module.mask_ratio_var=[0.4]"))
    with pytest.raises(ConfigError, match="IBOT needs a backbone's patch tokens, and backbone.name=resnet18 has none"):
        build_module(
            composed(
                "method=ibot",
                "backbone.name=resnet18",
                "~backbone.model_kwargs.img_size",
                "~backbone.model_kwargs.patch_size",
                "~backbone.model_kwargs.dynamic_img_size",
                "~backbone.model_kwargs.dynamic_img_pad",
            )
        )
    assert isinstance(build_module(cfg), IBOT)


def test_views_of_a_side_that_is_not_whole_patches_are_padded_up(composed) -> None:  # type: ignore[no-untyped-def]
    """Fashion-MNIST's 28 px global and 14 px local views with 4 px patches: the local views are
    padded up to 4 x 4 patches (dynamic_img_pad), and the loss is finite."""
    module: Any = build_module(composed("method=ibot", "data=fashion_mnist"))
    views = module.view_maker(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8))
    assert [tuple(g.shape[-2:]) for g in views.groups] == [(28, 28), (14, 14)]
    loss, _, _ = module.objective(views, torch.arange(4))
    assert torch.isfinite(loss)
