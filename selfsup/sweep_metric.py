"""The sweep metric: the value a Hydra sweeper optimises, chosen by name with the config key
``objective=...`` (``configs/train.yaml``). Not the training objective (the loss,
:meth:`selfsup.methods.base.Method.objective`): this is what a study of many runs maximises.

``train.py`` returns it, read from the finished run's ``results.json`` metrics, so Hydra's
Optuna sweeper (``sweeper=optuna``, ``configs/sweeper/optuna.yaml``) maximises it. The
label-free sweep metrics choose hyperparameters without a single label:

- ``rankme``: RankMe of the backbone's held-out features, the exponential of the entropy of
  their normalised singular values (Garrido et al., "RankMe: Assessing the Downstream
  Performance of Pretrained Self-Supervised Representations by Their Rank", ICML 2023);
- ``lidar``: LiDAR of the backbone, the same entropy-rank of the linear discriminant of
  image identity over augmented views (Thilak et al., "LiDAR: Sensing Linear Probing
  Performance in Joint Embedding SSL Architectures", ICLR 2024);
- ``rankme_projector`` / ``lidar_projector``: the same on the projector's output.

``linear_top1`` (the held-out linear probe, labels) and ``knn_top1`` are the label-using
references. ``scripts/select_runs.py`` tells afterwards, by Kendall's τ against the probe,
whether the label-free choice could be trusted on the data at hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, get_args

SweepMetric = Literal["linear_top1", "knn_top1", "rankme", "lidar", "rankme_projector", "lidar_projector"]

# sweep metric name (the config's `objective`) -> the key of results.json's "metrics" it reads
METRIC: dict[str, str] = {
    "linear_top1": "linear_top1",
    "knn_top1": "knn_top1",
    "rankme": "rankme_backbone",
    "lidar": "lidar_backbone",
    "rankme_projector": "rankme_projector",
    "lidar_projector": "lidar_projector",
}
assert set(METRIC) == set(get_args(SweepMetric))


def sweep_metric_value(results: Mapping[str, Any], name: str) -> float | None:
    """The sweep metric ``name`` (the config's ``objective``) of a finished run's results; None where
    the run has no finite value of it (a method without a projector has no ``rankme_projector``).

    None is also what ``train.py`` returns for a trial whose run failed: hydra-optuna-sweeper 1.2
    records a trial that returns None as failed and goes on (one that returns NaN stops the study,
    as the sweeper then tells Optuna the trial's state twice).
    """
    value = results.get("metrics", {}).get(METRIC[name])
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
