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
  average in after the last epoch. With BatchNorm it adds one epoch that recomputes the
  statistics, then validates and checkpoints the average; without BatchNorm the average is
  copied in after the last validation, so it would never be validated, checkpointed or tested.
  Such a network is refused before training.
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMA
from lightning.pytorch.callbacks import StochasticWeightAveraging as LightningSWA
from lightning.pytorch.trainer.states import TrainerFn

from fmnist_lightning.training.faults import RunStopped


class AveragingNeedsBatchNorm(RunStopped):
    """averaging=swa on a network without BatchNorm, whose average would never be tested."""


class EMAWeightAveraging(LightningEMA):
    """Lightning's EMA; outside fitting a loaded checkpoint's ``state_dict`` (the average) stays."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # a resume: average and raw weights both back
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class StochasticWeightAveraging(LightningSWA):
    """Lightning's SWA, for networks with BatchNorm only (see the module's docstring)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.pl_module_contains_batch_norm(pl_module):
            raise AveragingNeedsBatchNorm(
                "averaging=swa needs a network with BatchNorm (e.g. model=cnn_bn or "
                "model=compact): without it Lightning copies the average in after the last "
                "validation, so the tested best checkpoint would never hold it. Use "
                "averaging=ema, which validates and checkpoints the average every epoch."
            )
        super().on_fit_start(trainer, pl_module)
