"""DINO (Caron et al., ICCV 2021): self-distillation with no labels, from a momentum teacher."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.methods._momentum import TeacherMethod
from selfsup.schema import NonNegative, NonNegativeInt, Positive


def warmed_up(epoch: int, start: float, end: float, epochs: int) -> float:
    """A per-epoch warm-up in epoch ``epoch`` (0-based): linear from ``start`` in the first epoch to
    ``end``, reached at the last of ``epochs`` (numpy's ``linspace`` of the official DINO and iBOT
    schedules), then constant."""
    if epoch >= epochs:
        return end
    if epochs == 1:
        return start
    return start + epoch / (epochs - 1) * (end - start)


class DINO(TeacherMethod):
    """The student (backbone and :class:`~selfsup.heads.dino.DINOHead`) matches, on every view, the
    momentum teacher's centred and sharpened output of the other global views (``loss=dino``).

    Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers"; official code
    github.com/facebookresearch/dino (``main_dino.py``). What it follows:

    - the teacher sees the global views only, the student every view, multi-crop's local views
      included (a ViT takes them at their size with ``backbone.model_kwargs.dynamic_img_size``);
    - the teacher is an EMA of the student's backbone and head, momentum 0.996 -> 1 on a cosine
      schedule over the run's steps (``base_momentum``; ``method=dino`` starts at 0.9, for runs of
      hundreds of steps);
    - the teacher temperature rises linearly from ``warmup_teacher_temperature`` to
      ``teacher_temperature`` over the first ``warmup_teacher_temperature_epochs`` epochs (the
      paper: 0.04 -> 0.07 over 30), per epoch as the official schedule;
    - the head's last layer gets no update in the first ``freeze_last_layer`` epochs;
    - each parameter's gradient is clipped to norm ``clip_grad`` on its own (the official
      ``clip_gradients``; 0 switches it off);
    - the teacher is what is evaluated by default (``eval_with: teacher``; the official evaluation
      reads the teacher's weights).

    Args:
        teacher_temperature: τ_t after the warm-up.
        warmup_teacher_temperature: τ_t in the first epoch.
        warmup_teacher_temperature_epochs: the epochs τ_t rises over (0: constant).
        freeze_last_layer: the epochs the head's ``last_layer`` is frozen for.
        clip_grad: the per-parameter gradient norm clip (0: none).
        *args, **kwargs: :class:`~selfsup.methods._momentum.TeacherMethod`'s arguments.
    """

    local_views_ok = True
    mix_ok = False

    def __init__(
        self,
        *args: Any,
        teacher_temperature: Positive = 0.07,
        warmup_teacher_temperature: Positive = 0.04,
        warmup_teacher_temperature_epochs: NonNegativeInt = 30,
        freeze_last_layer: NonNegativeInt = 1,
        clip_grad: NonNegative = 3.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if freeze_last_layer and not isinstance(getattr(self.head, "last_layer", None), nn.Module):
            raise ValueError(
                f"freeze_last_layer={freeze_last_layer} needs a head with a last_layer (head=dino); "
                "set it to 0 for another head"
            )
        self.teacher_temperature, self.warmup_teacher_temperature = teacher_temperature, warmup_teacher_temperature
        self.warmup_teacher_temperature_epochs = warmup_teacher_temperature_epochs
        self.freeze_last_layer, self.clip_grad = freeze_last_layer, clip_grad

    def teacher_temperature_at(self, epoch: int) -> float:
        """τ_t in epoch ``epoch`` (0-based): :func:`warmed_up` from the warm-up value."""
        return warmed_up(
            epoch, self.warmup_teacher_temperature, self.teacher_temperature, self.warmup_teacher_temperature_epochs
        )

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        z = self.by_view(self.head, h, views.count)
        ht, zt = self.teach(views.global_only())
        tau = self.teacher_temperature_at(self.current_epoch)
        features = h[: zt.shape[0]]  # the global views' (KoLeo's, with loss.koleo_weight)
        loss = self.criterion(z, views=views.count, teacher=zt, teacher_temperature=tau, features=features)
        self.log("train/teacher_temperature", tau, on_step=True, on_epoch=False)
        return loss, *self.for_eval(h, z, ht, zt)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """The first epochs' frozen last layer, and the per-parameter clip (after AMP's unscaling)."""
        if self.current_epoch < self.freeze_last_layer:
            last_layer: nn.Module = self.head.last_layer  # type: ignore[assignment]  # checked in __init__
            for p in last_layer.parameters():
                p.grad = None
        if self.clip_grad:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_((self.clip_grad / (p.grad.norm() + 1e-6)).clamp(max=1.0))
