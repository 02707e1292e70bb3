"""The analysis of one split: predict it, compute the metrics, write the tables, pictures and
report.md (docs/evaluation.md lists the files), for the evaluate command and at the end of
every training run (``TestSetAnalysis``). A new picture: draw it in :func:`write_figures`
under a new key, add its key → (title, caption) to ``report.PICTURES``."""

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fmnist_lightning.analysis import plots, report, run_files
from fmnist_lightning.analysis.metrics import Analysis, analyse, most_confident_mistakes
from fmnist_lightning.analysis.model_summary import model_summary
from fmnist_lightning.analysis.run_files import run_dir_of, save_figure
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.data.normalise import denormalise
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.runtime import unwrapped
from fmnist_lightning.models.tta import TTA

REPORT_MD = "report.md"


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
    names, labels, probabilities = result.class_names, result.labels, result.probabilities

    def pixels(inputs: torch.Tensor) -> Any:  # numpy (N, H, W) in [0, 1]
        return denormalise(inputs[:, 0], module.hparams.mean, module.hparams.std).cpu().numpy()

    def drawn(draw: Any, indices: torch.Tensor) -> Any:  # a grid of these images
        inputs = images[indices.to(images.device)]
        return draw(pixels(inputs), labels[indices].numpy(), probabilities[indices].numpy(), names)

    summary_text, layers = model_summary(module.net, tuple(images.shape[1:]))
    write_atomically(output_dir / "model_summary.txt", summary_text + "\n")
    shown = torch.randperm(len(labels), generator=torch.Generator().manual_seed(settings.seed))
    mistakes = most_confident_mistakes(probabilities, labels, settings.mistakes)
    figures = {
        "architecture": plots.architecture_diagram(layers, type(unwrapped(module.net)).__name__),
        "confusion_matrix": plots.confusion_matrix_figure(result.confusion.numpy(), names),
        "calibration": plots.reliability_diagram(result.reliability, result.metrics["ece"]),
        "predictions": drawn(plots.prediction_grid, shown[: settings.predictions]),
        "misclassified": drawn(plots.mistakes_grid, mistakes),
    }
    if train is not None:
        inputs, classes = train
        per_class = settings.samples_per_class
        # Pick the first images of each class on the tensors' device, and copy only those.
        picked = torch.cat([(classes == c).nonzero()[:per_class, 0] for c in range(len(names))])
        figures["samples"] = plots.sample_grid(
            pixels(inputs[picked]), classes[picked].cpu().numpy(), names, per_class
        )
    return {key: save_figure(figure, output_dir / f"{key}.png") for key, figure in figures.items()}


def default_output_dir(checkpoint: Path, split: str, tta: TTA | None = None) -> Path:
    """<run>/analysis/<checkpoint>-<split>/, with a -tta suffix for test-time augmentation."""
    suffix = "-tta" if tta is not None and tta.enabled else ""
    return run_dir_of(checkpoint) / run_files.ANALYSIS_DIR / f"{checkpoint.stem}-{split}{suffix}"


def evaluate(
    module: FashionMNISTModule,
    datamodule: FashionMNISTDataModule,
    split: str,
    output_dir: Path | str,
    settings: AnalysisSettings,
    *,
    precision: str | int = "32-true",
    checkpoint: Path | str | None = None,
    run_dir: Path | str | None = None,
    tta: TTA | None = None,
) -> dict[str, Any]:
    """Predict one split on the module's device, write the whole analysis; return its metrics.
    ``run_dir`` (the training run, if known) adds its curves and summary to the report."""
    tta = tta if tta is not None and tta.enabled else None
    output_dir, run_dir = Path(output_dir), Path(run_dir) if run_dir else None
    images, labels = datamodule.tensors[split].tensors
    started = time.perf_counter()
    probs = predict_probabilities(module, images, datamodule.eval_batch_size, precision, tta=tta)
    seconds = time.perf_counter() - started
    result = analyse(probs, labels, module.class_names, settings.calibration_bins)
    metrics = {
        "split": split,
        **result.metrics,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "predict_seconds": round(seconds, 3),
        "images_per_second": round(len(labels) / max(seconds, 1e-9)),
        "device": str(module.device),
        "precision": str(precision),
        "tta": tta.as_dict() if tta else None,
    }
    run_files.write_json(output_dir / "metrics.json", metrics)
    per_class = result.per_class.to_csv(index=False, float_format="%.6f")
    write_atomically(output_dir / "per_class.csv", per_class)
    write_atomically(output_dir / "confusion_matrix.csv", result.confusion_frame().to_csv())

    train = datamodule.tensors["train"].tensors if "train" in datamodule.tensors else None
    pictures = write_figures(result, images, train, module, output_dir, settings)
    # The training run's pictures, linked rather than copied.
    for key, name in (("curves", run_files.CURVES_PNG), ("augmented", run_files.AUGMENTED_PNG)):
        if run_dir and (run_dir / run_files.PLOTS_DIR / name).is_file():
            pictures[key] = run_dir / run_files.PLOTS_DIR / name
    run_config = run_files.load_config(run_dir / run_files.CONFIG_YAML) if run_dir else None
    test = run_dir / run_files.TEST_METRICS_JSON if run_dir else None
    run_summary = run_files.read_json(test) if test and test.is_file() else None
    shown = report.config_summary(dict(module.hparams), run_config, run_summary)
    links = {k: Path(os.path.relpath(p, output_dir)).as_posix() for k, p in pictures.items()}
    views = tta and f"mean of {tta.view_count} views (flip: {tta.flip}, shift: {tta.shift} px)"
    page = report.render_report(metrics, result.per_class, shown, links, views)
    write_atomically(output_dir / REPORT_MD, page)
    return metrics
