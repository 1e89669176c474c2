"""Offline linear probe: multinomial logistic regression (L-BFGS) on frozen, cached features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


@dataclass
class ProbeResult:
    top1: float  # percent on the test features
    C: float  # inverse L2 strength chosen on the validation slice
    val_top1: float  # percent on the validation slice for the chosen C (NaN: no choice made)


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    val_fraction: float = 0.2,
    max_iter: int = 1000,
    seed: int = 0,
) -> ProbeResult:
    """Fit a linear classifier on train features, report top-1 on test features.

    Protocol: standardise with train statistics; choose the L2 strength ``C`` on a stratified
    ``val_fraction`` slice of the train features (skipped when only one ``C`` is given); refit
    on all train features with that ``C``. The test split is never used for any choice.

    Args:
        train_x: (N, F) features. train_y: (N,) integer labels.
        test_x: (M, F) features. test_y: (M,) integer labels.
        Cs: candidate inverse regularisation strengths.
        val_fraction: share of the train features held out to choose ``C``.
        max_iter: L-BFGS iterations.
        seed: seed of the validation split.
    """
    scaler = StandardScaler().fit(train_x)
    xtr, xte = scaler.transform(train_x), scaler.transform(test_x)
    best_c, best_acc = Cs[0], float("nan")
    if len(Cs) > 1:
        # Stratify when every class can appear on both sides; tiny label sets fall back to random.
        counts = np.bincount(train_y)
        n_val = int(round(val_fraction * len(train_y)))
        can_stratify = counts[counts > 0].min() >= 2 and n_val >= (counts > 0).sum()
        fit_x, val_x, fit_y, val_y = train_test_split(
            xtr,
            train_y,
            test_size=val_fraction,
            stratify=train_y if can_stratify else None,
            random_state=seed,
        )
        best_acc = -1.0
        for c in Cs:
            clf = LogisticRegression(C=c, max_iter=max_iter).fit(fit_x, fit_y)
            acc = float((clf.predict(val_x) == val_y).mean())
            if acc > best_acc:
                best_c, best_acc = c, acc
    clf = LogisticRegression(C=best_c, max_iter=max_iter).fit(xtr, train_y)
    top1 = float((clf.predict(xte) == test_y).mean())
    return ProbeResult(top1=100 * top1, C=float(best_c), val_top1=100 * best_acc)
