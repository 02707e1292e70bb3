"""plots/augmented.png: training images and augmented views of them, drawn when testing ends."""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from fmnist_lightning.analysis import plots, run_files
from fmnist_lightning.analysis.figures import save_figure
from fmnist_lightning.data.augment import BatchAugment
from fmnist_lightning.data.normalise import denormalise


def save_augmentation_preview(
    datamodule: L.LightningDataModule, path: Path, count: int = 8, views: int = 5, seed: int = 0
) -> Path | None:
    """``count`` training images and ``views`` augmented views of each; None without augmentation."""
    augment: BatchAugment | None = getattr(datamodule, "augment", None)
    tensors = getattr(datamodule, "tensors", {})
    if augment is None or not augment.enabled or "train" not in tensors:
        return None
    images, labels = tensors["train"][:count]
    # A private random stream: drawing the preview must not move the training one.
    with torch.random.fork_rng(devices=[images.device] if images.is_cuda else []):
        torch.manual_seed(seed)
        augmented = torch.stack([augment(images) for _ in range(views)], dim=1)
    mean, std = datamodule.mean, datamodule.std
    titles = [datamodule.classes[int(label)] for label in labels]
    figure = plots.augmented_samples(
        denormalise(images[:, 0], mean, std).cpu().numpy(),
        denormalise(augmented[:, :, 0], mean, std).cpu().numpy(),
        titles,
    )
    return save_figure(figure, path)


class AugmentationPreview(Callback):
    """At the end of testing (rank zero), what the augmentation did to a few training images."""

    def __init__(self, run_dir: str, count: int = 8, views: int = 5, seed: int = 0) -> None:
        self.path = Path(run_dir) / run_files.PLOTS_DIR / run_files.AUGMENTED_PNG
        self.count, self.views, self.seed = count, views, seed

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and trainer.datamodule is not None:
            save_augmentation_preview(
                trainer.datamodule, self.path, self.count, self.views, self.seed
            )
