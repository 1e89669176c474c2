"""logger=wandb, offline: metrics, config and the final table read back; no credential on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from selfsup.build import ConfigError, build_backbone, check_config
from selfsup.pipeline import run
from tests.wandb_records import config, history

FAKE_KEY = "local-" + "0123456789abcdef" * 3  # never a real key: offline mode does not check it


def test_wandb_offline_run_holds_metrics_config_and_final_table(composed, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    cfg = composed("logger=wandb", "logger.wandb.offline=true", "loss=dcl")
    run_dir = tmp_path / "run"
    results = run(cfg, run_dir, loss_choice="dcl")
    import wandb

    assert wandb.run is None, "the wandb run was left open: the next job of a sweep would log into it"
    # finish() only tells wandb-core the run is done; its writer closes the .wandb file on its own
    # time (CI once read it before "stream: finishing up"). Teardown waits for wandb-core to exit,
    # as it does at the end of every train.py process.
    wandb.teardown()
    logs = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 1, _listing(run_dir)
    log = logs[0]

    steps = history(log)
    assert any("train/loss_step" in s for s in steps), f"no training loss in the wandb history\n{_listing(run_dir)}"
    finals = [s for s in steps if "final/linear_top1" in s]
    assert finals, f"no final/ metrics in the wandb history: {[sorted(s) for s in steps]}\n{_listing(run_dir)}"
    assert finals[0]["final/linear_top1"] == pytest.approx(results["metrics"]["linear_top1"])

    stored = config(log)
    assert stored["loss"]["_target_"] == "selfsup.losses.DCL" and stored["seed"] == cfg.seed

    tables = list(run_dir.glob("wandb/offline-run-*/files/media/table/final/results_*.table.json"))
    assert len(tables) == 1, _listing(run_dir)
    t = json.loads(tables[0].read_text())
    rows = {r[0]: dict(zip(t["columns"], r, strict=True)) for r in t["data"]}
    assert set(rows) == {"pretrained", *results["baselines"]}
    assert rows["pretrained"]["linear_top1"] == pytest.approx(results["metrics"]["linear_top1"])

    for f in run_dir.rglob("*"):
        if f.is_file():
            assert FAKE_KEY.encode() not in f.read_bytes(), f"API key written to {f}"


def _listing(run_dir: Path) -> str:
    """What wandb wrote, and the end of its own log, for a failure message."""
    files = sorted(str(f.relative_to(run_dir)) for f in (run_dir / "wandb").rglob("*") if f.is_file())
    debug = sorted((run_dir / "wandb").rglob("debug-internal.log"))
    tail = debug[0].read_text(errors="replace")[-3000:] if debug else "(no debug-internal.log)"
    return "files under wandb/:\n" + "\n".join(files) + "\nend of debug-internal.log:\n" + tail


def test_a_credential_in_the_config_is_refused_before_anything_is_written(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("logger=wandb", "+logger.wandb.api_key=secret123")
    with pytest.raises(ConfigError, match="logger.wandb.api_key: credentials never go in a config"):
        run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("+logger.wandb.password=hunter2", "logger.wandb.password"),
        ("+logger.wandb.hf_token=hf_aBcDeFgHiJkLmNoPqRsT", "logger.wandb.hf_token"),
        ("+logger.wandb.client_secret=x", "logger.wandb.client_secret"),
    ],
)
def test_secret_names_and_credential_like_tokens_are_refused(composed, override, key) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=f"{key}: credentials never go in a config"):
        check_config(composed("logger=wandb", override), "ntxent")


def test_a_vit_class_token_is_not_a_credential(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Keys merely containing "token" (timm's class_token, a max_tokens count) are model settings."""
    cfg = composed(
        "backbone=timm",
        "backbone.name=vit_tiny_patch16_224",
        "+backbone.model_kwargs.img_size=8",
        "+backbone.model_kwargs.patch_size=4",
        "+backbone.model_kwargs.class_token=true",
        "+backbone.model_kwargs.no_embed_class=true",
        "+logger.csv.max_tokens=77",
        "+logger.csv.hf_token=null",
    )
    check_config(cfg, "ntxent")
    backbone = build_backbone(cfg)
    assert backbone(torch.zeros(2, 1, 8, 8)).shape == (2, backbone.num_features)
