"""Lightning's weight averaging callbacks (conf/averaging/), with two fixes for how runs here test.

The averaging itself is Lightning's (``torch.optim.swa_utils.AveragedModel`` underneath);
these subclasses change only when the callbacks act:

- :class:`EMAWeightAveraging`: Lightning validates with the average swapped in and saves it
  as the checkpoint's ``state_dict`` (the raw weights go to ``current_model_state``), so the
  best checkpoint holds the weights that earned its ``val_acc``. But ``trainer.test(ckpt_path=
  best)`` also calls the callback's ``on_load_checkpoint``, which loads ``current_model_state``
  into the module: the test would measure the raw weights. Here the raw weights are restored
  only when fitting resumes.
- :class:`StochasticWeightAveraging`: Lightning validates the raw weights and copies the
  average in after the last epoch. With BatchNorm it adds one closing epoch that recomputes
  the statistics, then validates and checkpoints the average; without BatchNorm it would copy
  the average in after the last validation, so it would never be validated, checkpointed or
  tested. Here every network gets the closing epoch (without BatchNorm it only runs the
  forward passes, no step), so the average always competes for the best checkpoint.
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMA
from lightning.pytorch.callbacks import StochasticWeightAveraging as LightningSWA
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMA):
    """Lightning's EMA; outside fitting a loaded checkpoint's ``state_dict`` (the average) stays."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # a resume: average and raw weights both back
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class StochasticWeightAveraging(LightningSWA):
    """Lightning's SWA, whose average is validated and checkpointed for every network."""

    @staticmethod
    def pl_module_contains_batch_norm(pl_module: L.LightningModule) -> bool:
        """Lightning adds its closing epoch (the average copied in, then validated) only when
        this is true; it is true here for every network (see the module's docstring)."""
        return True
