"""Checkpoints that are never half-written, that say which code wrote them, and that are only
ever read with ``weights_only=True``."""

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fmnist_lightning.inference.output_files import TEMPORARY_SUFFIX, write_atomically
from fmnist_lightning.training.provenance import CHECKPOINT_KEY, provenance


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of saves that a killed process never finished; call it only
    while holding the run folder's lock (no other process can be saving there)."""
    for path in folder.glob(f".*.ckpt.*{TEMPORARY_SUFFIX}"):
        path.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Each checkpoint goes to a temporary file in its own folder, renamed into place
    (``write_atomically``): a crash, a kill or a full disk leaves the previous file intact.
    Lightning's default writes its temporary file in the system temp folder and moves it, a
    copy, not a rename, when that is another filesystem. Serialised in memory first, so that a
    full disk is one OutputFileError naming the file and its size, not an error deep in torch's
    zip writer. Every checkpoint holds ``provenance()`` under ``CHECKPOINT_KEY``.

    Reading (``trainer.fit/test(ckpt_path=...)``) always uses ``weights_only=True``, whatever
    the caller asks: a checkpoint never runs code.
    """

    def load_checkpoint(
        self,
        path: Path | str,
        map_location: Any = lambda storage, location: storage,  # Lightning's default: the CPU
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Path | str, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()
        torch.save({**checkpoint, CHECKPOINT_KEY: provenance()}, buffer)
        write_atomically(path, buffer.getbuffer())
