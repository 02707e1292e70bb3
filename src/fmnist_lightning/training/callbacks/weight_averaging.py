"""Lightning's weight averaging callbacks (conf/averaging/), changed only in when they act:

- :class:`EMAWeightAveraging`: Lightning validates and checkpoints the average (the raw
  weights go to ``current_model_state``), but ``trainer.test(ckpt_path=best)`` also calls its
  ``on_load_checkpoint``, which loads the raw weights: the test would measure those. Here
  they are restored only when fitting resumes.
- :class:`StochasticWeightAveraging`: Lightning copies the average in after the last epoch;
  only with BatchNorm does it add a closing epoch that validates and checkpoints it, so
  without BatchNorm the average would never be validated, checkpointed or tested. Here every
  network gets the closing epoch (without BatchNorm only forward passes, no step).
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMA
from lightning.pytorch.callbacks import StochasticWeightAveraging as LightningSWA
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMA):
    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # a resume: average and raw weights both back
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class StochasticWeightAveraging(LightningSWA):
    @staticmethod
    def pl_module_contains_batch_norm(pl_module: L.LightningModule) -> bool:
        return True  # Lightning's condition for its closing epoch (see above)
