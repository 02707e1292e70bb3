"""Ctrl-C and SIGTERM stop training at the next batch and save ``last.ckpt``."""

import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException


class GracefulInterrupt(Callback):
    """Save ``last.ckpt`` and stop cleanly on Ctrl-C or SIGTERM.

    Lightning already stops at the next batch boundary on SIGTERM (any environment, not only
    SLURM) by raising ``SIGTERMException``. The first Ctrl-C is routed to that same handler,
    so it also stops between batches instead of inside an optimiser step; a second Ctrl-C
    raises KeyboardInterrupt at once (no checkpoint). ``dirpath``/``filename`` should match
    ModelCheckpoint's ``last`` file, so ``resume=RUN_DIR`` finds the newest state.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.signum: int | None = None  # the signal that stopped training
        self.saved: Path | None = None  # the checkpoint written when it stopped

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signum, self.saved = None, None
        # Lightning registers its SIGTERM handler just before training starts, and restores
        # every handler when fit ends; handlers can only be set from the main thread.
        lightning_sigterm = signal.getsignal(signal.SIGTERM)
        if not callable(lightning_sigterm):
            return

        def on_signal(signum: int, frame: Any) -> None:
            if signum == signal.SIGINT and self.signum is not None:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            if self.signum is None:
                self.signum = signum
                if signum == signal.SIGINT:
                    print("\nCtrl-C: saving a checkpoint after this batch (Ctrl-C again to abort)")
            lightning_sigterm(signal.SIGTERM, frame)

        try:
            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
        except ValueError:  # not the main thread
            pass

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, error: BaseException
    ) -> None:
        if isinstance(error, SIGTERMException):
            self.signum = self.signum or signal.SIGTERM
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved = self.path
