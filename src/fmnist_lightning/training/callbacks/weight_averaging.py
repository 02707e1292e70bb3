"""Lightning's weight averaging callbacks (conf/averaging/), changed in when they act: EMA's
``on_load_checkpoint`` loads the raw weights, also for ``trainer.test(ckpt_path=best)``, which
would then not test the average: here only when fitting resumes. SWA validates and checkpoints
the average in a closing epoch only with BatchNorm: here every network gets that epoch."""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMA
from lightning.pytorch.callbacks import StochasticWeightAveraging as LightningSWA
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMA):
    def on_load_checkpoint(self, trainer: L.Trainer, *module_and_checkpoint: Any) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, *module_and_checkpoint)


class StochasticWeightAveraging(LightningSWA):
    @staticmethod
    def pl_module_contains_batch_norm(pl_module: L.LightningModule) -> bool:
        return True  # Lightning's condition for its closing epoch
