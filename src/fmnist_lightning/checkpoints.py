"""Load a checkpoint of this project safely, with a clear error for anything else; save atomically."""

import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fmnist_lightning.module import FashionMNISTClassifier

REQUIRED_HPARAMS = ("model", "optimizer", "class_names", "mean", "std")


class CheckpointError(ValueError):
    """A path that is not a readable checkpoint of this project."""


def read_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict, loaded with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint file at '{path}'. Pass the path of a .ckpt file written by "
            "training, e.g. lightning_logs/runs/<run>/checkpoints/last.ckpt."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        # torch's message for a non-checkpoint file suggests weights_only=False: bad advice here.
        detail = (
            "it is not the zip archive that torch.save writes"
            if not zipfile.is_zipfile(path)
            else f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        )
        raise CheckpointError(
            f"'{path}' could not be read as a PyTorch checkpoint ({detail}). "
            "It may be truncated or not a checkpoint at all; pick another .ckpt file."
        ) from error
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    missing = [key for key in REQUIRED_HPARAMS if key not in hparams]
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or missing:
        raise CheckpointError(
            f"'{path}' is not a checkpoint of fmnist-lightning: expected a Lightning checkpoint "
            f"with a state_dict and the FashionMNISTClassifier hyperparameters "
            f"{', '.join(REQUIRED_HPARAMS)}"
            + (f" (missing: {', '.join(missing)})." if missing else ".")
        )
    return checkpoint


def load_module(
    path: Path | str, map_location: str | torch.device = "cpu"
) -> FashionMNISTClassifier:
    """The trained FashionMNISTClassifier of a checkpoint, in eval mode."""
    checkpoint = read_checkpoint(path, map_location)
    try:
        module = FashionMNISTClassifier(**checkpoint["hyper_parameters"])
        module.load_state_dict(checkpoint["state_dict"])
    except Exception as error:  # e.g. a network class that moved, or weights of another shape
        raise CheckpointError(
            f"'{path}' looks like an fmnist-lightning checkpoint but its model could not be "
            f"rebuilt ({type(error).__name__}: {str(error).splitlines()[0][:300]}). It may come "
            "from an incompatible version of the code."
        ) from error
    return module.to(map_location).eval()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in its own folder, then rename it into place.

    A crash, a kill or a full disk during a save leaves the previous file intact: the rename
    (``os.replace``) is atomic within one filesystem. Lightning's default writes its temporary
    file in the system temp folder and moves it, which is a copy, not a rename, whenever that
    folder is on another filesystem than the run. The data is fsynced before the rename, so a
    power loss cannot leave a renamed but empty file either.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Path | str, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
