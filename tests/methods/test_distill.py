"""method=distill: the loss against a float64 loop, the teacher as the file it was loaded from (a
selfsup export of another architecture, or a timm model with a weights file) seeing each view in its
own normalisation, frozen and out of the checkpoint, the kept features (computed once per image, from
the image), a SIGKILLed run with them resuming exactly, and the one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from selfsup.backbones import SmallCNN
from selfsup.build import ConfigError, build_module
from selfsup.errors import MissingFileError
from selfsup.export import export_encoder, load_exported
from selfsup.losses.distill import DistillLoss
from selfsup.methods.distill import Distill, Teacher
from selfsup.pipeline import run
from tests.losses.reference_methods import assert_same, leaf
from tests.test_resume import assert_resumes_to_the_uninterrupted_result


def distill_reference(pred: Tensor, target: Tensor) -> Tensor:
    """One feature at a time: the squared differences, averaged over every row and feature."""
    total = torch.zeros((), dtype=torch.float64)
    for n in range(pred.shape[0]):
        for t in range(pred.shape[1]):
            total = total + (pred[n, t] - target[n, t]) ** 2
    return total / pred.numel()


def test_the_loss_is_the_mean_squared_error_and_the_teacher_gets_no_gradient() -> None:
    pred, target = leaf(5, 7, seed=0), leaf(5, 7, seed=1)
    got = DistillLoss()(pred, target=target)
    assert_same(got, distill_reference(pred, target.detach()), [pred])
    (grad,) = torch.autograd.grad(DistillLoss()(pred, target=target), [target], allow_unused=True)
    assert grad is None
    with pytest.raises(ValueError, match=r"must have one shape \(N, T\)"):
        DistillLoss()(pred, target=target[:, :3])


def _export(tmp_path: Path, name: str = "export", mean: float = 0.4, std: float = 0.2) -> Path:
    torch.manual_seed(1)
    return export_encoder(SmallCNN(in_chans=1, widths=[8, 16, 24]), tmp_path / name, mean=[mean], std=[std],
                          image_size=12, card={})  # fmt: skip


def test_an_export_teaches_in_its_own_normalisation_and_input_size(tmp_path: Path) -> None:
    teacher = Teacher(str(_export(tmp_path)), in_chans=1)
    model = load_exported(_export(tmp_path))
    raw = torch.rand(3, 1, 16, 16, dtype=torch.float64)  # images in [0, 1], the student's 16 px views
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    got = teacher.double()((raw - 0.5) / 0.25, mean.double(), std.double())
    model = model.double()
    resized = torch.nn.functional.interpolate(raw, size=(12, 12), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(got, model((resized - 0.4) / 0.2))
    assert teacher.num_features == 24 and got.shape == (3, 24)


def test_a_timm_model_with_a_weights_file_teaches(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(0)
    source = timm.create_model("resnet18", num_classes=0)
    save_file(source.state_dict(), str(tmp_path / "resnet18.safetensors"))
    teacher = Teacher(str(tmp_path / "resnet18.safetensors"), name="resnet18", in_chans=3)
    assert teacher.input_size == (224, 224) and teacher.num_features == 512
    raw = torch.rand(2, 3, 224, 224)
    want = source.eval()((raw - teacher.mean) / teacher.std)  # timm's ImageNet normalisation
    torch.testing.assert_close(teacher(raw, torch.zeros(3), torch.ones(3)), want)
    grey = Teacher(str(tmp_path / "resnet18.safetensors"), name="resnet18", in_chans=1)  # timm adapts the stem
    assert grey.mean.flatten().tolist() == pytest.approx([sum(teacher.mean.flatten().tolist()) / 3])
    assert grey(torch.rand(2, 1, 16, 16), torch.zeros(1), torch.ones(1)).shape == (2, 512)


def test_the_teacher_is_frozen_out_of_the_optimiser_and_out_of_the_checkpoint(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("method=distill", "eval.baselines=[]", "eval.metrics.final_lidar_images=64")
    run(cfg, tmp_path / "run", loss_choice="distill")
    module: Distill = build_module(cfg)  # type: ignore[assignment]
    before = {k: v.clone() for k, v in module.teacher_net.model.state_dict().items()}
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    teacher_keys = [k for k in state["state_dict"] if k.startswith("teacher_net.")]
    assert teacher_keys == ["teacher_net.fingerprint"]  # the weights are the file's
    model = module.teacher_net.model
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    trained = {id(p) for m in module.trained_modules() for p in m.parameters()}
    assert not trained & {id(p) for p in module.teacher_net.model.parameters()}
    assert id(module.regressor.weight) in trained
    module.train()  # Lightning's train mode leaves the teacher in eval mode
    assert not module.teacher_net.model.training
    assert all(torch.equal(v, before[k]) for k, v in module.teacher_net.model.state_dict().items())


def test_kept_features_are_computed_once_per_image_from_the_image(composed) -> None:  # type: ignore[no-untyped-def]
    module: Distill = build_module(composed("method=distill", "method.module.teacher.embed_cache=true"))  # type: ignore[assignment]
    module.eval()
    module.teacher_net.resize_per_sample(10)
    images = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    vm = module.view_maker
    want = module.teacher_net(vm.prepare(images), vm.mean, vm.std)
    calls = []
    module.teacher_net.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    first = module.teacher_net.cached_features(images, torch.tensor([1, 3, 5, 7]), vm.prepare, vm.mean, vm.std)
    torch.testing.assert_close(first, want)
    again = module.teacher_net.cached_features(images[:2], torch.tensor([3, 8]), vm.prepare, vm.mean, vm.std)
    assert calls == [4, 1]  # image 3 kept, image 8 new
    torch.testing.assert_close(again[0], first[1])
    assert module.teacher_net.cached.nonzero().flatten().tolist() == [1, 3, 5, 7, 8]


def test_a_sigkilled_run_with_kept_features_resumes_to_the_uninterrupted_one(tmp_path: Path) -> None:
    from tests.conftest import stand_ins

    assert_resumes_to_the_uninterrupted_result(
        tmp_path, ["method=distill", *stand_ins("distill"), "method.module.teacher.embed_cache=true"]
    )


def test_refusals_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"method.module.teacher.path=/nowhere: no such export directory"):
        Teacher("/nowhere", in_chans=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="no config.json there; expected a selfsup export"):
        Teacher(str(tmp_path / "empty"), in_chans=1)
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a weights file: set method.module.teacher.name"):
        Teacher(str(tmp_path / "w.pth"), in_chans=1)
    with pytest.raises(ConfigError, match="takes 1-channel images and the data has 3"):
        Teacher(str(_export(tmp_path)), in_chans=3)
    with pytest.raises(ConfigError, match="an export names its own model; set name=null"):
        Teacher(str(_export(tmp_path)), name="resnet18", in_chans=1)


def test_resuming_with_another_teacher_is_refused(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one = build_module(composed("method=distill", f"method.module.teacher.path={_export(tmp_path, 'a')}"))
    other = build_module(composed("method=distill", f"method.module.teacher.path={_export(tmp_path, 'b', mean=0.3)}"))
    other.load_state_dict(one.state_dict())  # the same weights, normalisation aside: the same teacher
    torch.manual_seed(5)
    changed = SmallCNN(in_chans=1, widths=[8, 16, 24])
    path = export_encoder(changed, tmp_path / "c", mean=[0.4], std=[0.2], image_size=12, card={})
    third = build_module(composed("method=distill", f"method.module.teacher.path={path}"))
    with pytest.raises(ConfigError, match="the checkpoint was trained with another teacher"):
        third.load_state_dict(one.state_dict())
