"""eval.layers: intermediate stages evaluated like the final features, in the final report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from selfsup.backbones import SmallCNN, TimmBackbone
from selfsup.errors import ConfigError
from selfsup.eval.layers import layer_row, split_rows, stage_encoders
from selfsup.pipeline import run


@pytest.mark.parametrize(
    ("backbone", "channels", "first_width"),
    [
        (SmallCNN(1, (8, 16, 32)), 1, 8),
        (TimmBackbone("resnet18", in_chans=1), 1, 64),
        (TimmBackbone("resnet18", 3, cifar_stem=True), 3, 64),
    ],
    ids=["small_cnn", "resnet18", "resnet18_cifar_stem"],
)
def test_the_last_stage_pooled_is_the_backbone_output(
    backbone: torch.nn.Module, channels: int, first_width: int
) -> None:
    """Closed form: global average pooling of the last stage is what forward returns."""
    backbone.eval()
    x = torch.randn(3, channels, 32, 32)
    last, first = stage_encoders(backbone, [-1, 0]).values()
    with torch.no_grad():
        torch.testing.assert_close(last(x), backbone(x), rtol=1e-5, atol=1e-6)
        assert first(x).shape == (3, first_width)


def test_stage_names_and_the_refusal() -> None:
    resnet = TimmBackbone("resnet18", in_chans=1)
    assert resnet.stages == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert list(stage_encoders(resnet, [2, -1])) == ["layer2", "layer4"]
    assert stage_encoders(resnet, []) == {}
    with pytest.raises(ConfigError, match=r"^eval.layers=\[5\]: 5 is not a stage of the backbone, which has 5 "):
        stage_encoders(resnet, [5])
    with pytest.raises(ConfigError, match=r"which has 3 \(0..2: stage0, stage1, stage2"):
        stage_encoders(SmallCNN(1), [-4])


def test_split_rows() -> None:
    rows = {"pretrained": 1, layer_row("layer2"): 2, "random_init": 3}
    assert split_rows(rows) == ({"layer2": 2}, {"random_init": 3})


def test_a_run_reports_its_layers(composed, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("eval.layers=[0,-1]", "eval.baselines=[raw_pixels]", "eval.metrics.enabled=false")
    results = run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert results == json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(results["layers"]) == ["stage0", "stage2"] and list(results["baselines"]) == ["raw_pixels"]
    first, last = results["layers"]["stage0"], results["layers"]["stage2"]
    # The last stage, pooled, is the final features: the same probe, kNN and RankMe.
    for k in ("linear_top1", "knn_top1", "rankme_backbone"):
        assert last[k] == pytest.approx(results["metrics"][k], abs=1e-3), k
    assert first["rankme_backbone"] <= 32 + 1e-6  # stage0 is 32 wide
    table = capsys.readouterr().out
    assert "| pretrained:stage0 |" in table and "| pretrained:stage2 |" in table
