"""method=vicreg with loss=vicreg: the method's objective is the paper's loss (Bardes et al. 2022) of
its own networks' embeddings, in value and in every trained parameter's gradient, against the naive
float64 loop of tests/losses/reference_methods.py."""

from __future__ import annotations

from selfsup.methods.base import Method
from tests.losses.reference_methods import assert_same, vicreg_naive
from tests.methods.test_distributed_methods import eval_module, global_views, tiny_cfg


def test_the_objective_is_the_vicreg_loss_of_its_embeddings() -> None:
    cfg = tiny_cfg("vicreg", "vicreg")
    module: Method = eval_module(cfg)
    views, index = global_views(module)
    loss, _, _ = module.objective(views, index)
    z = module.head(module.backbone(views.groups[0]))  # both views, view-major
    params = [p for m in module.trained_modules() for p in m.parameters() if p.requires_grad]
    want = vicreg_naive(
        z, views.count, lam=cfg.loss.invariance, mu=cfg.loss.variance, nu=cfg.loss.covariance, eps=cfg.loss.eps
    )
    assert_same(loss, want, params)
