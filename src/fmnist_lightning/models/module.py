"""The LightningModule: loss, metrics, optimiser and schedule around the plain network.

Every constructor argument is plain data, checked by ``models.hparams.HParams`` before
anything is built, because every way in (:func:`load_module`, ``load_from_checkpoint``,
Lightning's own loader) calls the constructor with a file's stored values. Starting weights
(``model.weights``, ``model.init_from``) are not arguments: the training builder loads them.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from fmnist_lightning.models.checkpoint_file import (
    CheckpointError,
    MapLocation,
    check_weight_shapes,
    read_checkpoint,
)
from fmnist_lightning.models.hparams import (
    HParams,
    arguments,
    network_of,
    torch_class,
)
from fmnist_lightning.models.runtime import unwrapped
from fmnist_lightning.models.transfer import parameter_groups, scale_schedule_to_groups
from fmnist_lightning.models.tta import TTA, tta_probabilities

MIN_SCHEDULE_STEPS = 100
# The metrics the module logs, by stage: "fit" (what EarlyStopping and ModelCheckpoint can
# monitor; validate_config checks their monitors against it) or "test". train_loss is logged
# on every step too (_step, _epoch); the _tta ones only by a module with TTA on.
LOGGED_METRICS = {
    "fit": "train_loss train_loss_step train_loss_epoch train_acc val_loss val_acc val_acc_tta",
    "test": "test_loss test_acc test_acc_tta",
}


def build_network(net: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """The network a checked ``net`` dict names, built from its class (no Hydra)."""
    return network_of(net)(**arguments(net), num_classes=num_classes)


class FashionMNISTModule(L.LightningModule):
    """``net`` with cross-entropy (label smoothing in training), accuracy, optimiser and schedule.

    ``tta`` (``{flip, shift}``; None: off) adds ``val_acc_tta`` and ``test_acc_tta``, the
    accuracy of the mean softmax over the views, beside the plain metrics.
    """

    def __init__(self, **hparams: Any) -> None:
        """The keyword arguments are the fields of ``HParams``, checked there before anything
        is built: they may be a checkpoint's."""
        super().__init__()
        checked = HParams.of(hparams)
        self.save_hyperparameters(asdict(checked))
        num_classes = len(checked.class_names)
        self.net = build_network(checked.net, num_classes=num_classes)
        self.channels_last = checked.channels_last
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if checked.compile:
            self.net = torch.compile(self.net)
        else:  # a compiled network would be compiled twice, for this batch of one and the real
            # One blank image: Lightning's model summary runs it to print sizes and FLOPs.
            self.example_input_array = torch.zeros(1, 1, 28, 28)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.tta = TTA.of(checked.tta)
        if self.tta.enabled:  # only then: a run without TTA keeps the state_dict it had
            self.val_acc_tta = MulticlassAccuracy(num_classes, average="micro")
            self.test_acc_tta = MulticlassAccuracy(num_classes, average="micro")

    @classmethod
    def logged_metrics(cls, stage: str | None = None, tta: bool = False) -> tuple[str, ...]:
        """The names the module's metrics appear under (in ``trainer.callback_metrics`` and
        metrics.csv), of one stage ("fit" or "test") or all; ``tta``: with TTA switched on."""
        stages = [stage] if stage else list(LOGGED_METRICS)
        names = (name for stage in stages for name in LOGGED_METRICS[stage].split())
        return tuple(name for name in names if tta or not name.endswith("_tta"))

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    @property
    def background(self) -> float:
        """The network input of a black pixel (the normalised background), TTA's shift fill."""
        return -float(self.hparams.mean) / float(self.hparams.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised (N, 1, 28, 28) images → (N, classes) logits."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, train: bool = True) -> torch.Tensor:
        """Cross-entropy, with the label smoothing of the hyperparameters in training."""
        smoothing = self.hparams.label_smoothing if train else 0.0
        return F.cross_entropy(logits, labels, label_smoothing=smoothing)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss(logits, labels, train=split == "train")
        accuracy = getattr(self, f"{split}_acc")
        # update(), not forward(): the per-batch accuracy forward() computes is never logged.
        accuracy.update(logits, labels)
        on_step = split == "train"
        # A step value on the progress bar is read back from the device after every step (a
        # sync on a GPU); the terminal bar shows the loss of the logging steps instead.
        self.log(
            f"{split}_loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=not on_step,
            sync_dist=True,
        )
        self.log(f"{split}_acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        if split != "train" and self.tta.enabled:
            self._log_tta_accuracy(images, logits, labels, split)
        return loss

    def _log_tta_accuracy(
        self, images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, split: str
    ) -> None:
        """``{split}_acc_tta``: accuracy of the mean softmax over the TTA views."""
        probabilities = tta_probabilities(
            lambda view: self(view).float().softmax(dim=1),
            images,
            self.tta,
            self.background,
            first=logits.float().softmax(dim=1),
        )
        accuracy = getattr(self, f"{split}_acc_tta")
        accuracy.update(probabilities, labels)
        self.log(f"{split}_acc_tta", accuracy, on_step=False, on_epoch=True)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities, (N, classes); the batch is images or (images, labels)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).float().softmax(dim=1)

    def configure_optimizers(self) -> Any:
        head = getattr(unwrapped(self.net), "head", None)
        params = parameter_groups(self, head, self.hparams.head_lr)
        settings = self.hparams.optimizer
        optimizer = torch_class("optimizer", settings["_target_"])(params, **arguments(settings))
        scheduler = self.hparams.scheduler or {}
        if not scheduler.get("schedule"):
            return optimizer
        schedule = scale_schedule_to_groups(
            arguments(scheduler["schedule"]), optimizer, settings.get("lr")
        )
        if schedule.get("total_steps") == "auto":
            # Schedules over the whole run need its length, known once the trainer is attached.
            # One-cycle divides by its warm-up length, which must be at least a step or two,
            # so very short runs (smoke tests) use a longer schedule than they will finish.
            steps = self.trainer.estimated_stepping_batches
            schedule["total_steps"] = max(int(steps), MIN_SCHEDULE_STEPS)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": torch_class("scheduler.schedule", scheduler["schedule"]["_target_"])(
                    optimizer, **schedule
                ),
                "interval": scheduler.get("interval", "epoch"),
            },
        }

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: Path | str,
        map_location: MapLocation = None,
        hparams_file: Path | str | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> "FashionMNISTModule":
        """Lightning's loader, through ``read_checkpoint``: always ``weights_only=True``, and
        checkpoints of release 0.1.0 load too. ``kwargs`` override stored hyperparameters."""
        if hparams_file is not None:
            raise ValueError(
                "hparams_file is not supported: checkpoints of this project store their "
                "hyperparameters; pass changed values as keyword arguments instead."
            )
        if map_location is None and not torch.cuda.is_available():
            map_location = "cpu"  # as Lightning: a GPU checkpoint loads on a machine without one
        checkpoint = read_checkpoint(checkpoint_path, map_location)
        module = cls(**{**checkpoint["hyper_parameters"], **kwargs})
        module.on_load_checkpoint(checkpoint)
        module.load_state_dict(checkpoint["state_dict"], strict=True if strict is None else strict)
        tensors = (t for t in checkpoint["state_dict"].values() if isinstance(t, torch.Tensor))
        return module.to(next(tensors, torch.tensor(0)).device)


# The name of release 0.1.0, for code written against it.
FashionMNISTClassifier = FashionMNISTModule


def load_module(path: Path | str, map_location: str | torch.device = "cpu") -> FashionMNISTModule:
    """The trained FashionMNISTModule of a checkpoint, in eval mode, on ``map_location``."""
    checkpoint = read_checkpoint(path, map_location)
    try:
        module = FashionMNISTModule(**checkpoint["hyper_parameters"])
        check_weight_shapes(path, module.state_dict(), checkpoint["state_dict"])
        module.load_state_dict(checkpoint["state_dict"])
    except CheckpointError:
        raise  # it names the weights that do not fit
    except Exception as error:  # e.g. a state_dict with other names than the network's
        raise CheckpointError(
            f"'{path}' looks like an fmnist-lightning checkpoint but its model could not be "
            f"rebuilt ({type(error).__name__}: {str(error).splitlines()[0][:300]}). It may come "
            "from an incompatible version of the code."
        ) from error
    return module.to(map_location).eval()
