"""kNN against a brute-force loop; the linear probe on separable and on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfsup.eval.knn import knn_predict, knn_top1
from selfsup.eval.linear_probe import linear_probe


def _knn_naive(train_x, train_y, test_x, num_classes, k, t):  # type: ignore[no-untyped-def]
    tr = train_x / train_x.norm(dim=1, keepdim=True)
    te = test_x / test_x.norm(dim=1, keepdim=True)
    preds = []
    for q in te:
        sims = sorted(((float(q @ tr[j]), int(train_y[j])) for j in range(len(tr))), reverse=True)[:k]
        scores = [0.0] * num_classes
        for s, c in sims:
            scores[c] += math.exp(s / t)
        preds.append(max(range(num_classes), key=lambda c: scores[c]))
    return torch.tensor(preds)


@pytest.mark.parametrize("k,t", [(1, 0.1), (5, 0.07), (200, 0.5)])
def test_knn_matches_brute_force(k: int, t: float) -> None:
    g = torch.Generator().manual_seed(k)
    train_x, test_x = torch.randn(60, 6, generator=g), torch.randn(25, 6, generator=g)
    train_y = torch.randint(0, 4, (60,), generator=g)
    got = knn_predict(train_x, train_y, test_x, 4, k=k, temperature=t, chunk=7)
    assert torch.equal(got, _knn_naive(train_x, train_y, test_x, 4, min(k, 60), t))


def test_knn_perfect_on_copies() -> None:
    x = torch.randn(30, 5)
    y = torch.arange(30) % 3
    assert knn_top1(x, y, x, y, 3, k=1, temperature=0.1) == 100.0


def test_probe_separable_vs_random() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    centers = rng.normal(size=(4, 10)) * 5
    x = centers[y] + rng.normal(size=(400, 10))
    res = linear_probe(x[:300], y[:300], x[300:], y[300:], Cs=[0.1, 1.0])
    assert res.top1 == 100.0 and res.C in (0.1, 1.0)
    noise = rng.normal(size=(400, 10))
    assert linear_probe(noise[:300], y[:300], noise[300:], y[300:]).top1 < 50.0


def test_a_pretrained_row_below_a_baseline_is_remarked() -> None:
    from selfsup.eval.report import below_baselines

    rows = {
        "pretrained": {"linear_top1": 60.0, "knn_top1": 70.0},
        "random_init": {"linear_top1": 65.0, "knn_top1": 50.0},
        "raw_pixels": {"linear_top1": 50.0, "knn_top1": 60.0},
    }
    (remark,) = below_baselines(rows)
    assert remark.startswith("the pretrained encoder is below the random_init baseline (linear_top1 60.00 < 65.00)")
    assert below_baselines({"pretrained": rows["pretrained"], "raw_pixels": {"linear_top1": 99.0}}) == []


def test_the_end_of_run_report_prints_the_remark(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from selfsup.pipeline import _report

    def row(linear: float) -> dict[str, float]:
        return {"linear_top1": linear, "linear_C": 1.0, "knn_top1": 50.0, "rankme_backbone": 3.0}

    seconds = {"pretrain_seconds": 1.0, "eval_seconds": 1.0, "process_seconds": 3.0}
    _report({"pretrained": row(60.0), "random_init": row(65.0)}, seconds, tmp_path, warnings=[])
    out = capsys.readouterr().out
    assert "\nNOTE: the pretrained encoder is below the random_init baseline (linear_top1 60.00 < 65.00)" in out
    _report({"pretrained": row(70.0), "random_init": row(65.0)}, seconds, tmp_path, warnings=[])
    assert "NOTE" not in capsys.readouterr().out
