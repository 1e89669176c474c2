"""A collapsed representation, noticed after each validation and in the final report.

A run collapses when its embeddings stop depending on the image: every image maps to (nearly) one
point or to a handful of directions. The loss can still be finite, so the NaN guard
(:class:`selfsup.resume.FiniteLoss`) does not see it; the label-free metrics do. Two signs:

- **RankMe** of the backbone features (``rankme_backbone``) or of the projector outputs
  (``rankme_projector``) near its floor of 1. RankMe of an (N, K) matrix lies in [1, min(N, K)];
  the run is collapsed when ``RankMe - 1 < share * (min(N, K) - 1)``, a share of the range above
  the floor (``eval.collapse.rankme_share``). Measured above the floor, one share fits any width:
  at 0.02 the threshold is 3.54 for 128-wide features on 450 held-out images, 1.14 for an 8-wide
  projector; a rank-one representation (RankMe 1.0) trips it at every width.
- **The online probe at chance**: ``val/online_top1 <= 100 / classes + margin``
  (``eval.collapse.probe_chance_margin`` percentage points), when the probe is on (``eval.online_probe``).

Only a run that has trained ``eval.collapse.after_epochs`` epochs is judged, after each validation
and at its end (:meth:`CollapseCheck.judge` on the final evaluation's RankMe): early on a healthy run
looks collapsed too (SimCLR on digits, lr 1e-3 with 2 warm-up epochs: backbone RankMe 2.3 and online
probe 10.2 % after the first epoch, 27.4 and 34.7 % after the fifth, 33.6 and 80.0 % after the tenth).
RankMe is of the raw, uncentred features: a large offset common to every image also pulls it to 1,
so the warning is a flag to look at, not a proof that the features are useless.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import lightning as L

from selfsup.errors import UserError
from selfsup.eval.rankme_callback import RankMeCallback

log = logging.getLogger(__name__)

# The likely causes, named in every collapse message.
CAUSES = (
    "likely causes: a learning rate too high (optim.optimizer.lr), a loss temperature too low or "
    "too high (loss.temperature), or for BYOL / SimSiam a missing or untrained predictor "
    "(method.predictor, its learning rate)"
)
# The metrics judged, and the words that name them.
JUDGED = {"rankme_backbone": "the backbone's RankMe", "rankme_projector": "the projector's RankMe"}


class CollapseError(UserError, RuntimeError):
    """Raised after a validation that found the run collapsed, with ``eval.stop_on_collapse=true``."""


def rankme_threshold(bound: int, share: float) -> float:
    """The RankMe below which an embedding of at most ``bound`` effective dimensions is collapsed.

    Args:
        bound: min(N, K) of the (N, K) embedding matrix, RankMe's upper bound.
        share: share of the range [1, bound] above RankMe's floor of 1.
    """
    return 1.0 + share * (max(int(bound), 1) - 1)


def rankme_bounds(module: Any, samples: int) -> dict[str, int]:
    """min(N, K) of the backbone features and the projector outputs of ``samples`` images.

    K is the backbone's ``num_features`` and the projector's ``out_dim`` (a projector without one
    is bounded by ``samples`` only).

    Args:
        module: the method (its ``eval_encoder`` and ``eval_head``).
        samples: N, the held-out images the RankMe was computed on.
    """
    widths = {
        "rankme_backbone": getattr(module.eval_encoder, "num_features", None),
        "rankme_projector": getattr(module.eval_head, "out_dim", None),
    }
    return {k: min(samples, int(w)) if isinstance(w, int) else samples for k, w in widths.items()}


def collapse_findings(
    metrics: Mapping[str, float],
    bounds: Mapping[str, int],
    rankme_share: float,
    online_top1: float | None = None,
    num_classes: int = 0,
    probe_chance_margin: float = 0.0,
) -> list[str]:
    """One message per sign of collapse; [] when there is none (or nothing to judge).

    A RankMe that is not finite (the RankMe of all-zero features is 0/0) counts as collapsed.

    Args:
        metrics: ``rankme_backbone`` and ``rankme_projector`` (either may be missing).
        bounds: min(N, K) of each (see :func:`rankme_bounds`).
        rankme_share: ``eval.collapse.rankme_share``; 0 judges no RankMe.
        online_top1: the online probe's held-out top-1 (percent), or None to not judge it.
        num_classes: the label count (chance is 100 / num_classes percent).
        probe_chance_margin: percentage points above chance that still count as chance.
    """
    found = []
    for key, words in JUDGED.items():
        value, bound = metrics.get(key), bounds.get(key)
        if value is None or bound is None or rankme_share <= 0:
            continue
        limit = rankme_threshold(bound, rankme_share)
        if not math.isfinite(value) or value < limit:
            found.append(
                f"collapse: {words} ({key}) is {value:.2f}, below {limit:.2f} = 1 + "
                f"eval.collapse.rankme_share={rankme_share:g} x ({bound} - 1) of its {bound} possible "
                f"dimensions; the embeddings span a handful of directions. {CAUSES}"
            )
    if online_top1 is not None and num_classes > 1:
        chance = 100.0 / num_classes
        if online_top1 <= chance + probe_chance_margin:
            found.append(
                f"collapse: the online probe (val/online_top1) is at chance, {online_top1:.2f} % <= "
                f"{chance:.2f} % (1 of {num_classes} classes) + eval.collapse.probe_chance_margin="
                f"{probe_chance_margin:g}; the features do not tell the classes apart. {CAUSES}"
            )
    return found


class CollapseCheck(L.Callback):
    """After each validation, warns (``logging.WARNING``, one line per sign) when the run looks collapsed.

    Reads what the other callbacks measured on the held-out split: the RankMe of the
    :class:`~selfsup.eval.rankme_callback.RankMeCallback` (only after a validation that measured
    it, never a stale value) and ``val/online_top1`` from ``trainer.callback_metrics``. Needs no
    method- or loss-specific code. The messages of the last validation stay in ``findings``.

    With ``stop=True`` a collapsed validation stops the run as the NaN guard does: it raises
    :class:`CollapseError` (every rank, when rank 0 found the collapse), before that epoch's
    checkpoint is written, so the last checkpoint is the epoch before; the run directory gets
    ``FAILED`` with the message and no ``results.json``. It keeps no state across a resume.

    Args:
        num_classes: the label count (the probe's chance level).
        rankme_share: see :func:`collapse_findings`; 0 turns the RankMe check off.
        probe_chance_margin: see :func:`collapse_findings`.
        after_epochs: judge the validations from the one after this many epochs on.
        stop: raise :class:`CollapseError` after a collapsed validation.
        rankme: the run's RankMe callback, or None (no RankMe during training).
    """

    def __init__(
        self,
        num_classes: int,
        rankme_share: float = 0.02,
        probe_chance_margin: float = 5.0,
        after_epochs: int = 10,
        stop: bool = False,
        rankme: RankMeCallback | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.rankme_share = rankme_share
        self.probe_chance_margin = probe_chance_margin
        self.after_epochs = after_epochs
        self.stop = stop
        self.rankme = rankme
        self.findings: list[str] = []
        self.seconds = 0.0  # time spent here (reported with the metric callbacks')

    def judge(
        self, metrics: Mapping[str, float], samples: int, module: Any, trainer: L.Trainer, epochs: int
    ) -> list[str] | None:
        """The findings for these RankMe ``metrics`` (of ``samples`` held-out images) and the online probe's
        last held-out top-1 (if it is on); None (not judged) when fewer than ``after_epochs`` of the run's
        ``epochs`` have been trained."""
        if epochs < self.after_epochs:
            return None
        top1 = trainer.callback_metrics.get("val/online_top1")
        return collapse_findings(
            metrics,
            rankme_bounds(module, samples),
            self.rankme_share,
            float(top1) if top1 is not None else None,
            self.num_classes,
            self.probe_chance_margin,
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        measured = self.rankme.take() if self.rankme is not None else None  # never judged later, when stale
        epochs = trainer.current_epoch + 1  # this validation ends the epoch
        if trainer.sanity_checking or epochs < self.after_epochs:
            return
        start = time.perf_counter()
        values, samples = measured if measured is not None else ({}, 0)
        self.findings = []
        if trainer.is_global_zero:
            self.findings = self.judge(values, samples, pl_module, trainer, epochs) or []
        for f in self.findings:
            log.warning(f"after epoch {trainer.current_epoch}: {f}")
        self.seconds += time.perf_counter() - start
        # Every rank stops together; only rank 0 holds the RankMe (the others pass False).
        if self.stop and trainer.strategy.reduce_boolean_decision(bool(self.findings), all=False):
            where = f"after epoch {trainer.current_epoch}, step {trainer.global_step}"
            raise CollapseError(
                f"collapsed {where} (eval.stop_on_collapse=true): stopped. "
                + ("; ".join(self.findings) or "collapse found on rank 0")
                + ". The last checkpoint is from before this validation (resume=auto continues from it)"
            )
