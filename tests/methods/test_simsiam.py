"""method=simsiam with loss=simsiam: the method's objective is D(p1, sg(z2))/2 + D(p2, sg(z1))/2 of
its own networks (Chen and He 2021), against the naive float64 loop of
tests/losses/reference_methods.py, gradients included: the stop-gradient is on the projections, so
without it the gradients differ."""

from __future__ import annotations

import pytest

from selfsup.methods.base import Method
from tests.losses.reference_methods import assert_same, simsiam_naive
from tests.methods.test_distributed_methods import eval_module, global_views, tiny_cfg


def test_the_objective_is_the_simsiam_loss_with_the_stop_gradient_on_the_projections() -> None:
    module: Method = eval_module(tiny_cfg("simsiam", "simsiam"))
    assert module.predictor is not None
    views, index = global_views(module)
    loss, _, _ = module.objective(views, index)
    params = [w for m in module.trained_modules() for w in m.parameters() if w.requires_grad]
    for stop_gradient in (True, False):
        z = module.head(module.backbone(views.groups[0]))  # both views, view-major
        want = simsiam_naive(module.predictor(z), z.detach() if stop_gradient else z, views.count)
        if stop_gradient:
            assert_same(loss, want, params)
        else:  # the same value without the stop-gradient, but other gradients
            with pytest.raises(AssertionError, match="Tensor-likes are not close"):
                assert_same(loss, want, params)
