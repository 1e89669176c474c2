"""The method contract, parametrised over the registry (selfsup/registry.py): every method and every
loss trains two steps on digits and writes a complete run directory; every pair of a method and a
loss it accepts is built with a batch mix, and every method with multi-crop (built, or refused in
one line); a method class without a config, or a loss no method accepts, fails here."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import pkgutil
import re

import pytest
import torch

import selfsup.methods
from selfsup import registry
from selfsup.build import ConfigError, build_module, load_trained
from selfsup.export import load_exported
from selfsup.methods.base import Method
from selfsup.pipeline import run

METHODS = registry.methods()
#: The augment options that mix one view (they set ``augment.mix``).
MIXES = registry.mixes()
CASES = [(m, loss) for m in METHODS for loss in registry.method_losses(m)]
# The runs that train end to end: every method with its default loss, then every loss no method has
# as its default with the first method that accepts it. Every other pair's objective, gradients and
# state are checked by tests/methods/test_distributed_methods.py (one and two processes).
RUNS = [(m, registry.method_losses(m)[0]) for m in METHODS]
RUNS += [
    (registry.methods_accepting(loss)[0], loss)
    for loss in registry.losses()
    if loss not in {default for _, default in RUNS}
]


def test_every_method_class_has_a_config_and_every_loss_a_method() -> None:
    """The registry and the code agree: each Method subclass defined in a module of
    selfsup/methods/ is some config's class, each loss option is accepted by some method, and each
    accepted loss exists."""
    classes = set()
    for info in pkgutil.iter_modules(selfsup.methods.__path__, "selfsup.methods."):
        module = importlib.import_module(info.name)
        for _, c in inspect.getmembers(module, inspect.isclass):
            if issubclass(c, Method) and c.__module__ == module.__name__ and not c.__name__.startswith("_"):
                classes.add(c)
    abstract = {c for c in classes if any(issubclass(o, c) and o is not c for o in classes)} | {Method}
    # A base of other methods (TeacherMethod) needs no option of its own; a method may be one (DINO of iBOT).
    targets, concrete = {registry.method_class(m) for m in METHODS}, classes - abstract
    assert concrete <= targets, f"method classes without a configs/method/ option: {concrete - targets}"
    assert targets <= classes, f"configs/method/ options naming no class of selfsup/methods/: {targets - classes}"
    for m in METHODS:
        cls = registry.method_class(m)
        assert cls.__module__ == f"selfsup.methods.{m}", f"method={m}: its class lives in selfsup/methods/{m}.py"
    declared = {loss for m in METHODS for loss in registry.method_losses(m)}
    assert set(registry.losses()) <= declared, f"loss options no method accepts: {set(registry.losses()) - declared}"
    assert declared <= set(registry.losses()), f"accepted losses without a config: {declared - set(registry.losses())}"


@pytest.mark.parametrize("method,loss", RUNS)
def test_method_trains_two_steps_and_writes_a_complete_run_directory(composed, tmp_path, method, loss) -> None:  # type: ignore[no-untyped-def]
    cfg = composed(f"method={method}", f"loss={loss}", "eval.baselines=[]", "eval.metrics.final_lidar_images=64")
    run_dir = tmp_path / "run"
    results = run(cfg, run_dir, loss_choice=loss)
    for name in ("config.yaml", "git.json", "metrics.csv", "results.json", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "FAILED").exists()
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["steps"] == 2 and saved["choices"]["method"] == method and saved["choices"]["loss"] == loss
    assert all(math.isfinite(v) for v in results["metrics"].values())
    for key in ("linear_top1", "knn_top1", "rankme_backbone", "rankme_projector", "lidar_backbone"):
        assert key in results["metrics"], key
    metrics = (run_dir / "metrics.csv").read_text()
    assert "train/loss_step" in metrics and "val/online_top1" in metrics and "val/rankme_projector" in metrics
    # export/ holds the evaluated encoder as the checkpoint has it (the final evaluation changed nothing).
    module = load_trained(cfg, run_dir / "checkpoints" / "last.ckpt")
    x = torch.randn(4, cfg.data.channels, cfg.augment.size, cfg.augment.size)
    with torch.no_grad():
        torch.testing.assert_close(
            load_exported(run_dir / "export")(x), module.eval_encoder.eval()(x), rtol=0, atol=1e-6
        )


@pytest.mark.parametrize("method", [m for m in METHODS if "dclw" not in registry.method_losses(m)])
def test_an_undeclared_loss_fails_before_anything_is_written(composed, tmp_path, method) -> None:  # type: ignore[no-untyped-def]
    cfg = composed(f"method={method}", "loss=dclw")
    with pytest.raises(ConfigError, match=f"method={method} does not accept loss=dclw; method={method} accepts loss="):
        run(cfg, tmp_path / "run", loss_choice="dclw")
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_method_defaults_follow_the_method(composed) -> None:  # type: ignore[no-untyped-def]
    """`method=byol` alone brings BYOL's loss and views; an explicit group choice still wins."""
    cfg = composed("method=byol", tiny=False)
    assert cfg.hydra.runtime.choices.loss == "byol" and cfg.hydra.runtime.choices.augment == "byol"
    assert cfg.method.module.base_momentum == 0.996
    cfg = composed("method=npid", "loss=dcl", tiny=False)
    assert cfg.loss._target_ == "selfsup.losses.DCL" and cfg.loss.temperature == 0.07


def test_the_teacher_is_evaluated_when_asked(composed) -> None:  # type: ignore[no-untyped-def]
    module = build_module(composed("method=byol", "method.module.eval_with=teacher"))
    assert module.eval_encoder is module.momentum_teacher.backbone
    assert module.eval_head is module.momentum_teacher.head
    assert build_module(composed("method=byol")).eval_encoder is not None
    with pytest.raises(ValueError, match="SimCLR has no momentum teacher"):
        _ = build_module(composed("method=simclr", "+method.module.eval_with=teacher")).eval_encoder


def test_optimiser_trains_the_predictor_but_not_the_teacher(composed) -> None:  # type: ignore[no-untyped-def]
    module = build_module(composed("method=byol"))
    trained = {id(p) for m in module.trained_modules() for p in m.parameters()}
    assert {id(p) for p in module.predictor.parameters()} <= trained
    assert not trained & {id(p) for p in module.momentum_teacher.parameters()}
    assert all(not p.requires_grad for p in module.momentum_teacher.parameters())


@pytest.mark.parametrize("method,loss", CASES)
def test_a_mix_builds_where_a_soft_target_takes_it_and_is_refused_elsewhere(composed, method, loss) -> None:  # type: ignore[no-untyped-def]
    """Every method and loss with a mix: built where the method passes soft targets and the loss
    takes them, refused in one line that names the pairs that would work otherwise."""
    cfg = composed(f"method={method}", f"loss={loss}", f"augment={MIXES[0]}")
    cls, loss_cls = registry.method_class(method), registry.loss_class(loss)
    if cls.mix_ok and registry.forward_takes(loss_cls, "mix"):
        assert build_module(cfg) is not None
        return
    who = f"loss {loss_cls.__name__}" if cls.mix_ok else cls.__name__
    with pytest.raises(ConfigError) as refused:
        build_module(cfg)
    message = str(refused.value)
    assert message.startswith(f"method.module: {who} has no soft targets for mixed views; set augment.mix=null")
    assert "\n" not in message
    for m, ls in CASES_TAKING_MIX.items():
        assert f"method={m} with loss={'|'.join(ls)}" in message, message


#: The pairs that take a mix, from the classes' own capabilities (what the refusal names).
CASES_TAKING_MIX = {
    m: [lo for lo in registry.method_losses(m) if registry.method_class(m).takes_mix(registry.loss_class(lo))]
    for m in METHODS
}
CASES_TAKING_MIX = {m: ls for m, ls in CASES_TAKING_MIX.items() if ls}


@pytest.mark.parametrize("mix", MIXES)
def test_every_mix_builds_with_the_pairs_that_take_it(composed, mix) -> None:  # type: ignore[no-untyped-def]
    assert CASES_TAKING_MIX, f"no registered method and loss take a mix: augment={mix} cannot train"
    for method, losses in CASES_TAKING_MIX.items():
        assert build_module(composed(f"method={method}", f"loss={losses[-1]}", f"augment={mix}")) is not None


@pytest.mark.parametrize("method", ["moco", "simclr"])
def test_hard_negatives_and_feature_transformation_train(composed, tmp_path, method) -> None:  # type: ignore[no-untyped-def]
    """MoCHi, false-negative dropping and feature transformation on MoCo's queue and on SimCLR's
    batch, end to end (the loss options are checked against naive loops in
    tests/losses/test_hard_negatives.py and test_feature_transform.py)."""
    cfg = composed(
        f"method={method}",
        "loss.drop_top_k=2",
        "loss.mochi_hardest=16",
        "loss.mochi_mixes=16",
        "loss.mochi_query_mixes=8",
        "loss.ft_pos_alpha=2.0",
        "loss.ft_neg_alpha=1.6",
        "eval.baselines=[]",
    )
    results = run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert math.isfinite(results["metrics"]["linear_top1"])
    assert cfg.loss.mochi_hardest == 16 and not (tmp_path / "run" / "FAILED").exists()


@pytest.mark.parametrize("method", METHODS)
def test_multicrop_builds_where_the_method_uses_local_views_and_is_refused_elsewhere(composed, method) -> None:  # type: ignore[no-untyped-def]
    cfg = composed(f"method={method}", "augment.local_views=2")
    cls = registry.method_class(method)
    if cls.local_views_ok:
        assert build_module(cfg) is not None
        return
    users = [m for m in METHODS if registry.method_class(m).local_views_ok]
    refusal = (
        f"method.module: {cls.__name__} uses global views only; set augment.local_views=0 "
        f"(multi-crop's local views are used by method={'|'.join(users)})"
    )
    with pytest.raises(ConfigError, match=re.escape(refusal)):
        build_module(cfg)


def test_state_updates_once_per_optimiser_step(composed, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With 2 batches per optimiser step, the teacher moves after steps 0 and 1 of 2, not per batch."""
    calls: list[tuple[int, int]] = []
    byol = registry.method_class("byol")
    original = byol.after_optimizer_step

    def spy(self, step: int, total: int) -> None:  # type: ignore[no-untyped-def]
        calls.append((step, total))
        original(self, step, total)

    monkeypatch.setattr(byol, "after_optimizer_step", spy)
    cfg = composed(
        "method=byol", "trainer.limit_train_batches=4", "trainer.accumulate_grad_batches=2", "eval.baselines=[]"
    )
    run(cfg, tmp_path / "run", loss_choice="byol")
    assert calls == [(0, 2), (1, 2)]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert any(k.startswith("momentum_teacher.") for k in ckpt["state_dict"])


def test_the_predictor_learns_at_its_own_multiple_of_the_lr(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """method.module.predictor_lr scales the predictor's groups, through the same schedule."""
    cfg = composed("method=byol", "method.module.predictor_lr=10", "eval.baselines=[]")
    run(cfg, tmp_path / "run", loss_choice="byol")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    groups = ckpt["optimizer_states"][0]["param_groups"]
    predictor = [g for g in groups if g.get("lr_factor") == 10]
    others = [g for g in groups if "lr_factor" not in g]
    assert predictor and others
    module = build_module(cfg)
    assert sum(len(g["params"]) for g in predictor) == len(list(module.predictor.parameters()))
    for g in predictor:
        assert g["lr"] == pytest.approx(10 * others[0]["lr"], rel=1e-12)
        assert g["initial_lr"] == pytest.approx(10 * others[0]["initial_lr"], rel=1e-12)
    with pytest.raises(ConfigError, match="method.module.predictor_lr=0"):
        build_module(composed("method=byol", "method.module.predictor_lr=0"))
    with pytest.raises(ConfigError, match="predictor_lr=10, but SimCLR has no predictor"):
        build_module(composed("method=simclr", "+method.module.predictor_lr=10"))


def test_a_training_step_labels_the_rows_the_method_returns(composed) -> None:  # type: ignore[no-untyped-def]
    """A method may return the features of some views only (a teacher of the global views): the labels
    repeat for as many views as it returned."""
    module = build_module(composed("method=simclr", "augment.views=3"))
    objective = module.objective

    def first_view_only(views, index):  # type: ignore[no-untyped-def]
        loss, h, z = objective(views, index)
        return loss, h[: index.shape[0]], z[: index.shape[0]]

    module.objective = first_view_only  # type: ignore[method-assign]
    x, y = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8), torch.tensor([3, 1, 4, 1])
    every_view = build_module(composed("method=simclr", "augment.views=3"))
    with pytest.warns(UserWarning, match="self.log"):  # no trainer here
        out = module.training_step((x, y, torch.arange(4)), 0)
        out_all = every_view.training_step((x, y, torch.arange(4)), 0)
    assert out["h"].shape[0] == 4 and out["labels"].tolist() == [3, 1, 4, 1]
    assert out_all["h"].shape[0] == 12 and out_all["labels"].tolist() == [3, 1, 4, 1] * 3
