"""The LightningModule: loss, metrics, optimiser and schedule around the plain network.

Every constructor argument is a plain type (numbers, strings, lists, dicts), because
``save_hyperparameters`` stores them in the checkpoint and torch >= 2.6 loads checkpoints
with ``weights_only=True``. The network and optimiser are described by ``_target_`` dicts
and built here with ``hydra.utils.instantiate``, so ``load_from_checkpoint(path)`` rebuilds
everything with no other argument.
"""

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics.classification import MulticlassAccuracy

from fmnist_lightning import transfer

# Keys of the model config that configure how the network runs, not what it is.
RUNTIME_KEYS = ("channels_last", "compile", *transfer.TRANSFER_KEYS)
MIN_SCHEDULE_STEPS = 100


def build_network(model: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """Instantiate the network that a model config's ``_target_`` names, minus the runtime keys."""
    architecture = {k: v for k, v in model.items() if k not in RUNTIME_KEYS}
    return instantiate(architecture, num_classes=num_classes)


class FashionMNISTClassifier(L.LightningModule):
    def __init__(
        self,
        model: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None,
        label_smoothing: float,
        class_names: list[str],
        mean: float,
        std: float,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_network(model, num_classes=len(class_names))
        self.channels_last = bool(model.get("channels_last", False))
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if model.get("compile", False):
            self.net = torch.compile(self.net)
        num_classes = len(class_names)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised (N, 1, 28, 28) images → (N, classes) logits."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        smoothing = self.hparams.label_smoothing if split == "train" else 0.0
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        accuracy = getattr(self, f"{split}_acc")
        # update(), not forward(): the per-batch accuracy forward() computes is never logged.
        accuracy.update(logits, labels)
        on_step = split == "train"
        self.log(
            f"{split}_loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=True
        )
        self.log(f"{split}_acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def setup(self, stage: str) -> None:
        """Fitting starts from ``model.weights`` or ``model.init_from`` when one is set."""
        if stage == "fit":
            message = transfer.load_initial_weights(self.net, self.hparams.model)
            if message:
                rank_zero_info(message)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities, (N, classes); the batch is images or (images, labels)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).float().softmax(dim=1)

    def configure_optimizers(self) -> Any:
        head_lr = self.hparams.model.get("head_lr")
        params = transfer.parameter_groups(self, getattr(self.net, "head", None), head_lr)
        optimizer = instantiate(self.hparams.optimizer, _partial_=True)(params)
        if not self.hparams.scheduler:
            return optimizer
        scheduler_cfg = transfer.scale_schedule_to_groups(
            dict(self.hparams.scheduler), optimizer, self.hparams.optimizer.get("lr")
        )
        interval = scheduler_cfg.pop("interval", "epoch")
        if scheduler_cfg.get("total_steps") == "auto":
            # Schedules over the whole run need its length, known once the trainer is attached.
            # One-cycle divides by its warm-up length, which must be at least a step or two,
            # so very short runs (smoke tests) use a longer schedule than they will finish.
            steps = self.trainer.estimated_stepping_batches
            scheduler_cfg["total_steps"] = max(int(steps), MIN_SCHEDULE_STEPS)
        scheduler = instantiate(scheduler_cfg, optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval},
        }
