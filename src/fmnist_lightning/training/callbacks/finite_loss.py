"""Stop at the first NaN or infinite training loss, before it reaches a checkpoint."""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from fmnist_lightning.training.callbacks import is_logging_step
from fmnist_lightning.training.faults import NonFiniteLoss, non_finite_loss_message


class StopOnNonFiniteLoss(Callback):
    """Checked on the device every step, read back (a GPU sync) at logging steps or every
    ``check_every_n_steps``, and on the epoch's last batch, before the end-of-epoch checkpoint."""

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._all_finite: torch.Tensor | None = None

    def on_train_batch_end(self, trainer: L.Trainer, _: Any, outputs: Any, *args: Any) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        finite = torch.isfinite(loss.detach()).all()
        # Accumulated on the device, so steps between checks cost no synchronisation.
        self._all_finite = finite if self._all_finite is None else self._all_finite & finite
        every = self.check_every_n_steps
        due = is_logging_step(trainer) if every is None else trainer.global_step % every == 0
        if (due or trainer.is_last_batch) and not bool(self._all_finite):
            self._all_finite = None
            raise NonFiniteLoss(non_finite_loss_message(trainer, float(loss)))
