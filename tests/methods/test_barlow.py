"""method=barlow with loss=barlow: the method's objective is the paper's loss (Zbontar et al. 2021) of
its own networks' embeddings, in value and in every trained parameter's gradient, against the naive
float64 loop of tests/losses/reference_methods.py."""

from __future__ import annotations

from selfsup.methods.base import Method
from tests.losses.reference_methods import assert_same, barlow_naive
from tests.methods.test_distributed_methods import eval_module, global_views, tiny_cfg


def test_the_objective_is_the_barlow_twins_loss_of_its_embeddings() -> None:
    cfg = tiny_cfg("barlow", "barlow")
    module: Method = eval_module(cfg)
    views, index = global_views(module)
    loss, _, _ = module.objective(views, index)
    z = module.head(module.backbone(views.groups[0]))  # both views, view-major
    params = [p for m in module.trained_modules() for p in m.parameters() if p.requires_grad]
    assert_same(loss, barlow_naive(z, views.count, lambd=cfg.loss.lambd), params)
