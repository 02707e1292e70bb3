"""Test-only faults on cue: callbacks (added to a run with ``+callbacks.x._target_=helpers.faults.X``) and a full disk."""

import builtins
import errno
import io
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback


class SlowSteps(Callback):
    """Sleep after every training step, so that a signal can reach a run mid-epoch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        print(f"[slow-steps] global_step={trainer.global_step}", flush=True)
        time.sleep(self.seconds)


class SignalAtEpochEnd(Callback):
    """Send a signal to this very process at the end of one training epoch."""

    def __init__(self, epoch: int, signum: int = signal.SIGTERM) -> None:
        self.epoch, self.signum = epoch, signum

    def on_train_epoch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), self.signum)


# When each SendSignal sent its signals (time.time()), by hook name.
SENT: dict[str, list[float]] = {}


class SendSignal(Callback):
    """Send ``signum`` to this very process when Lightning calls ``hook`` (any callback hook),
    the first ``times`` times it does (from the ``after``-th call on)."""

    def __init__(
        self, hook: str, signum: int = signal.SIGINT, times: int = 1, after: int = 1
    ) -> None:
        self.hook, self.signum, self.times, self.after = hook, signum, times, after
        self.calls = 0
        SENT[hook] = []
        setattr(self, hook, self.send)  # an instance attribute wins over Callback's no-op hook

    def send(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls >= self.after and len(SENT[self.hook]) < self.times:
            SENT[self.hook].append(time.time())
            os.kill(os.getpid(), self.signum)
            time.sleep(0.05)  # let the handler run here, inside the hook


class PoisonWeightsAtStep(Callback):
    """Make the weights NaN before a given global step, as a diverging optimiser would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))


class CrashAtStep(Callback):
    """Flush the loggers and fail at a global step, as a run killed mid-epoch leaves its folder:
    rows in metrics.csv beyond the last checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step == self.step:
            for logger in trainer.loggers:
                logger.save()
            raise RuntimeError(f"simulated crash at step {self.step}")


@contextmanager
def disk_full_in(folder: Path, after_bytes: int) -> Iterator[None]:
    """Writes into ``folder`` fail with ENOSPC after ``after_bytes``; other folders are on another disk.

    Simulates a full disk on the run's filesystem while the system temp folder (/tmp) is a
    separate filesystem, a common set-up on clusters: a rename from another folder into
    ``folder`` fails with EXDEV, so ``shutil.move`` falls back to copying, as it would there.
    Files opened with ``open`` or ``io.open`` (``Path.write_text``) count; a file that C++
    writes (``torch.jit.save`` to a path) does not.
    """
    folder = Path(folder).resolve()
    real_open, real_rename = builtins.open, os.rename

    class FillingFile:
        def __init__(self, file: Any) -> None:
            self._file, self._written = file, 0

        def write(self, data: Any) -> int:
            room = after_bytes - self._written
            if len(data) > room:
                self._file.write((data if isinstance(data, str) else bytes(data))[: max(room, 0)])
                self._file.flush()
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            self._written += len(data)
            return self._file.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._file, name)

        def __enter__(self) -> "FillingFile":
            return self

        def __exit__(self, *exc: Any) -> None:
            self._file.close()

    def inside(path: Any) -> bool:
        return isinstance(path, (str, os.PathLike)) and Path(path).resolve().parent == folder

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        opened = real_open(file, mode, *args, **kwargs)
        return FillingFile(opened) if "w" in mode and inside(file) else opened

    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if inside(dst) and not inside(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link (injected)")
        real_rename(src, dst, *args, **kwargs)

    builtins.open = io.open = open_
    os.rename = rename
    use_sendfile, shutil._USE_CP_SENDFILE = shutil._USE_CP_SENDFILE, False  # copy via write()
    try:
        yield
    finally:
        builtins.open = io.open = real_open
        os.rename = real_rename
        shutil._USE_CP_SENDFILE = use_sendfile
