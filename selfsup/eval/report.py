"""End-of-run evaluation of a frozen backbone and the table printed beside its baselines."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from selfsup.eval.features import extract_features, labelled_features
from selfsup.eval.knn import knn_top1
from selfsup.eval.linear_probe import linear_probe
from selfsup.heads import projector_parts
from selfsup.metrics.rankme import rankme


@dataclass
class EvalSettings:
    """Offline evaluation protocol (documented in docs/evaluation.md).

    The kNN protocol has no default here: ``configs/eval/default.yaml`` (``eval.knn_k``,
    ``eval.knn_temperature``) is its one source, so every caller passes both.

    Attributes:
        knn_k: neighbours of the weighted kNN.
        knn_temperature: T of the kNN vote.
        probe_Cs: inverse L2 strengths the linear probe chooses from.
        probe_val_fraction: share of probe-train features held out to choose C.
        probe_max_iter: L-BFGS iterations.
        seed: seed of the probe's validation split.
    """

    knn_k: int
    knn_temperature: float
    probe_Cs: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])
    probe_val_fraction: float = 0.2
    probe_max_iter: int = 1000
    seed: int = 0


def evaluate(
    backbone: nn.Module,
    prepare: Callable[[Tensor], Tensor],
    train_loader: DataLoader,
    test_loader: DataLoader,
    num_classes: int,
    settings: EvalSettings,
    head: nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Linear probe and kNN top-1 (percent) on the test split, RankMe of test features.

    Probes fit on the labelled items of ``train_loader``; unlabelled items (label -1) are dropped.
    With no labels (``num_classes`` 0) there is no probe and no kNN: RankMe only.
    """
    te = extract_features(backbone, test_loader, prepare, head=head, device=device)
    out = {"rankme_backbone": rankme(te["h"])}
    if "z" in te and head is not None:
        out |= {f"rankme_{name}": rankme(z) for name, z in projector_parts(head, te["z"]).items()}
    if num_classes == 0:
        return out
    tr_h, tr_y = labelled_features(backbone, train_loader, prepare, device=device)
    probe = linear_probe(
        tr_h.numpy(),
        tr_y.numpy(),
        te["h"].numpy(),
        te["labels"].numpy(),
        Cs=settings.probe_Cs,
        val_fraction=settings.probe_val_fraction,
        max_iter=settings.probe_max_iter,
        seed=settings.seed,
    )
    knn = knn_top1(
        tr_h, tr_y, te["h"], te["labels"], num_classes, k=settings.knn_k, temperature=settings.knn_temperature
    )
    return {"linear_top1": probe.top1, "linear_C": probe.C, "knn_top1": knn} | out


def below_baselines(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    """A remark when the ``random_init`` baseline's linear or kNN top-1 is above the pretrained
    encoder's: pretraining made the features worse than no training at all for this probe. (Raw
    pixels may well beat a short run on small images, digits' kNN say: no remark for those.)"""
    mine, base = rows.get("pretrained", {}), rows.get("random_init", {})
    worse = [m for m in ("linear_top1", "knn_top1") if m in mine and m in base and mine[m] < base[m]]
    if not worse:
        return []
    said = ", ".join(f"{m} {mine[m]:.2f} < {base[m]:.2f}" for m in worse)
    return [
        f"the pretrained encoder is below the random_init baseline ({said}): pretraining has not helped this "
        "probe yet (too few steps, or the lr, temperature or augmentations do not suit the data)"
    ]


def table_columns(rows: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[list[Any]]]:
    """Every metric of every row as columns (``representation`` first); None where a row lacks one."""
    keys = sorted({k for m in rows.values() for k in m})
    return ["representation", *keys], [[name, *(m.get(k) for k in keys)] for name, m in rows.items()]


def format_table(rows: Mapping[str, Mapping[str, float]], collapsed: Collection[str] = ()) -> str:
    """Markdown table: one row per representation, linear / kNN top-1 and RankMe.

    Args:
        rows: metrics by representation.
        collapsed: representations judged collapsed (:mod:`selfsup.eval.collapse`): their name
            reads ``NAME (collapsed)``.
    """
    lines = [
        "| representation | linear top-1 (%) | kNN top-1 (%) | RankMe |",
        "|---|---:|---:|---:|",
    ]
    for name, m in rows.items():
        label = f"{name} (collapsed)" if name in collapsed else name
        top1 = " | ".join(f"{m[k]:.2f}" if k in m else "–" for k in ("linear_top1", "knn_top1"))  # – : no labels
        lines.append(f"| {label} | {top1} | {m['rankme_backbone']:.1f} |")
    return "\n".join(lines)
