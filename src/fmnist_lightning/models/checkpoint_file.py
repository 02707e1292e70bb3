"""Read a checkpoint file of this project safely, with a clear error for anything else. It
imports nothing that builds a model, so every way in can use it."""

import zipfile
from pathlib import Path
from typing import Any

import torch

from fmnist_lightning.errors import UsageError
from fmnist_lightning.models.compat import upgrade_hparams
from fmnist_lightning.models.hparams import HParams, HyperparameterError

OURS = "pass a .ckpt file written by this project's training"  # for any file of another kind


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception in one short line, for a message that names what torch refused."""
    line = str(error).partition("\n")[0]
    return f"{type(error).__name__}: {line[:limit]}"


class CheckpointError(UsageError):
    """A path that is not a readable checkpoint of this project."""


def read_checkpoint(path: Path | str, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True``, its ``hyper_parameters``
    upgraded (``compat``) and checked (``HParams``) before anything is built from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint file at '{path}'; {OURS}.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        # torch's message for a non-checkpoint file suggests weights_only=False: bad advice here.
        detail = first_line(error, 200)
        if not zipfile.is_zipfile(path):
            detail = "it is not the zip archive that torch.save writes"
        message = f"'{path}' could not be read as a PyTorch checkpoint ({detail}); {OURS}."
        raise CheckpointError(message) from error
    stored = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    hparams = upgrade_hparams(stored) if isinstance(stored, dict) else {}
    # Only a file of another kind here: HParams names any other missing hyperparameter.
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "net" not in hparams:
        what = "a checkpoint of fmnist-lightning (no state_dict or hyperparameters)"
        raise CheckpointError(f"'{path}' is not {what}; {OURS}.")
    try:
        HParams.of(hparams)
    except HyperparameterError as error:
        raise CheckpointError(f"'{path}' cannot be loaded: {error}; {OURS}.") from error
    checkpoint["hyper_parameters"] = hparams
    return checkpoint
