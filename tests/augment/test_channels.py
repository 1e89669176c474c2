"""Views of images beyond 8-bit RGB: any channel count, 16 bits (selfsup/augment/views.py, color.py)."""

from __future__ import annotations

import pytest
import torch

from selfsup.augment import RandAugment, RandomFields, ViewMaker, make_view_maker
from selfsup.augment import color as C
from selfsup.eval.display import as_rgb

C13 = {"mean": [0.5] * 13, "std": [0.25] * 13}
PLAIN = {"jitter": (0.4, 0.4, 0.0, 0.0), "grayscale_p": 0.0}  # what augment=multispectral keeps of the recipe


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({}, r"augment.jitter: saturation 0.4 is an RGB op and data.channels=13; set it to 0"),
        ({"jitter": (0.4, 0.4, 0.0, 0.1)}, r"augment.jitter: hue 0.1 is an RGB op and data.channels=13"),
        ({**PLAIN, "grayscale_p": 0.2}, r"augment.grayscale_p=0.2: grayscale is an RGB op and data.channels=13"),
        ({**PLAIN, "per_view": [{}, {"jitter": (0, 0, 0.2, 0)}]}, r"augment.per_view\[1\].jitter: saturation 0.2"),
        ({**PLAIN, "randaugment": RandAugment()}, r"augment.randaugment: its op Color \(saturation\) is an RGB op"),
        (
            {**PLAIN, "random_fields": RandomFields(saturation=(0.2, 8.0))},
            r"augment.random_fields.saturation: saturation is an RGB op and data.channels=13",
        ),
    ],
)
def test_rgb_ops_are_refused_for_other_channel_counts_naming_the_op(kwargs: dict, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        ViewMaker(**C13, **kwargs)


def test_what_has_no_rgb_op_is_accepted_for_13_channels() -> None:
    ops = ["Identity", "ShearX", "Rotate", "Brightness", "Contrast", "Solarize", "Equalize"]
    fields = RandomFields(translate=(1.0, 4.0), rotate=(5.0, 4.0), brightness=(0.2, 4.0), contrast=(0.2, 4.0))
    vm = ViewMaker(
        size=8,
        **C13,
        **PLAIN,
        randaugment=RandAugment(op_set=ops),
        random_fields=fields,
        blur_p=1.0,
        solarize_p=0.5,
        channel_dropout_p=0.5,
        bit_depth=16,
    )
    views = vm(torch.randint(0, 65536, (4, 13, 12, 12)).to(torch.uint16))
    assert views.groups[0].shape == (8, 13, 8, 8) and torch.isfinite(views.groups[0]).all()
    with pytest.raises(ValueError, match="data.channels=13, data.bit_depth=8 need augment.backend=batched"):
        make_view_maker("torchvision", size=8, **C13, **PLAIN)
    with pytest.raises(ValueError, match="data.channels=1, data.bit_depth=16 need augment.backend=batched"):
        make_view_maker("torchvision", size=8, bit_depth=16)


def test_jitter_draws_brightness_per_channel_beyond_rgb_and_per_image_for_rgb() -> None:
    from selfsup.augment.views import _jitter

    torch.manual_seed(0)
    x = torch.full((6, 13, 4, 4), 0.5)
    y = _jitter(x.clone(), (0.4, 0.0, 0.0, 0.0), 1.0)
    per_channel = y[:, :, 0, 0]
    assert (per_channel.std(dim=1) > 0.01).all()  # each image's channels got different factors
    rgb = _jitter(torch.full((6, 3, 4, 4), 0.5), (0.4, 0.0, 0.0, 0.0), 1.0)[:, :, 0, 0]
    assert torch.allclose(rgb, rgb[:, :1].expand(-1, 3))  # one factor per image, as torchvision


def test_contrast_blends_each_channel_with_its_own_mean_beyond_rgb() -> None:
    x = torch.rand(2, 5, 6, 6) * 0.5 + 0.25
    y = C.adjust_contrast(x, torch.tensor([0.5, 1.5]))
    assert torch.allclose(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-6)  # no clamping here: means kept
    with pytest.raises(C.RGBOnly, match="saturation is an RGB op; the images have 5 channels"):
        C.adjust_saturation(x, torch.tensor([0.5, 1.5]))


def test_channel_dropout_sets_channels_to_their_mean_and_keeps_one() -> None:
    torch.manual_seed(0)
    vm = ViewMaker(size=8, **C13, **PLAIN, jitter_p=0.0, crop_scale=(1.0, 1.0), flip_p=0.0, channel_dropout_p=0.95)
    views = vm(torch.randint(0, 256, (64, 13, 8, 8), dtype=torch.uint8)).groups[0]  # normalised
    dropped = (views == 0).flatten(2).all(2)  # (V*B, C): a channel at its mean everywhere
    assert dropped.any() and (~dropped).sum(1).min() >= 1  # every view keeps a channel


def test_16_bit_views_scale_by_65535_and_solarize_at_mid_range() -> None:
    x = torch.full((2, 1, 8, 8), 60000, dtype=torch.int32).to(torch.uint16)
    vm = ViewMaker(size=8, bit_depth=16, mean=[0.0], std=[1.0])
    assert torch.allclose(vm.prepare(x), torch.full((2, 1, 8, 8), 60000 / 65535))
    assert torch.allclose(C.solarize(vm.prepare(x)), torch.full((2, 1, 8, 8), 1 - 60000 / 65535))
    with pytest.raises(TypeError, match=r"expects torch.uint16 images \(bit_depth=16\), got torch.uint8"):
        vm.prepare(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_false_colour_shows_three_bands_stretched() -> None:
    x = torch.rand(2, 13, 6, 6) * 0.1  # dim bands: stretched to the full range
    rgb = as_rgb(x)
    assert rgb.shape == (2, 3, 6, 6) and rgb.max() == 1.0 and rgb.min() == 0.0
    colour = torch.rand(1, 3, 4, 4)
    assert torch.equal(as_rgb(colour), colour) and torch.equal(
        as_rgb(colour[:, :1]), colour[:, :1].expand(-1, 3, -1, -1)
    )
    with pytest.raises(ValueError, match=r"bands \[0, 1, 13\]: expected three channel indices in 0..12"):
        as_rgb(x, [0, 1, 13])
