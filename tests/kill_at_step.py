"""A Hydra callback for tests: the run SIGKILLs itself at the start of training step ``step``, when
the checkpoints of the steps before it are written. A kill at a known point, with no timing to race:

    python train.py ... +hydra.callbacks.kill._target_=tests.kill_at_step.KillAtStep +hydra.callbacks.kill.step=12

(``tests`` is importable as ``train.py``'s folder, the repository root, is first on ``sys.path``.)
"""

from __future__ import annotations

import os
import signal
from typing import Any

from hydra.experimental.callback import Callback


class KillAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from selfsup.methods.base import Method

        training_step, kill_at = Method.training_step, self.step

        def step(module: Any, batch: Any, batch_idx: int) -> Any:
            if module.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return training_step(module, batch, batch_idx)

        Method.training_step = step  # type: ignore[method-assign]


def kill_at(step: int) -> list[str]:
    """The overrides that add the callback."""
    return ["+hydra.callbacks.kill._target_=tests.kill_at_step.KillAtStep", f"+hydra.callbacks.kill.step={step}"]
