"""Alignment and uniformity: closed forms and a naive loop."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.metrics import alignment, uniformity


def test_alignment_closed_forms() -> None:
    x = torch.randn(10, 4)
    assert alignment(x, 3 * x).item() == pytest.approx(0.0, abs=1e-6)  # same direction
    assert alignment(x, -x).item() == pytest.approx(4.0, rel=1e-6)  # antipodal: ‖2x̂‖² = 4
    e1, e2 = torch.eye(2)[None, 0], torch.eye(2)[None, 1]
    assert alignment(e1, e2, alpha=1).item() == pytest.approx(math.sqrt(2), rel=1e-6)


def test_uniformity_closed_forms_and_naive_loop() -> None:
    pair = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(pair).item() == pytest.approx(-8.0, rel=1e-6)  # log exp(-2·4)
    x = torch.nn.functional.normalize(torch.randn(12, 5, dtype=torch.float64), dim=1)
    terms = [math.exp(-2 * float((x[i] - x[j]).pow(2).sum())) for i in range(12) for j in range(i + 1, 12)]
    assert uniformity(x).item() == pytest.approx(math.log(sum(terms) / len(terms)), rel=1e-9)
    assert uniformity(torch.ones(6, 3)).item() == pytest.approx(0.0, abs=1e-6)  # collapsed: the maximum
