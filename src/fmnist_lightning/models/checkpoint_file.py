"""Read a checkpoint file of this project safely, with a clear error for anything else, and
upgrade what checkpoints of release 0.1.0 need: their network names and hyperparameter layout
(network and run-time keys together under ``model``, ``interval`` in the scheduler's). It
imports nothing that builds a model, so every way in can use it."""

import zipfile
from pathlib import Path
from typing import Any, TypeVar

import torch

from fmnist_lightning.errors import UsageError
from fmnist_lightning.models.hparams import HParams, HyperparameterError
from fmnist_lightning.models.registry import RESNET18, VGG

OURS = "pass a .ckpt file written by this project's training"  # for any file of another kind
OLD_CODE = "load it with the version of the code that trained it"  # for weights that do not fit
T = TypeVar("T")
# The network names of release 0.1.0, and their names now.
LEGACY_TARGETS: dict[str, str] = {
    "fmnist_lightning.network.VGGStyleCNN": VGG,
    "fmnist_lightning.resnet.ResNet18": RESNET18,
}


def upgrade_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters in the current layout (only the shape; ``HParams`` checks values)."""
    upgraded = dict(hparams)
    if "net" in hparams or not isinstance(upgraded.get("model"), dict):
        return upgraded
    # Starting points of a fresh run (read once by the builder): not part of a trained model.
    model = {k: v for k, v in upgraded.pop("model").items() if k not in ("weights", "init_from")}
    # Keys of 0.1.0's ``model`` that said how the network runs, not what it is.
    runtime = {k: model.pop(k) for k in ("channels_last", "compile", "head_lr") if k in model}
    if isinstance(model.get("_target_"), str):
        model["_target_"] = LEGACY_TARGETS.get(model["_target_"], model["_target_"])
    upgraded["net"] = model
    scheduler = upgraded.get("scheduler")
    if scheduler is None or isinstance(scheduler, dict):
        schedule = dict(scheduler or {})
        interval = schedule.pop("interval", "epoch")
        upgraded["scheduler"] = {"interval": interval, "schedule": schedule or None}
    return {**upgraded, **runtime}


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception in one short line, for a message that names what torch refused."""
    line = str(error).partition("\n")[0]
    return f"{type(error).__name__}: {line[:limit]}"


class CheckpointError(UsageError):
    """A path that is not a readable checkpoint of this project."""


def read_checkpoint(path: Path | str, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True``, its ``hyper_parameters``
    upgraded (``upgrade_hparams``) and checked (``HParams``) before anything is built from it."""
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


def build_from_checkpoint(
    cls: type[T], path: Path | str, map_location: Any, strict: bool | None, overrides: dict
) -> T:
    """``cls`` (the LightningModule) built from a checkpoint's hyperparameters (``overrides``
    replacing some) with its weights, on the device they were mapped to; a CheckpointError
    names what does not fit."""
    checkpoint = read_checkpoint(path, map_location)
    stored = checkpoint["state_dict"]
    try:
        module = cls(**{**checkpoint["hyper_parameters"], **overrides})
        # Each weight whose shape in the file is not the network's, named: torch's own
        # message puts them below a first line that names none.
        mismatched = [
            f"{key} is {tuple(stored[key].shape)} in the file but {tuple(tensor.shape)} in the network"
            for key, tensor in module.state_dict().items()
            if isinstance(stored.get(key), torch.Tensor) and stored[key].shape != tensor.shape
        ]
        if mismatched:
            message = f"'{path}' does not fit the network its hyperparameters build"
            raise CheckpointError(f"{message} ({'; '.join(mismatched)}); {OLD_CODE}.")
        module.on_load_checkpoint(checkpoint)
        module.load_state_dict(stored, strict=strict is not False)
    except UsageError:
        raise  # it names what is wrong
    except Exception as error:  # e.g. a state_dict with other names than the network's
        detail = first_line(error)
        message = f"'{path}': its model could not be rebuilt ({detail}); {OLD_CODE}."
        raise CheckpointError(message) from error
    tensors = (t for t in stored.values() if isinstance(t, torch.Tensor))
    return module.to(next(tensors, torch.tensor(0)).device)
