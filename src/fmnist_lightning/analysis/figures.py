"""The pictures of one evaluation, drawn by ``plots`` and saved as PNG files. A new picture:
draw it in :func:`write_figures` under a new key, add its (key, title, caption) to
``report.PICTURES``."""

from dataclasses import dataclass
from pathlib import Path

import torch

from fmnist_lightning.analysis import plots
from fmnist_lightning.analysis.metrics import Analysis, most_confident_mistakes
from fmnist_lightning.analysis.model_summary import model_summary
from fmnist_lightning.analysis.run_files import save_figure
from fmnist_lightning.data.normalise import denormalise
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.runtime import unwrapped


def display_images(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Normalised (N, 1, H, W) network inputs → (N, H, W) pixels in [0, 1], on the CPU."""
    return denormalise(images[:, 0], mean, std).cpu()


@dataclass(frozen=True)
class AnalysisSettings:
    """What the analysis draws and how finely it bins; the values live in conf/analysis/."""

    calibration_bins: int
    samples_per_class: int
    predictions: int
    mistakes: int
    seed: int


def write_figures(
    result: Analysis,
    images: torch.Tensor,
    train: tuple[torch.Tensor, torch.Tensor] | None,
    module: FashionMNISTModule,
    output_dir: Path,
    settings: AnalysisSettings,
) -> dict[str, Path]:
    """Draw every picture into <key>.png; return the files by ``report.PICTURES`` key.
    ``train`` (inputs, labels) gives samples.png; None leaves it out."""
    mean, std = module.hparams.mean, module.hparams.std
    names, labels, probabilities = result.class_names, result.labels, result.probabilities
    summary_text, layers = model_summary(module.net, tuple(images.shape[1:]))
    write_atomically(output_dir / "model_summary.txt", summary_text + "\n")
    figures = {
        "architecture": plots.architecture_diagram(layers, type(unwrapped(module.net)).__name__),
        "confusion_matrix": plots.confusion_matrix_figure(result.confusion.numpy(), names),
        "calibration": plots.reliability_diagram(result.reliability, result.metrics["ece"]),
    }
    if train is not None:
        train_images, train_labels = train
        # Pick the first images of each class on the tensors' device, and copy only those.
        per_class = settings.samples_per_class
        picked = torch.cat(
            [(train_labels == c).nonzero().flatten()[:per_class] for c in range(len(names))]
        )
        figures["samples"] = plots.sample_grid(
            display_images(train_images[picked], mean, std).numpy(),
            train_labels[picked].cpu().numpy(),
            names,
            per_class,
        )
    generator = torch.Generator().manual_seed(settings.seed)
    shown = torch.randperm(len(labels), generator=generator)[: settings.predictions]
    wrong = most_confident_mistakes(probabilities, labels, settings.mistakes)
    for key, indices, draw in (
        ("predictions", shown, plots.prediction_grid),
        ("misclassified", wrong, plots.mistakes_grid),
    ):
        figures[key] = draw(
            display_images(images[indices.to(images.device)], mean, std).numpy(),
            labels[indices].numpy(),
            probabilities[indices].numpy(),
            names,
        )
    return {key: save_figure(figure, output_dir / f"{key}.png") for key, figure in figures.items()}
