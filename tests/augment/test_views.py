"""The batched view maker against torchvision's functional ops, and its randomness contract."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from selfsup.augment import ViewMaker, color
from selfsup.augment.geometry import resized_crop, sample_crop_boxes


def _rgb(b: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "ours,theirs,factors",
    [
        (color.adjust_brightness, TF.adjust_brightness, [0.3, 1.0, 1.7]),
        (color.adjust_contrast, TF.adjust_contrast, [0.2, 1.0, 1.6]),
        (color.adjust_saturation, TF.adjust_saturation, [0.0, 0.5, 1.8]),
        (color.adjust_hue, TF.adjust_hue, [-0.4, -0.1, 0.0, 0.25, 0.5]),
    ],
    ids=["brightness", "contrast", "saturation", "hue"],
)
def test_colour_ops_match_torchvision(ours, theirs, factors) -> None:  # type: ignore[no-untyped-def]
    x = _rgb(len(factors))
    got = ours(x.clone(), torch.tensor(factors))
    want = torch.stack([theirs(x[i], f) for i, f in enumerate(factors)])
    assert (got - want).abs().max().item() <= 1 / 255


def test_grayscale_solarize_blur_match_torchvision() -> None:
    x = _rgb(3)
    assert torch.allclose(color.grayscale(x), TF.rgb_to_grayscale(x), atol=1e-6)
    assert torch.allclose(color.solarize(x, 0.5), TF.solarize(x, 0.5), atol=1e-6)
    sigmas = [0.3, 1.0, 2.0]
    got = color.gaussian_blur(x, torch.tensor(sigmas), kernel_size=5)
    want = torch.stack([TF.gaussian_blur(x[i], [5, 5], [s, s]) for i, s in enumerate(sigmas)])
    assert (got - want).abs().max().item() <= 1 / 255


def test_crop_boxes_respect_scale_and_ratio_ranges() -> None:
    torch.manual_seed(0)
    h = w = 64
    scale, ratio = (0.2, 0.6), (0.5, 2.0)
    boxes = sample_crop_boxes(20000, h, w, scale, ratio, torch.device("cpu"))
    x0, y0, bw, bh = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + bw <= w).all() and (y0 + bh <= h).all()
    area = bw * bh / (h * w)
    # Widths and heights are rounded to pixels, which moves area and ratio by at most that much.
    assert area.min() >= scale[0] * (1 - 2 / math.sqrt(scale[0] * h * w)) - 1e-6
    assert area.max() <= scale[1] * (1 + 2 / math.sqrt(scale[1] * h * w)) + 1e-6
    r = bw / bh
    assert r.min() >= ratio[0] * 0.9 and r.max() <= ratio[1] * 1.1
    # Draws cover the range rather than sitting at one value.
    assert area.min() < scale[0] + 0.05 and area.max() > scale[1] - 0.05


def test_full_box_crop_is_identity_and_flip_mirrors() -> None:
    x = _rgb(4, 12)
    box = torch.tensor([[0.0, 0.0, 12.0, 12.0]]).repeat(4, 1)
    assert torch.allclose(resized_crop(x, box, 12), x, atol=1e-5)
    flipped = resized_crop(x, box, 12, flip=torch.tensor([True, False, True, False]))
    assert torch.allclose(flipped[0], x[0].flip(-1), atol=1e-5)
    assert torch.allclose(flipped[1], x[1], atol=1e-5)


def test_crop_picks_the_right_region() -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:, 4:] = 1.0  # bottom-right quadrant lit
    out = resized_crop(x, torch.tensor([[4.0, 4.0, 4.0, 4.0]]), 4)
    assert torch.allclose(out, torch.ones_like(out), atol=1e-6)


def test_view_maker_shapes_range_and_normalisation() -> None:
    vm = ViewMaker(views=3, size=10, blur_p=0.5, solarize_p=0.2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = (torch.rand(5, 3, 16, 16) * 255).to(torch.uint8)
    out = vm(x)
    assert out.count == 3 and out.mix is None and len(out.groups) == 1
    v = out.groups[0]
    assert v.shape == (15, 3, 10, 10) and v.dtype == torch.float32
    assert v.min() >= -2 - 1e-5 and v.max() <= 2 + 1e-5  # (0 - .5)/.25 .. (1 - .5)/.25
    assert vm.prepare(x).shape == (5, 3, 10, 10)


def test_same_seed_same_views_and_views_of_one_image_differ() -> None:
    vm = ViewMaker(views=2, size=16, blur_p=0.5)
    x = (torch.rand(8, 3, 16, 16) * 255).to(torch.uint8)
    torch.manual_seed(3)
    a = vm(x).groups[0]
    torch.manual_seed(3)
    b = vm(x).groups[0]
    assert torch.equal(a, b)
    first, second = a[:8], a[8:]
    assert all(not torch.allclose(first[i], second[i]) for i in range(8))


def test_grey_images_and_bad_input() -> None:
    vm = ViewMaker(views=2, size=8, jitter=(0.4, 0.4, 0.4, 0.1))  # saturation/hue are no-ops on grey
    x = (torch.rand(4, 1, 8, 8) * 255).to(torch.uint8)
    assert vm(x).groups[0].shape == (8, 1, 8, 8)
    with pytest.raises(TypeError, match="uint8"):
        vm(x.float())
    with pytest.raises(ValueError, match="jitter"):
        ViewMaker(jitter=(0.4, 0.4))


def test_per_view_recipes_are_asymmetric_and_checked() -> None:
    vm = ViewMaker(views=2, size=8, per_view=[{"blur_p": 1.0}, {"blur_p": 0.1, "solarize_p": 0.2}])
    assert [r.blur_p for r in vm.recipes] == [1.0, 0.1]
    assert [r.solarize_p for r in vm.recipes] == [0.0, 0.2]
    # Solarize only on the second view: with jitter, crop and flip off, view 1 never solarizes.
    plain = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    vm = ViewMaker(views=2, size=8, per_view=[{}, {"solarize_p": 1.0}], mean=(0.0,), std=(1.0,), **plain)
    x = torch.full((3, 1, 8, 8), 200, dtype=torch.uint8)
    v = vm(x).groups[0]
    assert torch.allclose(v[:3], torch.full_like(v[:3], 200 / 255))
    assert torch.allclose(v[3:], torch.full_like(v[3:], 1 - 200 / 255))
    with pytest.raises(ValueError, match=r"per_view\[1\].*'blurp'"):
        ViewMaker(views=2, per_view=[{}, {"blurp": 1.0}])
    with pytest.raises(ValueError, match="3 entries but augment.views=2"):
        ViewMaker(views=2, per_view=[{}, {}, {}])


class _Shift(torch.nn.Module):
    """An augmentation op for the ``ops`` slot: float views in [0, 1] in, the same out."""

    def __init__(self, by: float) -> None:
        super().__init__()
        self.by = by

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.by


def test_ops_of_ones_own_run_in_order_after_the_recipe_on_the_views_that_take_them() -> None:
    plain = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    ops = [_Shift(0.5), torch.nn.Hardtanh(0.0, 1.0)]  # shift, then clamp: the order shows
    vm = ViewMaker(
        views=2,
        size=8,
        per_view=[{}, {"ops": False}],
        local_views=2,
        local_size=8,
        ops=ops,
        solarize_p=1.0,
        mean=(0.0,),
        std=(1.0,),
        **plain,
    )
    x = torch.full((3, 1, 8, 8), 200, dtype=torch.uint8)
    v = vm(x).groups
    solarized = 1 - 200 / 255  # the recipe's last step, before the ops
    assert torch.allclose(v[0][:3], torch.full_like(v[0][:3], min(solarized + 0.5, 1.0)))
    assert torch.allclose(v[0][3:], torch.full_like(v[0][3:], solarized))  # per_view: ops off
    assert torch.allclose(v[1], torch.full_like(v[1], min(solarized + 0.5, 1.0)))  # local views take them
    assert [type(m) for m in vm.ops] == [_Shift, torch.nn.Hardtanh]  # submodules: moved with the model


def test_ops_need_the_batched_backend() -> None:
    from selfsup.augment import make_view_maker

    with pytest.raises(ValueError, match=r"^augment.ops \(_Shift\) needs augment.backend=batched") as e:
        make_view_maker(backend="torchvision", ops=[_Shift(0.1)])
    assert "\n" not in str(e.value)


def test_multicrop_makes_local_views_at_their_own_size() -> None:
    vm = ViewMaker(views=2, size=16, local_views=3, local_size=8, local_crop_scale=(0.1, 0.3))
    x = (torch.rand(4, 3, 20, 20) * 255).to(torch.uint8)
    out = vm(x)
    assert out.count == 5
    assert [g.shape for g in out.groups] == [(8, 3, 16, 16), (12, 3, 8, 8)]
    assert vm.local_recipe.crop_scale == (0.1, 0.3) and vm.recipes[0].crop_scale == (0.08, 1.0)
    assert vm.global_views(x).shape == (8, 3, 16, 16)


def test_each_view_is_made_for_the_whole_batch_at_once() -> None:
    # The batch is processed as a whole: one call, no per-image Python loop over B.
    vm = ViewMaker(views=2, size=8)
    calls = []
    orig = vm._one_view

    def spy(x, r, size):  # type: ignore[no-untyped-def]
        calls.append(x.shape[0])
        return orig(x, r, size)

    vm._one_view = spy  # type: ignore[method-assign]
    vm((torch.rand(64, 3, 8, 8) * 255).to(torch.uint8))
    assert calls == [64, 64]
