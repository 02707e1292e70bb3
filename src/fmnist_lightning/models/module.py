"""The LightningModule: loss, metrics, optimiser and schedule around the plain network.

Every constructor argument is plain data, checked by ``models.hparams.HParams`` before
anything is built, because every way in (:func:`load_module`, ``load_from_checkpoint``,
Lightning's own loader) calls the constructor with a file's stored values. Starting weights
(``model.weights``, ``model.init_from``) are not arguments: the training builder loads them."""

from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from fmnist_lightning.models.hparams import TARGET, HParams, arguments, load_class
from fmnist_lightning.models.runtime import unwrapped
from fmnist_lightning.models.tta import TTA, tta_probabilities

Batch = tuple[torch.Tensor, torch.Tensor]  # images and labels
# The metrics the module logs, by stage: "fit" (what EarlyStopping and ModelCheckpoint can
# monitor; validate_config checks their monitors against it) or "test". train_loss is logged
# on every step too (_step, _epoch); the _tta ones only by a module with TTA on.
LOGGED_METRICS = {
    "fit": "train_loss train_loss_step train_loss_epoch train_acc val_loss val_acc val_acc_tta",
    "test": "test_loss test_acc test_acc_tta",
}
MIN_STEPS = 100  # one-cycle's warm-up needs a few steps: smoke runs get a longer one


def build_network(net: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """The network a ``net`` dict names (checked by HParams, or a preset's), built without Hydra."""
    return load_class(net[TARGET])(**arguments(net), num_classes=num_classes)


class FashionMNISTModule(L.LightningModule):
    """``net`` with cross-entropy (label smoothing in training), accuracy, optimiser and schedule.

    ``tta`` (``{flip, shift}``; None: off) adds ``val_acc_tta`` and ``test_acc_tta``, the
    accuracy of the mean softmax over the views, beside the plain metrics."""

    def __init__(self, **hparams: Any) -> None:  # the fields of HParams, maybe a checkpoint's
        super().__init__()
        checked = HParams.of(hparams)
        self.save_hyperparameters(asdict(checked))
        self.net = build_network(checked.net, num_classes=len(checked.class_names))
        if checked.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if checked.compile:
            self.net = torch.compile(self.net)
        else:  # for Lightning's model summary (sizes, FLOPs); a compiled network would compile twice
            self.example_input_array = torch.zeros(1, 1, 28, 28)
        accuracy = partial(MulticlassAccuracy, len(checked.class_names), average="micro")
        self.train_acc, self.val_acc, self.test_acc = accuracy(), accuracy(), accuracy()
        self.tta = TTA.of(checked.tta)
        if self.tta.enabled:  # only then: a run without TTA keeps the state_dict it had
            self.val_acc_tta, self.test_acc_tta = accuracy(), accuracy()
        # A models.distillation.Teacher while a distilled run trains (the training builder sets
        # it): its loss replaces the training cross-entropy; no part of the checkpoint.
        self.teacher = None

    @classmethod
    def logged_metrics(cls, stage: str, tta: bool = False) -> tuple[str, ...]:
        """Its metric names (callback_metrics, metrics.csv) of a stage; tta: with TTA on."""
        return tuple(n for n in LOGGED_METRICS[stage].split() if tta or not n.endswith("_tta"))

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    @property
    def background(self) -> float:
        """The network input of a black pixel (the normalised background), TTA's shift fill."""
        return -float(self.hparams.mean) / float(self.hparams.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised (N, 1, 28, 28) images → (N, classes) logits."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def _shared_step(self, batch: Batch, split: str) -> torch.Tensor:
        images, labels, *teacher = batch  # a distilled run's may carry its teacher's output
        logits = self(images)
        train = split == "train"
        smoothing = self.hparams.label_smoothing if train else 0.0
        if train and self.teacher is not None:
            loss = self.teacher.loss(logits, images, labels, smoothing, *teacher)
        else:
            loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        accuracy = getattr(self, f"{split}_acc")
        # update(), not forward(): the per-batch accuracy forward() computes is never logged.
        accuracy.update(logits, labels)
        # A step value on the progress bar is read back from the device after every step (a
        # sync on a GPU); the terminal bar shows the loss of the logging steps instead.
        self.log(
            f"{split}_loss", loss, on_step=train, on_epoch=True, prog_bar=not train, sync_dist=True
        )
        self.log(f"{split}_acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        if not train and self.tta.enabled:  # the accuracy of the mean softmax over views
            first = logits.float().softmax(dim=1)
            mean = tta_probabilities(self.predict_step, images, self.tta, self.background, first)
            accuracy = getattr(self, f"{split}_acc_tta")
            accuracy.update(mean, labels)
            self.log(f"{split}_acc_tta", accuracy, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int = 0) -> torch.Tensor:
        """Class probabilities, (N, classes); the batch is images or (images, labels)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).float().softmax(dim=1)

    def configure_optimizers(self) -> Any:
        settings, scheduler = self.hparams.optimizer, self.hparams.scheduler or {}
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": params}]
        if self.hparams.head_lr is not None:  # the head at its own rate (HParams: there is one)
            in_head = {id(p) for p in unwrapped(self.net).head.parameters()}
            body = [p for p in params if id(p) not in in_head]
            head = {"params": [p for p in params if id(p) in in_head], "lr": self.hparams.head_lr}
            groups = [{"params": body}, head] if body else [head]
        optimizer = load_class(settings[TARGET])(groups, **arguments(settings))
        if not scheduler.get("schedule"):
            return optimizer
        schedule = arguments(scheduler["schedule"])
        rates, base_rate = [group["lr"] for group in optimizer.param_groups], settings.get("lr")
        if "max_lr" in schedule and base_rate and any(rate != base_rate for rate in rates):
            # An absolute rate (OneCycleLR's max_lr): one per group, in the ratio of their lr.
            schedule["max_lr"] = [float(schedule["max_lr"]) * rate / base_rate for rate in rates]
        if schedule.get("total_steps") == "auto":
            # Schedules over the whole run need its length, known once the trainer is attached.
            # One-cycle divides by its warm-up length, which must be at least a step or two,
            # so very short runs (smoke tests) use a longer schedule than they will finish.
            schedule["total_steps"] = max(int(self.trainer.estimated_stepping_batches), MIN_STEPS)
        built = load_class(scheduler["schedule"][TARGET])(optimizer, **schedule)
        lr_scheduler = {"scheduler": built, "interval": scheduler.get("interval", "epoch")}
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: Path | str,
        map_location: str | torch.device | dict[str, str] | None = None,
        hparams_file: Path | str | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> "FashionMNISTModule":
        """Lightning's loader, through ``read_checkpoint``: always ``weights_only=True``, and
        checkpoints of release 0.1.0 load too. ``kwargs`` override stored hyperparameters."""
        # Imported here: a training run reads no checkpoint through the module (startup cost).
        from fmnist_lightning.models.checkpoint_file import build_from_checkpoint

        if hparams_file is not None:
            message = "hparams_file is not supported (checkpoints store their hyperparameters)"
            raise ValueError(f"{message}; pass changed values as keyword arguments.")
        if map_location is None and not torch.cuda.is_available():
            map_location = "cpu"  # as Lightning: a GPU checkpoint loads on a machine without one
        return build_from_checkpoint(cls, checkpoint_path, map_location, strict, kwargs)


# The name of release 0.1.0, for code written against it.
FashionMNISTClassifier = FashionMNISTModule


def load_module(path: Path | str, map_location: str | torch.device = "cpu") -> FashionMNISTModule:
    """The trained FashionMNISTModule of a checkpoint, in eval mode, on ``map_location``."""
    return FashionMNISTModule.load_from_checkpoint(path, map_location).eval()
