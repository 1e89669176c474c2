"""Every backbone: forward + backward on tiny input, features of width num_features."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from selfsup.backbones import SmallCNN, TimmBackbone
from selfsup.heads import MLPHead

BACKBONES = {
    "small_cnn": lambda c: SmallCNN(in_chans=c, widths=(8, 16)),
    "resnet18": lambda c: TimmBackbone("resnet18", in_chans=c),
    "resnet18_cifar_stem": lambda c: TimmBackbone("resnet18", in_chans=c, cifar_stem=True),
    "vit_tiny": lambda c: TimmBackbone(
        "vit_tiny_patch16_224", in_chans=c, model_kwargs={"img_size": 32, "patch_size": 8}
    ),
    "convnext_atto": lambda c: TimmBackbone("convnext_atto", in_chans=c),
}


@pytest.mark.parametrize("name", list(BACKBONES))
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_backward_contract(name: str, channels: int) -> None:
    net = BACKBONES[name](channels)
    x = torch.randn(2, channels, 32, 32)
    h = net(x)
    assert h.shape == (2, net.num_features)
    h.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_cifar_stem_keeps_resolution() -> None:
    plain = TimmBackbone("resnet18", in_chans=3).model
    stem = TimmBackbone("resnet18", in_chans=3, cifar_stem=True).model
    x = torch.randn(2, 3, 32, 32)
    assert plain.forward_features(x).shape[-1] == 1 and stem.forward_features(x).shape[-1] == 4


def test_bad_backbone_names_fail_clearly() -> None:
    with pytest.raises(ValueError, match="not a timm model"):
        TimmBackbone("resnet_does_not_exist")
    with pytest.raises(ValueError, match="cifar_stem"):
        TimmBackbone("vit_tiny_patch16_224", cifar_stem=True)


@pytest.mark.parametrize("hidden,bn,last_bn", [((), True, False), ((32,), True, False), ((32, 32), False, True)])
def test_mlp_head(hidden: tuple[int, ...], bn: bool, last_bn: bool) -> None:
    head = MLPHead(12, hidden_dims=hidden, out_dim=5, batch_norm=bn, last_bn=last_bn)
    out = head(torch.randn(4, 12))
    assert out.shape == (4, 5)
    out.sum().backward()


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Hugging Face's and torch hub's caches in ``tmp_path`` (empty), and any network access fails the test."""
    import socket

    import huggingface_hub
    import timm.models._hub

    hub = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))  # read once, at import
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*args, **kwargs):  # type: ignore[no-untyped-def]
        pytest.fail(f"the network was asked: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", no_network)
    monkeypatch.setattr(timm.models._hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return {"hub": hub, "checkpoints": tmp_path / "torch" / "hub" / "checkpoints"}


def _weights(name: str, path):  # type: ignore[no-untyped-def]
    """A timm ``name``'s whole state dict (classifier included, as published) saved to ``path``."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    state = timm.create_model(name).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return state


def _same(net: TimmBackbone, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state[k]) for k, v in net.model.state_dict().items())


@pytest.mark.parametrize("name", ["resnet18", "test_resnet"])
def test_pretrained_without_the_weights_fails_at_once_naming_the_caches(name: str, empty_caches) -> None:  # type: ignore[no-untyped-def]
    """No file in either cache: one line naming where it looked and how to give the weights, and
    not a byte asked of the network (the fixture fails the test on any attempt)."""
    from selfsup.errors import MissingFileError

    with pytest.raises(MissingFileError) as e:
        TimmBackbone(name, pretrained=True)
    line = str(e.value)
    assert "\n" not in line and line.startswith("backbone.pretrained=true: timm's weights of " + name)
    assert str(empty_caches["hub"]) in line and "backbone.pretrained_file=PATH" in line
    if name == "resnet18":  # also published at a URL: torch hub's cache is where timm keeps those
        assert str(empty_caches["checkpoints"] / "resnet18_a1_0-d63eafa0.pth") in line


def test_pretrained_weights_in_the_hub_cache_load(empty_caches) -> None:  # type: ignore[no-untyped-def]
    """timm's test model in Hugging Face's cache layout (refs/main -> snapshots/<commit>/) loads
    from there, without the network."""
    repo = empty_caches["hub"] / "models--timm--test_resnet.r160_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    state = _weights("test_resnet", repo / "snapshots" / commit / "model.safetensors")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    net = TimmBackbone("test_resnet", pretrained=True)
    assert _same(net, state) and not _same(TimmBackbone("test_resnet"), state)


def test_pretrained_weights_in_the_torch_hub_cache_load(empty_caches, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Weights timm downloads from a URL load from torch hub's checkpoints/ (a test model given a URL)."""
    import timm

    cfg = dataclasses.replace(
        timm.models.get_pretrained_cfg("test_resnet"), url="https://example.org/weights/test_resnet-0123abcd.pth"
    )
    monkeypatch.setattr(timm.models, "get_pretrained_cfg", lambda name: cfg)
    state = _weights("test_resnet", empty_caches["checkpoints"] / "test_resnet-0123abcd.pth")
    assert _same(TimmBackbone("test_resnet", pretrained=True), state)


def test_pretrained_file(tmp_path, empty_caches) -> None:  # type: ignore[no-untyped-def]
    from selfsup.errors import ConfigError, MissingFileError

    state = _weights("test_resnet", tmp_path / "mine.safetensors")
    assert _same(
        TimmBackbone("test_resnet", pretrained=True, pretrained_file=str(tmp_path / "mine.safetensors")), state
    )
    with pytest.raises(MissingFileError, match=r"backbone.pretrained_file=/no/such.pth: no such file"):
        TimmBackbone("test_resnet", pretrained=True, pretrained_file="/no/such.pth")
    with pytest.raises(ConfigError, match="with backbone.pretrained=false: set backbone.pretrained=true"):
        TimmBackbone("test_resnet", pretrained_file=str(tmp_path / "mine.safetensors"))


def test_pretrained_rgb_weights_adapt_to_13_channels_as_timm_does(tmp_path, empty_caches) -> None:  # type: ignore[no-untyped-def]
    """backbone.pretrained with in_chans=13 (data.channels): timm's adapt_input_conv repeats the RGB
    kernels of the first convolution over the 13 channels, scaled by 3/13; every other weight is the file's."""
    from timm.models import adapt_input_conv

    state = _weights("test_resnet", tmp_path / "rgb.safetensors")
    net = TimmBackbone("test_resnet", in_chans=13, pretrained=True, pretrained_file=str(tmp_path / "rgb.safetensors"))
    key = net.model.pretrained_cfg["first_conv"] + ".weight"
    got = net.model.state_dict()
    assert got[key].shape[1] == 13 and torch.allclose(got[key], adapt_input_conv(13, state[key]))
    assert all(torch.equal(v, state[k]) for k, v in got.items() if k != key)
    assert net(torch.randn(2, 13, 32, 32)).shape == (2, net.num_features)


def test_a_trained_run_loads_without_its_pretrained_weights(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Loading a run's checkpoint (embed.py, export.py, linear_probe.py) replaces the pretrained
    weights, so it does not look for them: a run started from backbone.pretrained_file loads where
    that file is gone."""
    from selfsup.build import build_module, load_trained

    trained = build_module(composed("backbone=timm", "backbone.name=test_resnet"))
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "last.ckpt")
    cfg = composed(
        "backbone=timm",
        "backbone.name=test_resnet",
        "backbone.pretrained=true",
        "backbone.pretrained_file=/no/such.pth",
    )
    loaded = load_trained(cfg, tmp_path / "last.ckpt")
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert cfg.backbone.pretrained_file == "/no/such.pth"  # the run's config is left as it was
