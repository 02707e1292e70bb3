"""Ctrl-C and SIGTERM stop a run at the next batch (at once outside Lightning's batch loops),
in Lightning's ``SIGTERMException``. ``last.ckpt`` is saved only when training stopped: stopping
while testing must keep the end of training's weights, not the tested (best) ones. A second
Ctrl-C stops at once, saving nothing. Not Lightning's ``OnExceptionCheckpoint``: it also saves
on a NaN loss, whose weights must not reach a checkpoint, and knows nothing of signals.
"""

import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partialmethod
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

AFTER_TRAINING = ("after training", "testing", "the end-of-run summary and analysis")


class GracefulInterrupt(Callback):
    """``dirpath``/``filename``: ModelCheckpoint's ``last`` file, which ``resume=RUN_DIR`` reads."""

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.path = (Path(dirpath) / f"{filename}.ckpt").resolve()
        self.signum: int | None = None
        self.saved: Path | None = None
        self.aborted = False
        self.stage = "setting up"
        self.training = False  # training steps run: their state is worth a checkpoint
        self._batches = False  # a Lightning loop looks at the stop flag after every batch

    @contextmanager
    def handling_signals(self, trainer: L.Trainer) -> Iterator[None]:
        self._trainer = trainer
        previous = {}
        with suppress(ValueError):  # not the main thread: signals cannot be handled here
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:  # a second Ctrl-C: stop now, save nothing
                self.aborted = True
                raise SIGTERMException
            return
        self.signum = signum
        if signum == signal.SIGINT:
            when = "after this batch" if self._batches else "now"
            saving = ", saving a checkpoint" if self._batches and self.training else ""
            print(f"\nCtrl-C: stopping {when}{saving} (Ctrl-C again: at once, saving nothing)")
        # Lightning's loops stop at the next batch when this flag is up; it is what Lightning's
        # own SIGTERM handler sets (which would also log "Received SIGTERM").
        self._trainer._signal_connector.received_sigterm = True  # noqa: SLF001 (no public setter)
        if not self._batches:
            raise SIGTERMException  # no loop would look at the flag: stop here

    # Lightning's hooks where a stage starts (its batches look at the stop flag) or ends.
    def _enter(self, stage: str, *hook_args: Any, training: bool = False) -> None:
        self.stage, self._batches, self.training = stage, True, training

    def _leave(self, stage: str, *hook_args: Any) -> None:
        self._batches = False
        if self.signum is not None:  # a signal during the last batch stops the run here
            raise SIGTERMException
        self.stage, self.training = stage, False

    on_sanity_check_start = partialmethod(_enter, "the sanity check")
    on_sanity_check_end = partialmethod(_leave, "setting up training")
    on_train_start = partialmethod(_enter, "training", training=True)
    on_train_end = partialmethod(_leave, AFTER_TRAINING[0])
    on_test_start = partialmethod(_enter, AFTER_TRAINING[1])
    on_test_epoch_end = partialmethod(_leave, AFTER_TRAINING[2])

    def on_exception(self, trainer: L.Trainer, _: L.LightningModule, error: BaseException) -> None:
        if isinstance(error, SIGTERMException):
            self.signum = self.signum or signal.SIGTERM
            if self.training and not self.aborted:
                trainer.save_checkpoint(self.path, weights_only=False)
                self.saved = self.path
