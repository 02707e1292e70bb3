"""plots/augmented.png: training images and augmented views of them, drawn when testing ends."""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from fmnist_lightning.analysis import plots, run_files
from fmnist_lightning.analysis.run_files import save_figure
from fmnist_lightning.data.normalise import denormalise


class AugmentationPreview(Callback):
    def __init__(self, run_dir: str, count: int = 8, views: int = 5, seed: int = 0) -> None:
        self.path = Path(run_dir) / run_files.PLOTS_DIR / run_files.AUGMENTED_PNG
        self.count, self.views, self.seed = count, views, seed

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        data = trainer.datamodule
        augment = data.augment
        if not (trainer.is_global_zero and augment and augment.enabled and "train" in data.tensors):
            return
        images, labels = data.tensors["train"][: self.count]
        # A private random stream: drawing the preview must not move the training one.
        with torch.random.fork_rng(devices=[images.device] if images.is_cuda else []):
            torch.manual_seed(self.seed)
            augmented = torch.stack([augment(images) for _ in range(self.views)], dim=1)
        figure = plots.augmented_samples(
            denormalise(images[:, 0], data.mean, data.std).cpu().numpy(),
            denormalise(augmented[:, :, 0], data.mean, data.std).cpu().numpy(),
            [data.classes[int(label)] for label in labels],
        )
        save_figure(figure, self.path)
